from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from ocore.core.auth import Admin, CurrentPrincipal, ManageEnvironments
from ocore.core.deps import JobSystemDep, SecretBoxDep, SettingsDep
from ocore.core.pagination import Pagination
from ocore.core.problems import PROBLEM_RESPONSES
from ocore.core.schemas import Message
from ocore.core.uow import SessionDep
from ocore.environments import lifecycle, service
from ocore.environments.models import Environment
from ocore.environments.repository import EnvironmentRepository
from ocore.environments.schemas import (
    CloneRequest,
    CommitBehaviorOut,
    CommitBehaviorUpdate,
    EnvironmentCreate,
    EnvironmentList,
    EnvironmentOut,
    EnvironmentUpdate,
    Pipeline,
    PromoteAccepted,
    PromoteRequest,
    TestGates,
    TestGatesUpdate,
    TestGatesUpdated,
)
from ocore.orgs import audit
from ocore.projects.router import ProjectDep

router = APIRouter(prefix="/environments", tags=["environments"], responses=PROBLEM_RESPONSES)
project_router = APIRouter(
    prefix="/projects/{project_id}", tags=["environments"], responses=PROBLEM_RESPONSES
)


async def load_environment(
    id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep
) -> Environment:
    return await EnvironmentRepository(session).get(principal.organization_id, id)


EnvironmentDep = Annotated[Environment, Depends(load_environment)]


@router.get("", response_model=EnvironmentList, summary="List all environments")
async def list_environments(
    principal: CurrentPrincipal, session: SessionDep, page: Pagination
) -> EnvironmentList:
    rows, total = await service.list_environments(session, principal, page, None)
    return EnvironmentList(environments=rows, total=total, limit=page.limit, offset=page.offset)


@router.get("/{id}", response_model=EnvironmentOut, summary="Get environment details")
async def get_environment(
    environment: EnvironmentDep, principal: CurrentPrincipal, session: SessionDep
) -> EnvironmentOut:
    return await service.load_out(session, principal.organization_id, environment.id)


@router.put("/{id}", response_model=EnvironmentOut, summary="Update name and description")
async def update_environment(
    environment: EnvironmentDep,
    body: EnvironmentUpdate,
    principal: ManageEnvironments,
    session: SessionDep,
) -> EnvironmentOut:
    await service.update_environment(session, principal, environment, body)
    return await service.load_out(session, principal.organization_id, environment.id)


@router.put(
    "/{id}/commit-behavior", response_model=CommitBehaviorOut, summary="Update commit behavior"
)
async def update_commit_behavior(
    environment: EnvironmentDep,
    body: CommitBehaviorUpdate,
    principal: ManageEnvironments,
    session: SessionDep,
) -> CommitBehaviorOut:
    await service.set_commit_behavior(session, principal, environment, body.behavior)
    return CommitBehaviorOut(
        commit_behavior=body.behavior,
        message=f"New commits on {environment.branch} now {body.behavior.replace('_', ' ')}.",
    )


@project_router.get(
    "/environments", response_model=list[EnvironmentOut], summary="List project environments"
)
async def list_project_environments(
    project: ProjectDep, principal: CurrentPrincipal, session: SessionDep, page: Pagination
) -> list[EnvironmentOut]:
    rows, _ = await service.list_environments(session, principal, page, project.id)
    return rows


@project_router.post(
    "/environments",
    response_model=EnvironmentOut,
    status_code=status.HTTP_201_CREATED,
    summary="Create an environment (link the project to an instance)",
)
async def create_environment(
    project: ProjectDep,
    body: EnvironmentCreate,
    principal: ManageEnvironments,
    session: SessionDep,
) -> EnvironmentOut:
    environment = await service.create_environment(session, principal, project, body)
    return await service.load_out(session, principal.organization_id, environment.id)


@project_router.get("/pipeline", response_model=Pipeline, summary="Get pipeline data")
async def get_pipeline(
    project: ProjectDep,
    principal: CurrentPrincipal,
    session: SessionDep,
    recent_deployments: Annotated[int, Query(alias="recentDeployments", ge=1, le=10)] = 1,
) -> Pipeline:
    stages = await service.pipeline(session, principal, project, recent_deployments)
    return Pipeline(stages=stages)


@project_router.get("/test-gates", response_model=TestGates, summary="Get test gate settings")
async def get_test_gates(project: ProjectDep) -> TestGates:
    return TestGates.model_validate(project)


@project_router.put(
    "/test-gates", response_model=TestGatesUpdated, summary="Update test gate settings"
)
async def update_test_gates(
    project: ProjectDep, body: TestGatesUpdate, principal: Admin, session: SessionDep
) -> TestGatesUpdated:
    project.test_gate_staging = body.test_gate_staging
    project.test_gate_production = body.test_gate_production
    await session.flush()
    await audit.record(
        session, principal, "project.test_gates", "project", project.id, body.model_dump()
    )
    return TestGatesUpdated(
        test_gate_staging=project.test_gate_staging,
        test_gate_production=project.test_gate_production,
        message="Test gates updated.",
    )


@router.delete(
    "/{id}",
    response_model=Message,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Delete an environment with its instance and database (not production)",
)
async def delete_environment(
    environment: EnvironmentDep,
    principal: ManageEnvironments,
    session: SessionDep,
    jobs: JobSystemDep,
) -> Message:
    await lifecycle.delete_environment(session, jobs, principal, environment)
    return Message(message=f"Environment {environment.name} is being deleted.")


@router.post(
    "/{id}/clone",
    response_model=EnvironmentOut,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Clone an environment (database and filestore) onto a new branch",
)
async def clone_environment(
    environment: EnvironmentDep,
    body: CloneRequest,
    principal: ManageEnvironments,
    session: SessionDep,
    settings: SettingsDep,
    box: SecretBoxDep,
    jobs: JobSystemDep,
) -> EnvironmentOut:
    clone = await lifecycle.clone_environment(
        session, settings, box, jobs, principal, environment, body
    )
    return await service.load_out(session, principal.organization_id, clone.id)


@router.post(
    "/{id}/promote",
    response_model=PromoteAccepted,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Promote or demote an environment",
)
async def promote_environment(
    environment: EnvironmentDep,
    body: PromoteRequest,
    principal: CurrentPrincipal,
    session: SessionDep,
    jobs: JobSystemDep,
) -> PromoteAccepted:
    promotion = await lifecycle.promote(session, jobs, principal, environment, body)
    return PromoteAccepted(
        message=promotion.message or f"{environment.name} is now {promotion.to_stage}.",
        new_stage=promotion.to_stage,
        promotion_id=promotion.id,
    )
