"""Organizations, users and tokens: what bootstrap and the token commands do."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ocore.core.auth import ROLE_RANK, Role, mint_token
from ocore.core.errors import Conflict, InvalidInput, NotFound
from ocore.orgs.models import ApiToken, Organization, User
from ocore.settings import Settings

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}$")
MAX_TOKEN_TTL = timedelta(days=3650)


@dataclass(frozen=True)
class IssuedToken:
    token: str
    row: ApiToken


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:63]
    return slug or "org"


async def create_organization(
    session: AsyncSession, *, name: str, owner_email: str, owner_name: str = ""
) -> tuple[Organization, User]:
    if not _EMAIL.match(owner_email):
        raise InvalidInput(f"'{owner_email}' is not an email address.")
    slug = slugify(name)
    taken = await session.scalar(select(func.count()).where(Organization.slug == slug))
    if taken:
        raise Conflict(f"An organization with the slug '{slug}' already exists.")
    organization = Organization(name=name, slug=slug)
    session.add(organization)
    await session.flush()
    owner = User(
        organization_id=organization.id,
        email=owner_email.lower(),
        name=owner_name,
        role=Role.OWNER.value,
    )
    session.add(owner)
    await session.flush()
    return organization, owner


async def is_empty(session: AsyncSession) -> bool:
    return not await session.scalar(select(func.count()).select_from(Organization))


async def add_user(
    session: AsyncSession, organization_id: uuid.UUID, *, email: str, role: Role, name: str = ""
) -> User:
    if not _EMAIL.match(email):
        raise InvalidInput(f"'{email}' is not an email address.")
    exists = await session.scalar(
        select(func.count()).where(
            User.organization_id == organization_id, User.email == email.lower()
        )
    )
    if exists:
        raise Conflict(f"A user with the email '{email}' already exists in this organization.")
    user = User(organization_id=organization_id, email=email.lower(), name=name, role=role.value)
    session.add(user)
    await session.flush()
    return user


async def issue_token(
    session: AsyncSession,
    settings: Settings,
    user: User,
    *,
    role: Role | None = None,
    ttl: timedelta | None = None,
    name: str = "",
) -> IssuedToken:
    role = role or Role(user.role)
    if ROLE_RANK[role] > ROLE_RANK[Role(user.role)]:
        raise InvalidInput(f"A {user.role} cannot hold a token with the role '{role.value}'.")
    ttl = ttl or timedelta(seconds=settings.jwt_default_ttl_seconds)
    if ttl <= timedelta(0) or ttl > MAX_TOKEN_TTL:
        raise InvalidInput("A token's lifetime must be positive and at most ten years.")
    row = ApiToken(
        id=uuid.uuid4(),
        organization_id=user.organization_id,
        user_id=user.id,
        name=name,
        role=role.value,
        expires_at=datetime.now(UTC) + ttl,
    )
    session.add(row)
    await session.flush()
    token = mint_token(
        settings,
        user_id=user.id,
        organization_id=user.organization_id,
        role=role,
        token_id=row.id,
        expires_at=row.expires_at,
    )
    return IssuedToken(token=token, row=row)


async def revoke_token(session: AsyncSession, token_id: uuid.UUID) -> ApiToken:
    row = await session.get(ApiToken, token_id)
    if row is None:
        raise NotFound(f"Token {token_id} not found.")
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        await session.flush()
    return row


async def find_user(session: AsyncSession, email: str, organization_slug: str | None) -> User:
    statement = select(User).where(User.email == email.lower())
    if organization_slug is not None:
        statement = statement.join(Organization, Organization.id == User.organization_id).where(
            Organization.slug == organization_slug
        )
    users = (await session.scalars(statement)).all()
    if not users:
        raise NotFound(f"No user with the email '{email}'.")
    if len(users) > 1:
        raise InvalidInput(f"'{email}' belongs to several organizations; name one with --org.")
    return users[0]
