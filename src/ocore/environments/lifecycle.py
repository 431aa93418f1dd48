"""Clone, delete, promote and demote environments: the checks here, the host work in jobs."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ocore.core.auth import Permission, Principal
from ocore.core.crypto import SecretBox, random_token
from ocore.core.errors import Conflict, Forbidden, InvalidInput
from ocore.deployments.models import Deployment, DeploymentEvidence
from ocore.deployments.repository import DeploymentRepository
from ocore.deployments.service import enqueue_build, redeployment
from ocore.environments.models import Environment, Promotion
from ocore.environments.repository import EnvironmentRepository
from ocore.environments.schemas import NAME_MAX, CloneRequest, PromoteRequest
from ocore.instances.models import Instance
from ocore.instances.repository import InstanceRepository
from ocore.instances.service import _insert_with_ports, database_name, slug_from_name
from ocore.jobs import engine
from ocore.jobs.runtime import JobSystem
from ocore.orgs import audit
from ocore.projects.models import Project
from ocore.settings import Settings

STAGE_RANK = {"development": 0, "staging": 1, "production": 2}
COPIED_SETTINGS = (
    "server_id", "odoo_version", "odoo_edition", "addons_path", "env_vars", "template_id",
    "workers", "limit_memory_soft", "limit_memory_hard", "limit_time_cpu", "limit_time_real",
    "max_cron_threads", "log_level",
)  # fmt: skip


async def _enqueue(
    session: AsyncSession,
    jobs: JobSystem,
    environment: Environment,
    kind: str,
    payload: dict[str, object] | None = None,
) -> None:
    await engine.enqueue(
        session,
        jobs.queue,
        jobs.database,
        kind=kind,
        target_type="environment",
        target_id=environment.id,
        organization_id=environment.organization_id,
        payload=payload,
        lock_key=f"instance:{environment.instance_id}" if environment.instance_id else None,
    )


async def _branch_taken(session: AsyncSession, project_id: uuid.UUID, branch: str) -> bool:
    statement = select(func.count()).where(
        Environment.project_id == project_id, Environment.branch == branch
    )
    return bool(await session.scalar(statement))


async def clone_environment(
    session: AsyncSession,
    settings: Settings,
    box: SecretBox,
    jobs: JobSystem,
    principal: Principal,
    source: Environment,
    body: CloneRequest,
) -> Environment:
    if source.instance_id is None or source.status != "ready":
        raise Conflict(f"The source environment is {source.status}; it can be cloned when ready.")
    if await _branch_taken(session, source.project_id, body.target_branch):
        raise Conflict(f"The branch '{body.target_branch}' already has an environment.")
    repository = EnvironmentRepository(session)
    if body.target_type == "production" and await repository.has_production(source.project_id):
        raise Conflict("The project already has a production environment.")
    project = await session.get(Project, source.project_id)
    origin = await InstanceRepository(session).get(principal.organization_id, source.instance_id)
    assert project is not None
    slug = slug_from_name(f"{project.name} {body.target_branch}")[:50].rstrip("-")
    if await InstanceRepository(session).slug_taken(origin.server_id, slug):
        slug = f"{slug}-{uuid.uuid4().hex[:6]}"
    instance = Instance(
        organization_id=principal.organization_id,
        project_id=project.id,
        name=f"{project.name} {body.target_branch}"[:NAME_MAX].rstrip(),
        slug=slug,
        status="provisioning",
        status_message="Waiting for the clone job.",
        database_name=database_name(slug),
        admin_password_encrypted=box.encrypt(random_token(24)),
        auto_subdomain=f"{slug}.{settings.base_domain}" if settings.base_domain else None,
        **{field: getattr(origin, field) for field in COPIED_SETTINGS},
    )
    await _insert_with_ports(session, settings, InstanceRepository(session), instance)
    environment = Environment(
        organization_id=principal.organization_id,
        project_id=project.id,
        instance_id=instance.id,
        cloned_from_id=source.id,
        name=body.target_branch[:NAME_MAX],
        environment_type=body.target_type,
        branch=body.target_branch,
        status="cloning",
        status_message=f"Copying {source.name}.",
        commit_behavior=source.commit_behavior,
        auto_destroy_on_merge=body.auto_destroy,
    )
    try:
        await repository.add(environment)
    except IntegrityError:
        raise Conflict("The project already has a production environment.") from None
    await _enqueue(session, jobs, environment, "environment.clone")
    await audit.record(
        session,
        principal,
        "environment.clone",
        "environment",
        environment.id,
        {"from": str(source.id), "branch": body.target_branch},
    )
    return environment


async def delete_environment(
    session: AsyncSession, jobs: JobSystem, principal: Principal, environment: Environment
) -> None:
    if environment.environment_type == "production":
        raise Conflict("A production environment cannot be deleted; demote it first.")
    if environment.status == "deleting":
        raise Conflict("The environment is already being deleted.")
    environment.status = "deleting"
    environment.status_message = "Waiting for the delete job."
    await session.flush()
    await _enqueue(session, jobs, environment, "environment.delete")
    await audit.record(session, principal, "environment.delete", "environment", environment.id)


async def _latest_tests_pass(session: AsyncSession, environment: Environment) -> str | None:
    """None when the latest deployment passed its required tests; else why not."""
    latest = await session.scalar(
        select(Deployment)
        .where(Deployment.instance_id == environment.instance_id)
        .order_by(Deployment.created_at.desc())
        .limit(1)
    )
    if latest is None:
        return "the environment has never been deployed"
    if latest.status != "succeeded":
        return f"its latest deployment {latest.status}"
    failing = await session.scalar(
        select(func.count()).where(
            DeploymentEvidence.deployment_id == latest.id,
            DeploymentEvidence.gate_key == "tests",
            DeploymentEvidence.status != "passed",
        )
    )
    return "its latest deployment's tests did not pass" if failing else None


async def promote(
    session: AsyncSession,
    jobs: JobSystem,
    principal: Principal,
    environment: Environment,
    body: PromoteRequest,
) -> Promotion:
    current, target = environment.environment_type, body.target_stage
    if current == target:
        raise Conflict(f"The environment is already {target}.")
    needed = (
        Permission.PROMOTE_PRODUCTION
        if "production" in (current, target)
        else Permission.PROMOTE_STAGING
    )
    if not principal.can(needed):
        raise Forbidden(f"Moving an environment to or from production needs '{needed.value}'.")
    if body.force_promote and not principal.can(Permission.ADMIN):
        raise Forbidden("forcePromote is for admins only.")
    if environment.status != "ready":
        raise Conflict(f"The environment is {environment.status}; promote it when ready.")
    promoting = STAGE_RANK[target] > STAGE_RANK[current]
    message = None
    if promoting:
        project = await session.get(Project, environment.project_id)
        assert project is not None
        gate = project.test_gate_production if target == "production" else project.test_gate_staging
        problem = await _latest_tests_pass(session, environment)
        if problem and not body.force_promote:
            if gate == "block":
                raise Conflict(f"The {target} test gate blocks this promotion: {problem}.")
            message = f"Promoted despite the {target} test gate (warn): {problem}."
        elif problem:
            message = f"Forced past the {target} test gate: {problem}."
        if target == "production":
            production = await session.scalar(
                select(Environment).where(
                    Environment.project_id == environment.project_id,
                    Environment.environment_type == "production",
                )
            )
            if production is not None:
                # Code moves to production, data does not: deploy this environment's
                # live commit onto the production instance; this one keeps its stage.
                return await _promote_code(
                    session, jobs, principal, environment, production, body, message
                )
            if environment.is_neutralized:
                raise Conflict(
                    "A neutralized database cannot serve production, and the project has no "
                    "production environment to deploy to."
                )
    elif body.demotion_db_option is None and current == "production":
        raise InvalidInput(
            "demotionDbOption ('fresh' or 'clone') is required to demote production."
        )
    promotion = Promotion(
        organization_id=environment.organization_id,
        environment_id=environment.id,
        from_stage=current,
        to_stage=target,
        status="succeeded",
        forced=body.force_promote,
        demotion_db_option=body.demotion_db_option,
        requested_by=principal.user_id,
        message=message,
    )
    environment.environment_type = target
    if current == "production":
        # Production data must not stay live in a lower stage: a job neutralizes or replaces it.
        environment.status = "demoting"
        promotion.status = "queued"
        await _enqueue(
            session,
            jobs,
            environment,
            "environment.demote",
            {"demotionDbOption": body.demotion_db_option},
        )
    session.add(promotion)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict("The project already has a production environment.") from None
    await audit.record(
        session,
        principal,
        "environment.promote" if promoting else "environment.demote",
        "environment",
        environment.id,
        {"from": current, "to": target, "forced": body.force_promote, "note": message},
    )
    return promotion


async def _promote_code(
    session: AsyncSession,
    jobs: JobSystem,
    principal: Principal,
    environment: Environment,
    production: Environment,
    body: PromoteRequest,
    message: str | None,
) -> Promotion:
    repository = DeploymentRepository(session)
    live = (
        await repository.last_succeeded(environment.instance_id)
        if environment.instance_id
        else None
    )
    if live is None or production.instance_id is None:
        raise Conflict("Nothing is deployed on this environment to promote.")
    previous = await repository.last_succeeded(production.instance_id)
    deployment = redeployment(
        live,
        instance_id=production.instance_id,
        environment_id=production.id,
        trigger_type="promotion",
        triggered_by=principal.user_id,
        previous_commit_sha=previous.commit_sha if previous else None,
        previous_deployment_id=previous.id if previous else None,
    )
    await repository.add(deployment)
    await enqueue_build(session, jobs, deployment)
    promotion = Promotion(
        organization_id=environment.organization_id,
        environment_id=environment.id,
        from_stage=environment.environment_type,
        to_stage="production",
        status="queued",
        forced=body.force_promote,
        requested_by=principal.user_id,
        message=message or f"Deploying {live.commit_sha} to production ({deployment.id}).",
    )
    session.add(promotion)
    await session.flush()
    await audit.record(
        session,
        principal,
        "environment.promote",
        "environment",
        environment.id,
        {"to": "production", "deployment": str(deployment.id), "forced": body.force_promote},
    )
    return promotion
