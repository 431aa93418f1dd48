"""Deleting an environment because its branch is gone (merged pull request, deleted branch).

The same effect as ``DELETE /api/environments/{id}``
(``ocore.environments.lifecycle.delete_environment``): status "deleting" and an
``environment.delete`` job under the instance's lock. That function needs a
user (its audit entry names one) and a webhook has none, so this module does
the same steps with an actor-less audit entry. Builds still queued for the
instance are cancelled first: they would deploy to an instance about to go.
A job already running on the instance keeps its lock: the environment is then
left as it is and the answer says why (delete it once the job is done).
"""

from __future__ import annotations

import uuid

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from ocore.core.errors import Conflict
from ocore.environments.models import Environment
from ocore.jobs import engine
from ocore.jobs.runtime import JobSystem
from ocore.webhooks.builds import audit, cancel_queued_builds

log = structlog.get_logger("ocore.webhooks")
DELETE_JOB = "environment.delete"


async def request_deletion(
    session: AsyncSession, jobs: JobSystem, environment: Environment, why: str
) -> tuple[bool, list[uuid.UUID]]:
    """Start deleting the environment: (started, ids of the queued builds it cancelled)."""
    try:
        async with session.begin_nested():
            cancelled = (
                await cancel_queued_builds(
                    session,
                    jobs,
                    environment.instance_id,
                    f"Cancelled: environment {environment.name} is being deleted ({why}).",
                )
                if environment.instance_id is not None
                else []
            )
            await engine.enqueue(
                session,
                jobs.queue,
                jobs.database,
                kind=DELETE_JOB,
                target_type="environment",
                target_id=environment.id,
                organization_id=environment.organization_id,
                lock_key=(
                    f"instance:{environment.instance_id}" if environment.instance_id else None
                ),
            )
    except Conflict as exc:
        log.info("webhook_deletion_deferred", environment_id=str(environment.id), reason=exc.detail)
        return False, []
    environment.status = "deleting"
    environment.status_message = f"Waiting for the delete job: {why}."
    await session.flush()
    await audit(
        session,
        environment.organization_id,
        "environment.delete",
        "environment",
        environment.id,
        {"trigger": "webhook", "why": why, "cancelledDeployments": [str(c) for c in cancelled]},
    )
    return True, cancelled
