from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from ocore.core.auth import CurrentPrincipal, ManageInstances
from ocore.core.db import utcnow
from ocore.core.deps import JobSystemDep, SecretBoxDep, SettingsDep
from ocore.core.pagination import Pagination
from ocore.core.problems import PROBLEM_RESPONSES
from ocore.core.uow import SessionDep
from ocore.instances import health, service
from ocore.instances.models import Instance
from ocore.instances.probe import history_stats
from ocore.instances.repository import InstanceRepository
from ocore.instances.schemas import (
    Accepted,
    ControlRequest,
    HealthFactor,
    HealthScore,
    InstanceCreate,
    InstanceHealth,
    InstanceList,
    InstanceOut,
    InstanceUpdate,
    instance_out,
)

router = APIRouter(prefix="/instances", tags=["instances"], responses=PROBLEM_RESPONSES)


async def load_instance(
    id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep
) -> Instance:
    return await InstanceRepository(session).get(principal.organization_id, id)


InstanceDep = Annotated[Instance, Depends(load_instance)]


async def _out(session: SessionDep, instance: Instance) -> InstanceOut:
    domains = await InstanceRepository(session).domains([instance.id])
    return instance_out(instance, domains[instance.id])


@router.get("", response_model=InstanceList, summary="List instances")
async def list_instances(
    principal: CurrentPrincipal,
    session: SessionDep,
    page: Pagination,
    server_id: Annotated[uuid.UUID | None, Query(description="Filter by server UUID")] = None,
) -> InstanceList:
    rows, total = await service.list_instances(session, principal, page, server_id)
    domains = await InstanceRepository(session).domains([r.id for r in rows])
    return InstanceList(
        instances=[instance_out(r, domains[r.id]) for r in rows],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.post(
    "",
    response_model=InstanceOut,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Create a new Odoo instance (enqueues its provisioning)",
)
async def create_instance(
    body: InstanceCreate,
    principal: ManageInstances,
    session: SessionDep,
    settings: SettingsDep,
    box: SecretBoxDep,
    jobs: JobSystemDep,
) -> InstanceOut:
    instance, _ = await service.create_instance(session, settings, box, jobs, principal, body)
    return await _out(session, instance)


@router.get("/{id}", response_model=InstanceOut, summary="Get instance details")
async def get_instance(instance: InstanceDep, session: SessionDep) -> InstanceOut:
    return await _out(session, instance)


@router.put("/{id}", response_model=InstanceOut, summary="Update an instance")
async def update_instance(
    instance: InstanceDep, body: InstanceUpdate, principal: ManageInstances, session: SessionDep
) -> InstanceOut:
    updated = await service.update_instance(session, principal, instance, body)
    return await _out(session, updated)


@router.delete(
    "/{id}",
    response_model=Accepted,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Delete an instance (asynchronously)",
)
async def delete_instance(
    instance: InstanceDep,
    principal: ManageInstances,
    session: SessionDep,
    jobs: JobSystemDep,
    drop_database: Annotated[
        bool, Query(alias="dropDatabase", description="Also drop its database and filestore")
    ] = False,
) -> Accepted:
    job = await service.delete_instance(
        session, jobs, principal, instance, drop_database=drop_database
    )
    kept = "" if drop_database else " Its database and filestore are kept."
    return Accepted(message=f"Instance {instance.slug} is being deleted.{kept}", job_id=job.id)


@router.post(
    "/{id}/control",
    response_model=Accepted,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Start, stop or restart an instance",
)
async def control_instance(
    instance: InstanceDep,
    body: ControlRequest,
    principal: ManageInstances,
    session: SessionDep,
    jobs: JobSystemDep,
) -> Accepted:
    job = await service.control_instance(session, jobs, principal, instance, body.action)
    return Accepted(message=f"{body.action.capitalize()} of {instance.slug} queued.", job_id=job.id)


@router.get("/{id}/health", response_model=InstanceHealth, summary="Get instance health")
async def instance_health(instance: InstanceDep) -> InstanceHealth:
    return InstanceHealth.model_validate(instance)


@router.get("/{id}/health-score", response_model=HealthScore, summary="Get the health score")
async def instance_health_score(instance: InstanceDep, session: SessionDep) -> HealthScore:
    history = await history_stats(session, instance.id)
    score, grade, factors = health.compute(instance, history)
    return HealthScore(
        score=score,
        grade=grade,
        computed_at=utcnow(),
        factors=[
            HealthFactor(
                name=f.name, score=f.score, weight=f.weight, weighted=f.weighted, details=f.details
            )
            for f in factors
        ],
    )
