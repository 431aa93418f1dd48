from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from ocore.core.db import Base, IdMixin, TimestampMixin


class Environment(IdMixin, TimestampMixin, Base):
    """A project's branch deployed on one instance, at a stage of the pipeline."""

    __tablename__ = "environments"
    __table_args__ = (
        # One production environment per project, enforced by the database
        # so two concurrent requests cannot both win.
        Index(
            "uq_environments_one_production_per_project",
            "project_id",
            unique=True,
            postgresql_where=text("environment_type = 'production'"),
            sqlite_where=text("environment_type = 'production'"),
        ),
        Index("ix_environments_project_branch", "project_id", "branch"),
        # The lists' order (organization's, project's): a page joins its own rows
        # to their instances, not every environment before sorting.
        Index("ix_environments_organization_created", "organization_id", "created_at"),
        Index("ix_environments_project_created", "project_id", "created_at"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    instance_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("instances.id", ondelete="SET NULL"), index=True
    )
    cloned_from_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("environments.id", ondelete="SET NULL")
    )
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str | None] = mapped_column(Text)
    environment_type: Mapped[str] = mapped_column(String(12))
    branch: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(20), default="ready")
    status_message: Mapped[str | None] = mapped_column(Text)
    commit_behavior: Mapped[str] = mapped_column(String(24), default="create_new_build")
    auto_destroy_on_merge: Mapped[bool] = mapped_column(default=False)
    is_neutralized: Mapped[bool] = mapped_column(default=False)
    last_commit_at: Mapped[datetime | None]
    last_commit_author: Mapped[str | None] = mapped_column(String(200))
    pending_commit_sha: Mapped[str | None] = mapped_column(String(64))
    pending_commit_count: Mapped[int] = mapped_column(default=0)
    mailpit_port: Mapped[int | None]


class Promotion(IdMixin, TimestampMixin, Base):
    """A stage change of an environment (promotion or demotion), carried out by a job."""

    __tablename__ = "promotions"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    environment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("environments.id", ondelete="CASCADE"), index=True
    )
    from_stage: Mapped[str] = mapped_column(String(12))
    to_stage: Mapped[str] = mapped_column(String(12))
    status: Mapped[str] = mapped_column(String(20), default="queued")
    forced: Mapped[bool] = mapped_column(default=False)
    demotion_db_option: Mapped[str | None] = mapped_column(String(8))
    requested_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    message: Mapped[str | None] = mapped_column(Text)
    completed_at: Mapped[datetime | None]
