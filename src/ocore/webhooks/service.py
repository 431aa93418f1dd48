"""What a delivery does to a project's environments, and the manual side of it.

Push to a branch: every environment of the project on that branch records the
commit (``lastCommitAt``, ``lastCommitAuthor``, ``pendingCommitSha``,
``pendingCommitCount``), then acts on its ``commitBehavior``:

- ``do_nothing``: the commit stays pending until ``POST /environments/{id}/trigger-build``;
- ``create_new_build``: a deployment of the pushed commit is queued (trigger ``webhook``);
- ``update_previous_build``: the same, after cancelling a build still queued for
  the environment's instance (job and deployment end ``cancelled``, "superseded").

A queued build resets the pending fields. A build that cannot be queued (the
instance is busy with another job, is not running or stopped, or the commit
cannot be resolved) leaves the commit pending and is logged; the forge still
gets a success, since retrying the delivery would not help.

Merged pull request or deleted branch: environments of that branch with
``autoDestroyOnMerge`` are deleted (``status`` "deleting" and the
``environment.delete`` job, see ``deletion.py``), never a production environment.

Each delivery id is handled once per project (``WebhookDelivery``).
"""

from __future__ import annotations

import uuid
from datetime import datetime

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ocore.core.crypto import SecretBox
from ocore.core.db import utcnow
from ocore.core.errors import Conflict, GitError, InvalidInput, RefNotFound
from ocore.environments.models import Environment
from ocore.git.providers import CommitInfo
from ocore.git.webhook_events import (
    BranchDeleted,
    PullRequestMerged,
    PushEvent,
    WebhookEvent,
)
from ocore.git.webhooks import WebhookSource
from ocore.jobs.runtime import JobSystem
from ocore.projects.git import project_provider
from ocore.projects.models import Project
from ocore.settings import Settings
from ocore.webhooks.builds import (
    cancel_queued_builds,
    commit_from_push,
    deployable_instance,
    queue_build,
)
from ocore.webhooks.deletion import request_deletion
from ocore.webhooks.models import WebhookDelivery
from ocore.webhooks.schemas import EnvironmentAction, EventName, WebhookResult

log = structlog.get_logger("ocore.webhooks")


def event_name(event: WebhookEvent) -> EventName:
    if isinstance(event, PushEvent):
        return "push"
    if isinstance(event, BranchDeleted):
        return "branch_deleted"
    if isinstance(event, PullRequestMerged):
        return "pull_request_merged"
    return "ignored"


async def handle_delivery(
    session: AsyncSession,
    settings: Settings,
    box: SecretBox,
    jobs: JobSystem,
    project: Project,
    source: WebhookSource,
    event: WebhookEvent,
) -> WebhookResult:
    delivery = WebhookDelivery(
        organization_id=project.organization_id,
        project_id=project.id,
        delivery_id=event.delivery_id,
        source=source,
        event=event_name(event),
    )
    try:
        async with session.begin_nested():
            session.add(delivery)
    except IntegrityError:
        return await _replayed(session, project, event)
    if isinstance(event, PushEvent):
        result = await _push(session, settings, box, jobs, project, event)
    elif isinstance(event, BranchDeleted):
        result = await _destroy(
            session,
            jobs,
            project,
            event.branch,
            event.delivery_id,
            "branch_deleted",
            "branch deleted",
        )
    elif isinstance(event, PullRequestMerged):
        result = await _destroy(
            session,
            jobs,
            project,
            event.source_branch,
            event.delivery_id,
            "pull_request_merged",
            f"pull request merged into {event.target_branch}",
        )
    else:
        result = WebhookResult(
            delivery_id=event.delivery_id, event="ignored", status="ignored", note=event.reason
        )
    delivery.result = result.model_dump(mode="json")
    await session.flush()
    log.info(
        "webhook_handled",
        project_id=str(project.id),
        delivery_id=event.delivery_id,
        kind=result.event,
        actions=[a.action for a in result.environments],
    )
    return result


async def _replayed(session: AsyncSession, project: Project, event: WebhookEvent) -> WebhookResult:
    earlier = await session.scalar(
        select(WebhookDelivery).where(
            WebhookDelivery.project_id == project.id,
            WebhookDelivery.delivery_id == event.delivery_id,
        )
    )
    note = f"Delivery {event.delivery_id} was already handled; nothing was changed."
    if earlier is None:  # pragma: no cover - the unique key said it exists
        return WebhookResult(
            delivery_id=event.delivery_id, event=event_name(event), status="duplicate", note=note
        )
    note = (
        f"Delivery {event.delivery_id} was already handled at "
        f"{earlier.received_at.isoformat()}; nothing was changed."
    )
    log.info("webhook_replayed", project_id=str(project.id), delivery_id=event.delivery_id)
    try:
        first = WebhookResult.model_validate(earlier.result)
    except ValueError:
        first = WebhookResult(
            delivery_id=event.delivery_id, event=event_name(event), status="ignored"
        )
    return first.model_copy(update={"status": "duplicate", "note": note})


async def _branch_environments(
    session: AsyncSession, project: Project, branch: str
) -> list[Environment]:
    """The project's live environments on ``branch``, locked until the delivery commits."""
    statement = (
        select(Environment)
        .where(
            Environment.organization_id == project.organization_id,
            Environment.project_id == project.id,
            Environment.branch == branch,
            Environment.status != "deleting",
        )
        .order_by(Environment.created_at, Environment.id)
        .with_for_update()
    )
    return list((await session.scalars(statement)).all())


class _CommitLookup:
    """The pushed commit as the provider knows it, asked at most once per delivery."""

    def __init__(
        self, settings: Settings, box: SecretBox, project: Project, event: PushEvent
    ) -> None:
        self.settings, self.box, self.project, self.event = settings, box, project, event
        self._done = False
        self._commit: CommitInfo | None = None
        self.problem: str | None = None

    def from_payload(self) -> CommitInfo | None:
        head = next((c for c in self.event.commits if c.sha == self.event.after), None)
        return commit_from_push(head) if head is not None else None

    async def get(self) -> CommitInfo | None:
        if not self._done:
            self._done = True
            provider = project_provider(self.settings, self.box, self.project)
            try:
                self._commit = await provider.resolve(commit_sha=self.event.after)
            except (GitError, RefNotFound, InvalidInput) as exc:
                log.warning(
                    "webhook_commit_unresolved",
                    project_id=str(self.project.id),
                    sha=self.event.after,
                    error=exc.detail,
                )
                # A provider that is down should not lose the build: the payload's
                # own account of the head commit will do. An unknown commit will not.
                self._commit = None if isinstance(exc, RefNotFound) else self.from_payload()
                if self._commit is None:
                    self.problem = f"commit {self.event.after[:12]} could not be resolved"
        return self._commit


async def _push(
    session: AsyncSession,
    settings: Settings,
    box: SecretBox,
    jobs: JobSystem,
    project: Project,
    event: PushEvent,
) -> WebhookResult:
    lookup = _CommitLookup(settings, box, project, event)
    head = next((c for c in event.commits if c.sha == event.after), None)
    added = max(len(event.commits), 1)
    actions: list[EnvironmentAction] = []
    for environment in await _branch_environments(session, project, event.branch):
        committed_at: datetime | None = head.timestamp if head else None
        author = head.author_name if head else None
        if head is None:
            resolved = await lookup.get()
            if resolved is not None:
                committed_at, author = resolved.committed_at, resolved.author_name
        environment.last_commit_at = committed_at or utcnow()
        environment.last_commit_author = author[:200] if author else None
        if environment.pending_commit_sha != event.after:
            environment.pending_commit_count += added
        environment.pending_commit_sha = event.after
        await session.flush()
        if environment.commit_behavior == "do_nothing":
            actions.append(_action(environment, "pending_recorded"))
            continue
        actions.append(await _build(session, jobs, project, environment, lookup, event))
    return WebhookResult(
        delivery_id=event.delivery_id,
        event="push",
        status="processed",
        branch=event.branch,
        commit_sha=event.after,
        environments=actions,
        note=None if actions else f"No environment of this project follows {event.branch}.",
    )


async def _build(
    session: AsyncSession,
    jobs: JobSystem,
    project: Project,
    environment: Environment,
    lookup: _CommitLookup,
    event: PushEvent,
) -> EnvironmentAction:
    instance, problem = await deployable_instance(session, environment)
    commit = await lookup.get() if instance is not None else None
    if instance is None or commit is None:
        reason = problem or lookup.problem or "the commit could not be resolved"
        log.info("webhook_build_deferred", environment_id=str(environment.id), reason=reason)
        return _action(environment, "kept_pending", reason=reason)
    deployment_id = uuid.uuid4()
    try:
        # One savepoint: when the instance is busy, the superseding is undone too.
        async with session.begin_nested():
            superseded = (
                await cancel_queued_builds(
                    session,
                    jobs,
                    instance.id,
                    f"Superseded by deployment {deployment_id} (a newer push).",
                )
                if environment.commit_behavior == "update_previous_build"
                else []
            )
            deployment = await queue_build(
                session,
                jobs,
                project,
                environment,
                instance,
                commit,
                deployment_id=deployment_id,
                delivery_id=event.delivery_id,
            )
    except Conflict as exc:
        log.info(
            "webhook_build_deferred",
            environment_id=str(environment.id),
            instance_id=str(instance.id),
            reason=exc.detail,
        )
        return _action(
            environment,
            "kept_pending",
            reason=f"instance {instance.slug} is busy with another job; the commit stays pending",
        )
    environment.pending_commit_sha = None
    environment.pending_commit_count = 0
    await session.flush()
    return _action(
        environment,
        "build_queued",
        deployment_id=deployment.id,
        superseded_deployment_ids=superseded,
    )


async def _destroy(
    session: AsyncSession,
    jobs: JobSystem,
    project: Project,
    branch: str,
    delivery_id: str,
    name: EventName,
    why: str,
) -> WebhookResult:
    actions: list[EnvironmentAction] = []
    for environment in await _branch_environments(session, project, branch):
        if environment.environment_type == "production":
            actions.append(
                _action(environment, "kept", reason="a production environment is never destroyed")
            )
            continue
        if not environment.auto_destroy_on_merge:
            actions.append(_action(environment, "kept", reason="autoDestroyOnMerge is off"))
            continue
        started, cancelled = await request_deletion(
            session, jobs, environment, f"{why} (delivery {delivery_id})"
        )
        if not started:
            actions.append(
                _action(
                    environment,
                    "kept",
                    reason="its instance is busy with another job; delete it once that finishes",
                )
            )
            continue
        actions.append(
            _action(
                environment,
                "marked_for_deletion",
                superseded_deployment_ids=cancelled,
            )
        )
    return WebhookResult(
        delivery_id=delivery_id,
        event=name,
        status="processed",
        branch=branch,
        environments=actions,
        note=None if actions else f"No environment of this project follows {branch}.",
    )


def _action(
    environment: Environment,
    action: str,
    *,
    reason: str | None = None,
    deployment_id: uuid.UUID | None = None,
    superseded_deployment_ids: list[uuid.UUID] | None = None,
) -> EnvironmentAction:
    return EnvironmentAction.model_validate(
        {
            "environment_id": environment.id,
            "name": environment.name,
            "action": action,
            "reason": reason,
            "deployment_id": deployment_id,
            "superseded_deployment_ids": superseded_deployment_ids or [],
        }
    )
