"""Builds a push asks for: resolve the pushed commit, cancel queued builds, queue a new one.

A webhook has no user: its deployments have no ``triggered_by`` and its audit
entries no actor. Deployments are queued with ``deployments.service.enqueue_build``
(the job kind and instance lock of ``POST /projects/{id}/deploy``), so a webhook
build and any other job never run on an instance at the same time.
"""

from __future__ import annotations

import uuid
from typing import Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ocore.core.db import utcnow
from ocore.core.uow import after_commit
from ocore.deployments.models import Deployment
from ocore.deployments.repository import DeploymentRepository
from ocore.deployments.service import enqueue_build
from ocore.deployments.steps import deployment_stream
from ocore.environments.models import Environment
from ocore.git.providers import CommitInfo
from ocore.git.webhook_events import PushCommit
from ocore.instances.models import Instance
from ocore.jobs.models import Job
from ocore.jobs.runtime import JobSystem
from ocore.orgs.models import AuditEntry
from ocore.projects.models import Project

log = structlog.get_logger("ocore.webhooks")
BUILD_JOB = "deployment.build"
DEPLOYABLE = ("running", "stopped")


def commit_from_push(commit: PushCommit) -> CommitInfo:
    """What the payload says of a commit, when the provider cannot say more."""
    return CommitInfo(
        sha=commit.sha,
        message=commit.message,
        author_name=commit.author_name,
        author_email=commit.author_email or "",
        author_avatar_url=None,
        committed_at=commit.timestamp or utcnow(),
    )


async def audit(
    session: AsyncSession,
    organization_id: uuid.UUID,
    action: str,
    target_type: str,
    target_id: uuid.UUID,
    changes: dict[str, Any],
) -> None:
    """An audit entry without an actor: the project's webhook did it."""
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    session.add(
        AuditEntry(
            organization_id=organization_id,
            actor_user_id=None,
            actor_token_id=None,
            action=action,
            target_type=target_type,
            target_id=target_id,
            changes=changes,
            request_id=request_id,
        )
    )
    await session.flush()


async def cancel_queued_builds(
    session: AsyncSession, jobs: JobSystem, instance_id: uuid.UUID, message: str
) -> list[uuid.UUID]:
    """Cancel the builds still waiting in the queue for the instance; their deployment ids.

    Only queued build jobs: one a worker has started keeps running (what comes
    next then meets the instance lock), and a queued rollback is never dropped.
    Each cancel is conditional on the job still being queued, so a worker
    claiming it at the same moment wins. Core updates only, no ORM state: the
    caller may roll the savepoint around this back.
    """
    rows = (
        await session.execute(
            select(Job.id, Deployment.id)
            .join(Deployment, Deployment.id == Job.target_id)
            .where(
                Job.target_type == "deployment",
                Job.kind == BUILD_JOB,
                Job.status == "queued",
                Deployment.instance_id == instance_id,
            )
        )
    ).all()
    superseded: list[uuid.UUID] = []
    for job_id, deployment_id in rows:
        now = utcnow()
        cancelled = await session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == "queued")
            .values(status="cancelled", cancel_requested=True, finished_at=now, error=message)
        )
        if not cancelled.rowcount:  # type: ignore[attr-defined]
            continue
        await session.execute(
            update(Deployment)
            .where(Deployment.id == deployment_id, Deployment.status == "queued")
            .values(status="cancelled", error_message=message, completed_at=now)
            .execution_options(synchronize_session=False)
        )
        superseded.append(deployment_id)
        _announce_cancelled(session, jobs, deployment_id, message)
    return superseded


def _announce_cancelled(
    session: AsyncSession, jobs: JobSystem, deployment_id: uuid.UUID, message: str
) -> None:
    """Tell anyone following the superseded build's log that it ended (once committed)."""

    async def publish() -> None:
        try:
            await jobs.events.publish(
                deployment_stream(deployment_id),
                {"type": "complete", "status": "cancelled", "errorMessage": message},
            )
        except Exception as exc:  # the cancel is recorded; the event is a courtesy
            log.warning("superseded_event_failed", deployment_id=str(deployment_id), error=str(exc))

    after_commit(session, publish)


async def queue_build(
    session: AsyncSession,
    jobs: JobSystem,
    project: Project,
    environment: Environment,
    instance: Instance,
    commit: CommitInfo,
    *,
    deployment_id: uuid.UUID,
    delivery_id: str,
) -> Deployment:
    """A queued deployment of ``commit`` on the environment's instance (Conflict when busy)."""
    repository = DeploymentRepository(session)
    previous = await repository.last_succeeded(instance.id)
    deployment = Deployment(
        id=deployment_id,
        organization_id=project.organization_id,
        project_id=project.id,
        instance_id=instance.id,
        environment_id=environment.id,
        triggered_by=None,
        trigger_type="webhook",
        status="queued",
        branch=environment.branch,
        commit_sha=commit.sha,
        commit_message=commit.message[:10_000],
        commit_author=commit.author_name[:200],
        commit_author_avatar=commit.author_avatar_url,
        previous_commit_sha=previous.commit_sha if previous else None,
        previous_deployment_id=previous.id if previous else None,
    )
    await repository.add(deployment)
    await enqueue_build(session, jobs, deployment)
    await audit(
        session,
        project.organization_id,
        "deployment.create",
        "deployment",
        deployment.id,
        {"sha": commit.sha, "trigger": "webhook", "delivery": delivery_id},
    )
    return deployment


async def deployable_instance(
    session: AsyncSession, environment: Environment
) -> tuple[Instance | None, str | None]:
    """The environment's instance when a build can be queued on it, else why not."""
    if environment.instance_id is None:
        return None, "the environment has no instance"
    instance = await session.scalar(
        select(Instance).where(
            Instance.id == environment.instance_id,
            Instance.organization_id == environment.organization_id,
        )
    )
    if instance is None:
        return None, "the environment has no instance"
    if instance.status not in DEPLOYABLE:
        return None, f"instance {instance.slug} is {instance.status}"
    return instance, None
