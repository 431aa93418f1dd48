from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ocore.core.db import Base, IdMixin, TimestampMixin


class NeutralizationProfile(IdMixin, TimestampMixin, Base):
    """Which categories a project's non-production copies have neutralized."""

    __tablename__ = "neutralization_profiles"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), unique=True
    )
    mail_strategy: Mapped[str] = mapped_column(String(12), default="mailpit")
    neutralize_crons: Mapped[bool] = mapped_column(default=True)
    neutralize_mail: Mapped[bool] = mapped_column(default=True)
    neutralize_payments: Mapped[bool] = mapped_column(default=True)
    neutralize_carriers: Mapped[bool] = mapped_column(default=True)
    neutralize_social: Mapped[bool] = mapped_column(default=True)


class NeutralizationItem(IdMixin, TimestampMixin, Base):
    """One neutralized Odoo record, with what is needed to restore it exactly."""

    __tablename__ = "neutralization_items"
    __table_args__ = (
        UniqueConstraint("environment_id", "category", "odoo_model", "odoo_record_id"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    environment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("environments.id", ondelete="CASCADE"), index=True
    )
    category: Mapped[str] = mapped_column(String(20))
    odoo_model: Mapped[str] = mapped_column(String(64))
    odoo_record_id: Mapped[int]
    record_name: Mapped[str | None] = mapped_column(String(255))
    is_enabled: Mapped[bool] = mapped_column(default=False)
    enabled_at: Mapped[datetime | None]
    enabled_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    # Fernet token of the record's original values (may hold provider secrets).
    original_state_encrypted: Mapped[str | None] = mapped_column(Text)
