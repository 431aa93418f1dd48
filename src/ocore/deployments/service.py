"""Deployments: resolve what to deploy, queue the build, roll back to an earlier one."""

from __future__ import annotations

import uuid

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ocore.core.auth import Principal
from ocore.core.crypto import SecretBox
from ocore.core.errors import Conflict, InvalidInput, NotFound, RefNotFound
from ocore.deployments.models import Deployment
from ocore.deployments.repository import DeploymentRepository
from ocore.deployments.schemas import DeployRequest
from ocore.environments.models import Environment
from ocore.git.providers import CommitInfo
from ocore.instances.models import Instance
from ocore.jobs import engine
from ocore.jobs.runtime import JobSystem
from ocore.orgs import audit
from ocore.projects.git import project_provider
from ocore.projects.models import Project
from ocore.settings import Settings


async def project_instance(
    session: AsyncSession, principal: Principal, project: Project, instance_id: uuid.UUID
) -> Instance:
    """The instance, when it is this organization's and serves this project; else NotFound."""
    statement = (
        select(Instance)
        .outerjoin(Environment, Environment.instance_id == Instance.id)
        .where(
            Instance.id == instance_id,
            Instance.organization_id == principal.organization_id,
            or_(Instance.project_id == project.id, Environment.project_id == project.id),
        )
    )
    instance = (await session.execute(statement)).scalars().first()
    if instance is None:
        raise NotFound(f"Instance {instance_id} not found in this project.")
    return instance


async def resolve_target(
    settings: Settings, box: SecretBox, project: Project, body: DeployRequest
) -> CommitInfo:
    provider = project_provider(settings, box, project)
    try:
        return await provider.resolve(branch=body.branch, tag=body.tag, commit_sha=body.commit_sha)
    except RefNotFound as exc:
        what = (
            f"branch '{body.branch}'"
            if body.branch
            else f"tag '{body.tag}'"
            if body.tag
            else f"commit {body.commit_sha}"
        )
        raise InvalidInput(
            f"{what} does not exist in {project.repository_url}: {exc.detail}"
        ) from None


async def enqueue_build(session: AsyncSession, jobs: JobSystem, deployment: Deployment) -> None:
    await _enqueue(session, jobs, deployment, "deployment.build")


async def _enqueue(
    session: AsyncSession, jobs: JobSystem, deployment: Deployment, kind: str
) -> None:
    await engine.enqueue(
        session,
        jobs.queue,
        jobs.database,
        kind=kind,
        target_type="deployment",
        target_id=deployment.id,
        organization_id=deployment.organization_id,
        lock_key=f"instance:{deployment.instance_id}",
        max_attempts=2,
    )


async def create_deployment(
    session: AsyncSession,
    settings: Settings,
    box: SecretBox,
    jobs: JobSystem,
    principal: Principal,
    project: Project,
    body: DeployRequest,
    *,
    trigger_type: str = "manual",
) -> Deployment:
    instance = await project_instance(session, principal, project, body.instance_id)
    if instance.status not in ("running", "stopped"):
        raise Conflict(f"Instance {instance.slug} is {instance.status}; it cannot be deployed now.")
    commit = await resolve_target(settings, box, project, body)
    repository = DeploymentRepository(session)
    previous = await repository.last_succeeded(instance.id)
    environment_id = await session.scalar(
        select(Environment.id).where(Environment.instance_id == instance.id)
    )
    deployment = Deployment(
        organization_id=principal.organization_id,
        project_id=project.id,
        instance_id=instance.id,
        environment_id=environment_id,
        triggered_by=principal.user_id,
        trigger_type=trigger_type,
        status="queued",
        branch=body.branch,
        tag=body.tag,
        commit_sha=commit.sha,
        commit_message=commit.message[:10_000],
        commit_author=commit.author_name,
        commit_author_avatar=commit.author_avatar_url,
        previous_commit_sha=previous.commit_sha if previous else None,
        previous_deployment_id=previous.id if previous else None,
    )
    await repository.add(deployment)
    await enqueue_build(session, jobs, deployment)
    await audit.record(
        session, principal, "deployment.create", "deployment", deployment.id, {"sha": commit.sha}
    )
    return deployment


def redeployment(
    source: Deployment,
    *,
    instance_id: uuid.UUID,
    environment_id: uuid.UUID | None,
    trigger_type: str,
    triggered_by: uuid.UUID | None,
    **fields: object,
) -> Deployment:
    """A new queued deployment of the commit ``source`` deployed (rollback, promotion)."""
    return Deployment(
        organization_id=source.organization_id,
        project_id=source.project_id,
        instance_id=instance_id,
        environment_id=environment_id,
        triggered_by=triggered_by,
        trigger_type=trigger_type,
        status="queued",
        branch=source.branch,
        tag=source.tag,
        commit_sha=source.commit_sha,
        commit_message=source.commit_message,
        commit_author=source.commit_author,
        commit_author_avatar=source.commit_author_avatar,
        **fields,
    )


async def create_rollback(
    session: AsyncSession,
    jobs: JobSystem,
    principal: Principal,
    project: Project,
    target_id: uuid.UUID,
) -> Deployment:
    repository = DeploymentRepository(session)
    target = await repository.get(principal.organization_id, target_id)
    if target.project_id != project.id:
        raise NotFound(f"Deployment {target_id} not found in this project.")
    if target.status != "succeeded":
        raise Conflict(
            f"Deployment {target_id} did not succeed ({target.status}); it cannot be restored."
        )
    live = await repository.last_succeeded(target.instance_id)
    if live is not None and target.id in (
        live.id,
        live.previous_deployment_id if live.trigger_type == "rollback" else None,
    ):
        raise Conflict("That deployment is the one live now; there is nothing to roll back.")
    snapshot = await repository.snapshot_after(target)
    if snapshot is None:
        raise Conflict(
            "No database snapshot from after that deployment is kept (expired or never taken)."
        )
    rollback = redeployment(
        target,
        instance_id=target.instance_id,
        environment_id=target.environment_id,
        trigger_type="rollback",
        triggered_by=principal.user_id,
        previous_commit_sha=live.commit_sha if live else None,
        previous_deployment_id=target.id,
        snapshot_id=snapshot.id,
    )
    await repository.add(rollback)
    await _enqueue(session, jobs, rollback, "deployment.rollback")
    await audit.record(
        session, principal, "deployment.rollback", "deployment", rollback.id, {"to": str(target.id)}
    )
    return rollback
