from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ocore.core.db import Base, IdMixin, TimestampMixin


class Server(IdMixin, TimestampMixin, Base):
    """An Odoo host reached over SSH, or this machine (``is_local``)."""

    __tablename__ = "servers"
    __table_args__ = (UniqueConstraint("organization_id", "name"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(120))
    host: Mapped[str] = mapped_column(String(253))
    port: Mapped[int] = mapped_column(default=22)
    username: Mapped[str] = mapped_column(String(32))
    is_local: Mapped[bool] = mapped_column(default=False)
    # Fernet token of the private key; decrypted only in memory when connecting.
    private_key_encrypted: Mapped[str | None] = mapped_column(Text)
    host_key: Mapped[str | None] = mapped_column(Text)
    host_key_fingerprint: Mapped[str | None] = mapped_column(String(100))
    runtime: Mapped[str] = mapped_column(String(10))
    base_dir: Mapped[str] = mapped_column(String(255), default="/opt/ocore")
    # The PostgreSQL server the host's Odoo instances use, as seen from the host.
    db_host: Mapped[str] = mapped_column(
        String(253), default="127.0.0.1", server_default="127.0.0.1"
    )
    db_port: Mapped[int] = mapped_column(default=5432, server_default="5432")
    db_user: Mapped[str] = mapped_column(String(63), default="odoo", server_default="odoo")
    db_password_encrypted: Mapped[str | None] = mapped_column(Text)
    # The host's nginx: where instance sites go and how nginx is invoked (argv).
    nginx_sites_dir: Mapped[str] = mapped_column(
        String(255), default="/etc/nginx/conf.d", server_default="/etc/nginx/conf.d"
    )
    nginx_command: Mapped[list[Any]] = mapped_column(
        default=lambda: ["nginx"], server_default='["nginx"]'
    )
    nginx_listen: Mapped[str] = mapped_column(String(64), default="80", server_default="80")
    status: Mapped[str] = mapped_column(String(20), default="unknown")
    status_message: Mapped[str | None] = mapped_column(Text)
    last_seen_at: Mapped[datetime | None]

    @property
    def has_private_key(self) -> bool:
        return self.private_key_encrypted is not None

    @property
    def has_db_password(self) -> bool:
        return self.db_password_encrypted is not None
