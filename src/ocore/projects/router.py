from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Response, status

from ocore.core.auth import Admin, CurrentPrincipal
from ocore.core.deps import SecretBoxDep, SettingsDep
from ocore.core.pagination import Pagination
from ocore.core.problems import PROBLEM_RESPONSES
from ocore.core.uow import SessionDep
from ocore.projects import service
from ocore.projects.models import Project
from ocore.projects.repository import ProjectRepository
from ocore.projects.schemas import (
    ProjectCreate,
    ProjectCreated,
    ProjectList,
    ProjectOut,
    ProjectUpdate,
    WebhookSecret,
)

router = APIRouter(prefix="/projects", tags=["projects"], responses=PROBLEM_RESPONSES)


async def load_project(
    project_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep
) -> Project:
    return await ProjectRepository(session).get(principal.organization_id, project_id)


ProjectDep = Annotated[Project, Depends(load_project)]


@router.get("", response_model=ProjectList, summary="List projects")
async def list_projects(
    principal: CurrentPrincipal, session: SessionDep, page: Pagination
) -> ProjectList:
    rows, total = await service.list_projects(session, principal, page)
    return ProjectList(
        projects=[ProjectOut.model_validate(r) for r in rows],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.post(
    "",
    response_model=ProjectCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Create a project",
)
async def create_project(
    body: ProjectCreate,
    principal: Admin,
    session: SessionDep,
    settings: SettingsDep,
    box: SecretBoxDep,
) -> ProjectCreated:
    project, secret = await service.create_project(session, settings, box, principal, body)
    out = ProjectOut.model_validate(project)
    return ProjectCreated(**out.model_dump(), webhook_secret=secret)


@router.get("/{project_id}", response_model=ProjectOut, summary="Get a project")
async def get_project(project: ProjectDep) -> ProjectOut:
    return ProjectOut.model_validate(project)


@router.put("/{project_id}", response_model=ProjectOut, summary="Update a project")
async def update_project(
    project: ProjectDep,
    body: ProjectUpdate,
    principal: Admin,
    session: SessionDep,
    settings: SettingsDep,
    box: SecretBoxDep,
) -> ProjectOut:
    updated = await service.update_project(session, settings, box, principal, project, body)
    return ProjectOut.model_validate(updated)


@router.post(
    "/{project_id}/webhook-secret",
    response_model=WebhookSecret,
    summary="Rotate the webhook secret (shown once)",
)
async def rotate_webhook_secret(
    project: ProjectDep, principal: Admin, session: SessionDep, box: SecretBoxDep
) -> WebhookSecret:
    secret = await service.rotate_webhook_secret(session, box, principal, project)
    return WebhookSecret(webhook_secret=secret)


@router.delete("/{project_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a project")
async def delete_project(project: ProjectDep, principal: Admin, session: SessionDep) -> Response:
    await service.delete_project(session, principal, project)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
