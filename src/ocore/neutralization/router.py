from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from ocore.core.auth import CurrentPrincipal, ManageNeutralization
from ocore.core.deps import JobSystemDep, SecretBoxDep
from ocore.core.pagination import Pagination
from ocore.core.problems import PROBLEM_RESPONSES
from ocore.core.uow import SessionDep
from ocore.environments.models import Environment
from ocore.environments.repository import EnvironmentRepository
from ocore.neutralization import service, toggle
from ocore.neutralization.schemas import (
    Category,
    CategoryToggleRequest,
    Dangerous,
    ItemList,
    ItemOut,
    NeutralizeAccepted,
    NeutralizeRequest,
    ProfileOut,
    ProfileUpdate,
    Summary,
    ToggleRequest,
)
from ocore.neutralization.target import refuse_production
from ocore.projects.router import ProjectDep

# Routes on one environment's neutralization items.
router = APIRouter(
    prefix="/environments/{env_id}/neutralization",
    tags=["neutralization"],
    responses=PROBLEM_RESPONSES,
)
project_router = APIRouter(
    prefix="/projects/{project_id}/neutralization",
    tags=["neutralization"],
    responses=PROBLEM_RESPONSES,
)


async def load_environment(
    env_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep
) -> Environment:
    """The caller's organization's environment; another organization's is a 404."""
    return await EnvironmentRepository(session).get(principal.organization_id, env_id)


EnvironmentDep = Annotated[Environment, Depends(load_environment)]


@router.get("/items", response_model=ItemList, summary="List neutralization items")
async def list_items(
    environment: EnvironmentDep,
    session: SessionDep,
    page: Pagination,
    category: Annotated[Category | None, Query(description="Only this category")] = None,
) -> ItemList:
    rows, total = await service.list_items(session, environment, page, category)
    return ItemList(items=[ItemOut.model_validate(r) for r in rows], total=total)


@router.get("/summary", response_model=Summary, summary="Get neutralization summary")
async def get_summary(environment: EnvironmentDep, session: SessionDep) -> Summary:
    return await service.summary(session, environment)


@router.get("/dangerous", response_model=Dangerous, summary="Get re-enabled dangerous items")
async def get_dangerous(environment: EnvironmentDep, session: SessionDep) -> Dangerous:
    rows = await service.dangerous_items(session, environment)
    return Dangerous(
        has_dangerous_reenabled=bool(rows), items=[ItemOut.model_validate(r) for r in rows]
    )


@router.post(
    "/items/{item_id}/toggle", response_model=ItemOut, summary="Toggle neutralization item"
)
async def toggle_item(
    item_id: uuid.UUID,
    body: ToggleRequest,
    principal: ManageNeutralization,
    environment: EnvironmentDep,
    session: SessionDep,
    box: SecretBoxDep,
    jobs: JobSystemDep,
) -> ItemOut:
    refuse_production(environment)  # a 409 for production, whichever item is asked for
    item = await service.get_item(session, environment, item_id)
    await toggle.toggle(session, box, jobs.ssh_pool, principal, environment, [item], body.enable)
    await toggle.audit_toggle(session, principal, environment, [item], body.enable)
    return ItemOut.model_validate(item)


@router.post("/toggle-category", response_model=ItemList, summary="Toggle neutralization category")
async def toggle_category(
    body: CategoryToggleRequest,
    principal: ManageNeutralization,
    environment: EnvironmentDep,
    session: SessionDep,
    box: SecretBoxDep,
    jobs: JobSystemDep,
) -> ItemList:
    items = await service.category_items(session, environment, body.category)
    await toggle.toggle(session, box, jobs.ssh_pool, principal, environment, items, body.enable)
    await toggle.audit_toggle(session, principal, environment, items, body.enable, body.category)
    return ItemList(items=[ItemOut.model_validate(i) for i in items], total=len(items))


@router.post(
    "/neutralize",
    response_model=NeutralizeAccepted,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Trigger manual neutralization",
)
async def neutralize(
    body: NeutralizeRequest,
    principal: ManageNeutralization,
    environment: EnvironmentDep,
    session: SessionDep,
    jobs: JobSystemDep,
) -> NeutralizeAccepted:
    job = await service.request_neutralization(
        session, jobs, principal, environment, body.confirm_text
    )
    return NeutralizeAccepted(
        environment_id=environment.id,
        message=f"Neutralization of {environment.name} queued.",
        job_id=job.id,
    )


@project_router.get(
    "/profile", response_model=ProfileOut, summary="Get the project's neutralization profile"
)
async def get_profile(
    project: ProjectDep, principal: CurrentPrincipal, session: SessionDep
) -> ProfileOut:
    profile = await service.get_or_create_profile(session, principal.organization_id, project.id)
    return ProfileOut.model_validate(profile)


@project_router.put(
    "/profile", response_model=ProfileOut, summary="Update the project's neutralization profile"
)
async def update_profile(
    project: ProjectDep, body: ProfileUpdate, principal: ManageNeutralization, session: SessionDep
) -> ProfileOut:
    return ProfileOut.model_validate(
        await service.update_profile(session, principal, project.id, body)
    )
