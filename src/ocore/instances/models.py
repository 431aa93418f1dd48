from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ocore.core.db import Base, IdMixin, TimestampMixin, utcnow


class Template(IdMixin, TimestampMixin, Base):
    """Defaults for a new instance: Odoo version and edition, modules, workers and limits."""

    __tablename__ = "templates"
    __table_args__ = (UniqueConstraint("organization_id", "name"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(120))
    odoo_version: Mapped[str] = mapped_column(String(8))
    odoo_edition: Mapped[str] = mapped_column(String(12), default="community")
    modules: Mapped[list[Any]] = mapped_column(default=list)
    workers: Mapped[int] = mapped_column(default=2)
    limit_memory_soft: Mapped[int] = mapped_column(BigInteger, default=2 * 1024**3)
    limit_memory_hard: Mapped[int] = mapped_column(BigInteger, default=int(2.5 * 1024**3))
    limit_time_cpu: Mapped[int] = mapped_column(default=60)
    limit_time_real: Mapped[int] = mapped_column(default=120)
    max_cron_threads: Mapped[int] = mapped_column(default=2)


class Instance(IdMixin, TimestampMixin, Base):
    """One Odoo deployment (database, processes in two colours, proxy) on a server."""

    __tablename__ = "instances"
    __table_args__ = (
        UniqueConstraint("server_id", "slug"),
        UniqueConstraint("server_id", "http_port_host"),
        UniqueConstraint("server_id", "longpolling_port_host"),
        # The list's order: its first page reads 20 index entries, not every instance.
        Index("ix_instances_organization_name", "organization_id", "name"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    server_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("servers.id", ondelete="RESTRICT"))
    project_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("projects.id", ondelete="SET NULL")
    )
    template_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("templates.id", ondelete="SET NULL")
    )
    name: Mapped[str] = mapped_column(String(120))
    slug: Mapped[str] = mapped_column(String(63))
    status: Mapped[str] = mapped_column(String(20), default="provisioning")
    status_message: Mapped[str | None] = mapped_column(Text)
    odoo_version: Mapped[str] = mapped_column(String(8))
    odoo_edition: Mapped[str] = mapped_column(String(12), default="community")
    addons_path: Mapped[str | None] = mapped_column(Text)
    env_vars: Mapped[dict[str, Any]] = mapped_column(default=dict)
    database_name: Mapped[str] = mapped_column(String(63))
    admin_password_encrypted: Mapped[str | None] = mapped_column(Text)
    http_port: Mapped[int] = mapped_column(default=8069)
    http_port_host: Mapped[int | None]
    longpolling_port: Mapped[int] = mapped_column(default=8072)
    longpolling_port_host: Mapped[int | None]
    workers: Mapped[int] = mapped_column(default=2)
    limit_memory_soft: Mapped[int] = mapped_column(BigInteger, default=2 * 1024**3)
    limit_memory_hard: Mapped[int] = mapped_column(BigInteger, default=int(2.5 * 1024**3))
    limit_time_cpu: Mapped[int] = mapped_column(default=60)
    limit_time_real: Mapped[int] = mapped_column(default=120)
    max_cron_threads: Mapped[int] = mapped_column(default=2)
    log_level: Mapped[str] = mapped_column(String(10), default="info")
    active_color: Mapped[str] = mapped_column(String(5), default="blue")
    # Per colour, the addons directories of the commit deployed on it.
    colour_addons: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    auto_subdomain: Mapped[str | None] = mapped_column(String(253))
    mcp_write_enabled: Mapped[bool] = mapped_column(default=False)
    restart_required: Mapped[bool] = mapped_column(default=False)
    health_score: Mapped[int | None]
    health_score_grade: Mapped[str | None] = mapped_column(String(2))
    health_score_updated_at: Mapped[datetime | None]
    last_seen_at: Mapped[datetime | None]
    last_restart_at: Mapped[datetime | None]
    restart_count: Mapped[int] = mapped_column(default=0)
    wkhtmltopdf_status: Mapped[str | None] = mapped_column(String(20))
    wkhtmltopdf_version: Mapped[str | None] = mapped_column(String(40))
    enterprise_build_id: Mapped[str | None] = mapped_column(String(100))
    enterprise_deployed_at: Mapped[datetime | None]
    enterprise_update_available: Mapped[bool] = mapped_column(default=False)


class Domain(IdMixin, Base):
    __tablename__ = "domains"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    instance_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("instances.id", ondelete="CASCADE"), index=True
    )
    domain: Mapped[str] = mapped_column(String(253), unique=True)
    is_primary: Mapped[bool] = mapped_column(default=False)
    is_auto_generated: Mapped[bool] = mapped_column(default=False)
    dns_provider: Mapped[str | None] = mapped_column(String(40))
    dns_record_id: Mapped[str | None] = mapped_column(String(200))
    # "unknown" until a check has looked; nothing here claims DNS or TLS works unseen.
    dns_status: Mapped[str] = mapped_column(String(20), default="unknown")
    ssl_status: Mapped[str] = mapped_column(String(20), default="unknown")
    ssl_expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class HealthCheck(IdMixin, Base):
    """One probe of an instance: kept so its health score can be explained."""

    __tablename__ = "instance_health_checks"
    __table_args__ = (
        Index("ix_instance_health_checks_instance_time", "instance_id", "checked_at"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    instance_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"))
    checked_at: Mapped[datetime] = mapped_column(default=utcnow)
    ok: Mapped[bool]
    response_ms: Mapped[int | None]
    detail: Mapped[str | None] = mapped_column(String(500))
