"""Environments: a project's branch on an instance, at a stage of the pipeline."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ocore.core.auth import Principal
from ocore.core.errors import Conflict, NotFound
from ocore.core.pagination import PageParams, paginate
from ocore.deployments.models import Deployment
from ocore.environments.models import Environment
from ocore.environments.repository import EnvironmentRepository
from ocore.environments.schemas import (
    NAME_MAX,
    EnvironmentCreate,
    EnvironmentOut,
    EnvironmentUpdate,
    PipelineEntry,
)
from ocore.instances.models import Instance
from ocore.instances.repository import InstanceRepository
from ocore.orgs import audit
from ocore.projects.models import Project

STAGES = ("development", "staging", "production")


def environment_out(
    environment: Environment, instance: Instance | None, domain: str | None
) -> EnvironmentOut:
    data: dict[str, Any] = {
        name: getattr(environment, name)
        for name in EnvironmentOut.model_fields
        if hasattr(Environment, name)
    }
    data.update(
        instance_name=instance.name if instance else None,
        instance_slug=instance.slug if instance else None,
        instance_status=instance.status if instance else None,
        server_id=instance.server_id if instance else None,
        odoo_version=instance.odoo_version if instance else None,
        auto_subdomain=instance.auto_subdomain if instance else None,
        primary_domain=domain,
    )
    return EnvironmentOut(**data)


async def load_out(
    session: AsyncSession, organization_id: uuid.UUID, environment_id: uuid.UUID
) -> EnvironmentOut:
    repository = EnvironmentRepository(session)
    row = (
        await session.execute(
            repository.with_instance(organization_id).where(Environment.id == environment_id)
        )
    ).first()
    if row is None:
        raise NotFound(f"Environment {environment_id} not found.")
    return environment_out(*row)


async def list_environments(
    session: AsyncSession, principal: Principal, page: PageParams, project_id: uuid.UUID | None
) -> tuple[list[EnvironmentOut], int]:
    statement = EnvironmentRepository(session).with_instance(principal.organization_id)
    if project_id is not None:
        statement = statement.where(Environment.project_id == project_id)
    rows, total = await paginate(
        session, statement.order_by(Environment.created_at, Environment.id), page, rows=True
    )
    return [environment_out(*row) for row in rows], total


async def create_environment(
    session: AsyncSession, principal: Principal, project: Project, body: EnvironmentCreate
) -> Environment:
    repository = EnvironmentRepository(session)
    instance = await InstanceRepository(session).get(principal.organization_id, body.instance_id)
    if await repository.instance_in_use(instance.id):
        raise Conflict(f"Instance {instance.slug} already serves an environment.")
    if body.environment_type == "production" and await repository.has_production(project.id):
        raise Conflict("The project already has a production environment.")
    environment = Environment(
        organization_id=principal.organization_id,
        project_id=project.id,
        instance_id=instance.id,
        name=body.name or body.branch[:NAME_MAX],
        description=body.description,
        environment_type=body.environment_type,
        branch=body.branch,
        status="ready" if instance.status == "running" else instance.status,
    )
    try:
        await repository.add(environment)
    except IntegrityError:
        # A concurrent request created the production environment first.
        raise Conflict("The project already has a production environment.") from None
    await audit.record(session, principal, "environment.create", "environment", environment.id)
    return environment


async def update_environment(
    session: AsyncSession, principal: Principal, environment: Environment, body: EnvironmentUpdate
) -> Environment:
    changes = body.changes()
    for field, value in changes.items():
        setattr(environment, field, value)
    await session.flush()
    await audit.record(
        session,
        principal,
        "environment.update",
        "environment",
        environment.id,
        {"fields": sorted(changes)},
    )
    return environment


async def set_commit_behavior(
    session: AsyncSession, principal: Principal, environment: Environment, behavior: str
) -> Environment:
    environment.commit_behavior = behavior
    await session.flush()
    await audit.record(
        session,
        principal,
        "environment.commit_behavior",
        "environment",
        environment.id,
        {"behavior": behavior},
    )
    return environment


async def pipeline(
    session: AsyncSession, principal: Principal, project: Project, recent: int
) -> dict[str, list[PipelineEntry]]:
    statement = (
        EnvironmentRepository(session)
        .with_instance(principal.organization_id)
        .where(Environment.project_id == project.id)
        .order_by(Environment.created_at)
    )
    stages: dict[str, list[PipelineEntry]] = {stage: [] for stage in STAGES}
    for environment, instance, domain in (await session.execute(statement)).all():
        deployments: list[dict[str, Any]] = []
        if instance is not None:
            rows = (
                await session.scalars(
                    select(Deployment)
                    .where(
                        Deployment.instance_id == instance.id,
                        Deployment.organization_id == principal.organization_id,
                    )
                    .order_by(Deployment.created_at.desc())
                    .limit(recent)
                )
            ).all()
            deployments = [
                {
                    "id": str(d.id),
                    "status": d.status,
                    "commitSha": d.commit_sha,
                    "branch": d.branch,
                    "createdAt": d.created_at.isoformat(),
                    "successVerdict": d.success_verdict,
                }
                for d in rows
            ]
        out = environment_out(environment, instance, domain)
        stages[environment.environment_type].append(
            PipelineEntry(**out.model_dump(), recent_deployments=deployments)
        )
    return stages
