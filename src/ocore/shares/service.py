"""Share links: time-limited access to one environment's Odoo without an ocore account.

The token is random, shown once, and stored only as its SHA-256; a password
link also needs a password, stored as an argon2id hash.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ocore.core.auth import Principal
from ocore.core.crypto import hash_password, random_token, sha256_hex
from ocore.core.db import utcnow
from ocore.core.errors import Conflict, NotFound
from ocore.environments.models import Environment
from ocore.orgs import audit
from ocore.shares.models import ShareLink
from ocore.shares.schemas import EXPIRIES, ShareCreate


async def list_links(session: AsyncSession, environment: Environment) -> list[ShareLink]:
    statement = (
        select(ShareLink)
        .where(
            ShareLink.environment_id == environment.id,
            ShareLink.organization_id == environment.organization_id,
        )
        .order_by(ShareLink.created_at.desc())
    )
    return list((await session.scalars(statement)).all())


async def create_link(
    session: AsyncSession, principal: Principal, environment: Environment, body: ShareCreate
) -> tuple[ShareLink, str]:
    """The link and its token (which exists nowhere else after this response)."""
    if environment.status == "deleting":
        raise Conflict("The environment is being deleted.")
    token = random_token(32)
    link = ShareLink(
        organization_id=environment.organization_id,
        environment_id=environment.id,
        share_type=body.share_type,
        token_hash=sha256_hex(token),
        password_hash=hash_password(body.password.get_secret_value()) if body.password else None,
        label=body.label,
        expires_at=utcnow() + EXPIRIES[body.expires_in],
        created_by=principal.user_id,
    )
    session.add(link)
    await session.flush()
    await audit.record(
        session, principal, "share.create", "share_link", link.id, {"shareType": body.share_type}
    )
    return link, token


async def get_link(
    session: AsyncSession, environment: Environment, link_id: uuid.UUID
) -> ShareLink:
    link = (
        await session.execute(
            select(ShareLink).where(
                ShareLink.id == link_id,
                ShareLink.environment_id == environment.id,
                ShareLink.organization_id == environment.organization_id,
            )
        )
    ).scalar_one_or_none()
    if link is None:
        raise NotFound(f"Share link {link_id} not found.")
    return link


async def deactivate_link(session: AsyncSession, principal: Principal, link: ShareLink) -> None:
    if link.is_active:
        link.is_active = False
        link.deactivated_at = utcnow()
        await session.flush()
        await audit.record(session, principal, "share.deactivate", "share_link", link.id)


async def delete_link(session: AsyncSession, principal: Principal, link: ShareLink) -> None:
    await audit.record(session, principal, "share.delete", "share_link", link.id)
    await session.delete(link)
    await session.flush()
