from __future__ import annotations

from fastapi import APIRouter

from ocore.core.auth import CurrentPrincipal, ManageNeutralization
from ocore.core.problems import PROBLEM_RESPONSES
from ocore.core.uow import SessionDep
from ocore.neutralization import service
from ocore.neutralization.schemas import ProfileOut, ProfileUpdate
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
