from __future__ import annotations

import uuid
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from ocore.core.auth import Principal
from ocore.orgs.models import AuditEntry


async def record(
    session: AsyncSession,
    principal: Principal,
    action: str,
    target_type: str,
    target_id: uuid.UUID | None,
    changes: dict[str, Any] | None = None,
) -> None:
    """Write who changed what in the caller's transaction (never secrets: pass field names)."""
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    session.add(
        AuditEntry(
            organization_id=principal.organization_id,
            actor_user_id=principal.user_id,
            actor_token_id=principal.token_id,
            action=action,
            target_type=target_type,
            target_id=target_id,
            changes=changes or {},
            request_id=request_id,
        )
    )
    await session.flush()
