from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ocore.core.db import Base, IdMixin, TimestampMixin, utcnow


class Snapshot(IdMixin, Base):
    """A copy of an instance's database (and filestore) kept to restore on rollback."""

    __tablename__ = "snapshots"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    instance_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("instances.id", ondelete="CASCADE"), index=True
    )
    method: Mapped[str] = mapped_column(String(12))
    location: Mapped[str] = mapped_column(String(500))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(20), default="creating")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]


class Deployment(IdMixin, TimestampMixin, Base):
    __tablename__ = "deployments"
    __table_args__ = (
        Index("ix_deployments_project_created", "project_id", "created_at"),
        Index("ix_deployments_instance_created", "instance_id", "created_at"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    instance_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"))
    environment_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("environments.id", ondelete="SET NULL")
    )
    previous_deployment_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("deployments.id", ondelete="SET NULL")
    )
    snapshot_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("snapshots.id", ondelete="SET NULL")
    )
    triggered_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    trigger_type: Mapped[str] = mapped_column(String(20), default="manual")
    status: Mapped[str] = mapped_column(String(20), default="queued")
    branch: Mapped[str | None] = mapped_column(String(255))
    tag: Mapped[str | None] = mapped_column(String(255))
    commit_sha: Mapped[str | None] = mapped_column(String(64))
    commit_message: Mapped[str | None] = mapped_column(Text)
    commit_author: Mapped[str | None] = mapped_column(String(200))
    commit_author_avatar: Mapped[str | None] = mapped_column(String(500))
    previous_commit_sha: Mapped[str | None] = mapped_column(String(64))
    active_color: Mapped[str | None] = mapped_column(String(5))
    image_tag: Mapped[str | None] = mapped_column(String(200))
    error_message: Mapped[str | None] = mapped_column(Text)
    risk_level: Mapped[str | None] = mapped_column(String(10))
    risk_score: Mapped[int | None]
    success_verdict: Mapped[dict[str, Any] | None]
    log_summary: Mapped[dict[str, Any] | None]
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    duration_ms: Mapped[int | None] = mapped_column(BigInteger)


class DeploymentStep(IdMixin, Base):
    __tablename__ = "deployment_steps"

    deployment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(60))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    output: Mapped[str] = mapped_column(Text, default="")
    sort_order: Mapped[int]
    # Bumped on every change so SSE readers can tell a new state from a replay.
    version: Mapped[int] = mapped_column(default=0)
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    duration_ms: Mapped[int | None] = mapped_column(BigInteger)


class DeploymentEvidence(IdMixin, Base):
    """The outcome of one gate (module update, tests, health) for a deployment."""

    __tablename__ = "deployment_evidence"

    deployment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE"), index=True
    )
    gate_key: Mapped[str] = mapped_column(String(60))
    name: Mapped[str] = mapped_column(String(120))
    required: Mapped[bool] = mapped_column(default=True)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    outcome: Mapped[str | None] = mapped_column(String(20))
    summary: Mapped[str | None] = mapped_column(Text)
    log_refs: Mapped[list[Any]] = mapped_column(default=list)
    artifact_refs: Mapped[list[Any]] = mapped_column(default=list)
    validation: Mapped[dict[str, Any] | None]
    waiver: Mapped[dict[str, Any] | None]
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    duration_ms: Mapped[int | None] = mapped_column(BigInteger)


class DeploymentFinding(IdMixin, Base):
    """Something the log analysis noticed (an error class, a risky warning)."""

    __tablename__ = "deployment_findings"

    deployment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE"), index=True
    )
    finding_class: Mapped[str] = mapped_column("class", String(60))
    severity: Mapped[str] = mapped_column(String(10))
    confidence: Mapped[float] = mapped_column(default=1.0)
    evidence_excerpt: Mapped[str | None] = mapped_column(Text)
    gate_action: Mapped[str | None] = mapped_column(String(20))
    details: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
