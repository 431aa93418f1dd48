from __future__ import annotations

import uuid

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ocore.core.db import Base, IdMixin, TimestampMixin


class Project(IdMixin, TimestampMixin, Base):
    """A git repository of Odoo addons, deployed to the instances of its environments."""

    __tablename__ = "projects"
    __table_args__ = (UniqueConstraint("organization_id", "name"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(120))
    repository_url: Mapped[str] = mapped_column(String(500))
    git_provider: Mapped[str] = mapped_column(String(10))
    default_branch: Mapped[str] = mapped_column(String(255), default="main")
    odoo_version: Mapped[str] = mapped_column(String(8))
    odoo_edition: Mapped[str] = mapped_column(String(12), default="community")
    test_gate_staging: Mapped[str] = mapped_column(String(8), default="warn")
    test_gate_production: Mapped[str] = mapped_column(String(8), default="block")
    test_tags: Mapped[str | None] = mapped_column(String(500))
    webhook_secret_encrypted: Mapped[str] = mapped_column(Text)
    git_token_encrypted: Mapped[str | None] = mapped_column(Text)

    @property
    def has_git_token(self) -> bool:
        return self.git_token_encrypted is not None
