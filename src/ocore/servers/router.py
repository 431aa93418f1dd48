from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Response, status

from ocore.core.auth import Admin, CurrentPrincipal
from ocore.core.deps import JobSystemDep, SecretBoxDep
from ocore.core.pagination import Pagination
from ocore.core.problems import PROBLEM_RESPONSES
from ocore.core.uow import SessionDep
from ocore.jobs.schemas import JobOut
from ocore.servers import service
from ocore.servers.models import Server
from ocore.servers.repository import ServerRepository
from ocore.servers.schemas import ServerCreate, ServerList, ServerOut, ServerUpdate

router = APIRouter(prefix="/servers", tags=["servers"], responses=PROBLEM_RESPONSES)


async def load_server(
    server_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep
) -> Server:
    return await ServerRepository(session).get(principal.organization_id, server_id)


ServerDep = Annotated[Server, Depends(load_server)]


@router.get("", response_model=ServerList, summary="List servers")
async def list_servers(
    principal: CurrentPrincipal, session: SessionDep, page: Pagination
) -> ServerList:
    rows, total = await service.list_servers(session, principal, page)
    return ServerList(
        servers=[ServerOut.model_validate(r) for r in rows],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.post(
    "", response_model=ServerOut, status_code=status.HTTP_201_CREATED, summary="Register a server"
)
async def create_server(
    body: ServerCreate, principal: Admin, session: SessionDep, box: SecretBoxDep
) -> ServerOut:
    return ServerOut.model_validate(await service.create_server(session, box, principal, body))


@router.get("/{server_id}", response_model=ServerOut, summary="Get a server")
async def get_server(server: ServerDep) -> ServerOut:
    return ServerOut.model_validate(server)


@router.put("/{server_id}", response_model=ServerOut, summary="Update a server")
async def update_server(
    server: ServerDep, body: ServerUpdate, principal: Admin, session: SessionDep, box: SecretBoxDep
) -> ServerOut:
    updated = await service.update_server(session, box, principal, server, body)
    return ServerOut.model_validate(updated)


@router.delete("/{server_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Remove a server")
async def delete_server(server: ServerDep, principal: Admin, session: SessionDep) -> Response:
    await service.delete_server(session, principal, server)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{server_id}/check",
    response_model=JobOut,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Check that the server is reachable (pins its host key on first contact)",
)
async def check_server(
    server: ServerDep, principal: Admin, session: SessionDep, jobs: JobSystemDep
) -> JobOut:
    return JobOut.model_validate(await service.check_server(session, jobs, principal, server))
