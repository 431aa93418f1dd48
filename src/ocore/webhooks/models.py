"""Webhook deliveries already handled, so a redelivery changes nothing."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ocore.core.db import Base, IdMixin, utcnow


class WebhookDelivery(IdMixin, Base):
    """One authentic delivery of a forge (or git server) for one project.

    The unique (project, delivery id) pair is the idempotency key: the row is
    written in the same transaction as the delivery's effects, so a delivery
    either happened once, with its row, or not at all and may be retried.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (UniqueConstraint("project_id", "delivery_id"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    delivery_id: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(10))
    event: Mapped[str] = mapped_column(String(30))
    # What was done (the answer the forge got), replayed as a note on a redelivery.
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
