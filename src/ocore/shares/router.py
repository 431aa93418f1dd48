from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from ocore.core.auth import CurrentPrincipal, ManageShares
from ocore.core.deps import SettingsDep
from ocore.core.problems import PROBLEM_RESPONSES
from ocore.core.schemas import Message
from ocore.core.uow import SessionDep
from ocore.environments.router import EnvironmentDep
from ocore.shares import service
from ocore.shares.schemas import ShareCreate, ShareCreated, ShareList, ShareOut

router = APIRouter(prefix="/environments/{id}/share", tags=["shares"], responses=PROBLEM_RESPONSES)


@router.get("", response_model=ShareList, summary="List an environment's share links")
async def list_links(
    environment: EnvironmentDep, principal: CurrentPrincipal, session: SessionDep
) -> ShareList:
    links = await service.list_links(session, environment)
    return ShareList(share_links=[ShareOut.model_validate(x) for x in links], total=len(links))


@router.post(
    "",
    response_model=ShareCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Create a share link (token or password protected)",
)
async def create_link(
    environment: EnvironmentDep,
    body: ShareCreate,
    principal: ManageShares,
    session: SessionDep,
    settings: SettingsDep,
) -> ShareCreated:
    link, token = await service.create_link(session, principal, environment, body)
    return ShareCreated(
        id=link.id,
        share_type=link.share_type,
        url=f"{settings.public_url.rstrip('/')}/api/share/{token}",
        expires_at=link.expires_at,
    )


@router.delete("/{link_id}", response_model=Message, summary="Deactivate a share link")
async def deactivate_link(
    environment: EnvironmentDep, link_id: uuid.UUID, principal: ManageShares, session: SessionDep
) -> Message:
    link = await service.get_link(session, environment, link_id)
    await service.deactivate_link(session, principal, link)
    return Message(message="The share link is deactivated.")


@router.delete(
    "/{link_id}/permanent",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Permanently remove a share link",
)
async def delete_link(
    environment: EnvironmentDep, link_id: uuid.UUID, principal: ManageShares, session: SessionDep
) -> Response:
    link = await service.get_link(session, environment, link_id)
    await service.delete_link(session, principal, link)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
