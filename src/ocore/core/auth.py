"""JWT bearer authentication, roles and the permission dependencies routes declare.

The only module that imports python-jose.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from fastapi import Depends, Request
from jose import JWTError, jwt
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ocore.core.deps import SettingsDep
from ocore.core.errors import Forbidden, Unauthorized
from ocore.core.uow import SessionDep
from ocore.orgs.models import ApiToken, User
from ocore.settings import Settings

TOKEN_TYPE = "access"  # noqa: S105 - a claim value, not a secret
_HMAC_ALGORITHMS = {"HS256", "HS384", "HS512"}


class Permission(StrEnum):
    MANAGE_INSTANCES = "manage:instances"
    MANAGE_ENVIRONMENTS = "manage:environments"
    DEPLOY = "deploy"
    PROMOTE_STAGING = "promote:staging"
    PROMOTE_PRODUCTION = "promote:production"
    MANAGE_SHARES = "manage:shares"
    MANAGE_NEUTRALIZATION = "manage:neutralization"
    ADMIN = "admin"


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    DEVELOPER = "developer"
    VIEWER = "viewer"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.OWNER: frozenset(Permission),
    Role.ADMIN: frozenset(Permission),
    Role.DEVELOPER: frozenset(
        {
            Permission.MANAGE_ENVIRONMENTS,
            Permission.DEPLOY,
            Permission.PROMOTE_STAGING,
            Permission.MANAGE_SHARES,
            Permission.MANAGE_NEUTRALIZATION,
        }
    ),
    Role.VIEWER: frozenset(),
}
# A role may mint tokens for itself or the roles below it, never above.
ROLE_RANK = {Role.VIEWER: 0, Role.DEVELOPER: 1, Role.ADMIN: 2, Role.OWNER: 3}


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user of one organization, through one token, with one role."""

    user_id: uuid.UUID
    organization_id: uuid.UUID
    role: Role
    token_id: uuid.UUID
    permissions: frozenset[Permission] = field(default=frozenset())

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions


def mint_token(
    settings: Settings,
    *,
    user_id: uuid.UUID,
    organization_id: uuid.UUID,
    role: Role,
    token_id: uuid.UUID,
    expires_at: datetime,
) -> str:
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": str(user_id),
        "org": str(organization_id),
        "role": role.value,
        "jti": str(token_id),
        "typ": TOKEN_TYPE,
        "iat": int(now.timestamp()),
        "nbf": int(now.timestamp()),
        "exp": int(expires_at.timestamp()),
    }
    return jwt.encode(claims, _signing_key(settings), algorithm=settings.jwt_algorithm)


def _signing_key(settings: Settings) -> str:
    if settings.jwt_algorithm in _HMAC_ALGORITHMS:
        return settings.effective_jwt_secret
    if settings.jwt_private_key is None:
        raise RuntimeError(
            f"OCORE_JWT_PRIVATE_KEY is needed to mint {settings.jwt_algorithm} tokens"
        )
    return settings.jwt_private_key.get_secret_value()


def _verification_key(settings: Settings) -> str:
    if settings.jwt_algorithm in _HMAC_ALGORITHMS:
        return settings.effective_jwt_secret
    if not settings.jwt_public_key:
        raise RuntimeError(f"OCORE_JWT_PUBLIC_KEY is needed to verify {settings.jwt_algorithm}")
    return settings.jwt_public_key


def decode_token(settings: Settings, token: str) -> dict[str, Any]:
    """Verified claims of a token, or Unauthorized. Never trusts the token's own ``alg``."""
    if len(token) > settings.jwt_max_length:
        raise Unauthorized("The token is too large.")
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != settings.jwt_algorithm:
            raise Unauthorized("The token is signed with an algorithm this server does not accept.")
        if header.get("typ", "JWT") != "JWT":
            raise Unauthorized("The token header has the wrong type.")
        claims: dict[str, Any] = jwt.decode(
            token,
            _verification_key(settings),
            algorithms=[settings.jwt_algorithm],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={
                "require_exp": True,
                "require_iat": True,
                "require_sub": True,
                "require_jti": True,
                "require_aud": True,
                "require_iss": True,
                "leeway": 30,
            },
        )
    except JWTError as exc:
        raise Unauthorized(f"The token is not valid: {str(exc).rstrip('.')}.") from exc
    if claims.get("typ") != TOKEN_TYPE:
        raise Unauthorized("The token is not an access token.")
    return claims


def _claim_uuid(claims: dict[str, Any], name: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(claims[name]))
    except (KeyError, ValueError) as exc:
        raise Unauthorized(f"The token's '{name}' claim is missing or malformed.") from exc


async def resolve_principal(session: AsyncSession, settings: Settings, token: str) -> Principal:
    claims = decode_token(settings, token)
    user_id = _claim_uuid(claims, "sub")
    organization_id = _claim_uuid(claims, "org")
    token_id = _claim_uuid(claims, "jti")
    try:
        role = Role(str(claims.get("role")))
    except ValueError as exc:
        raise Unauthorized("The token's role is unknown.") from exc

    token_row = await session.get(ApiToken, token_id)
    if token_row is None:
        # ocore records every token it mints; an HMAC token it does not know was
        # not minted here. Tokens of an external identity provider have no row.
        if settings.jwt_algorithm in _HMAC_ALGORITHMS:
            raise Unauthorized("The token is not known to this server.")
    elif (
        token_row.revoked_at is not None
        or token_row.user_id != user_id
        or token_row.organization_id != organization_id
        or token_row.role != role
    ):
        raise Unauthorized("The token has been revoked.")

    user = (
        await session.execute(
            select(User).where(User.id == user_id, User.organization_id == organization_id)
        )
    ).scalar_one_or_none()
    if user is None or not user.is_active:
        raise Unauthorized("The token's user does not exist or is disabled.")
    if ROLE_RANK[role] > ROLE_RANK[Role(user.role)]:
        raise Unauthorized("The token's role exceeds its user's role.")
    return Principal(
        user_id=user_id,
        organization_id=organization_id,
        role=role,
        token_id=token_id,
        permissions=ROLE_PERMISSIONS[role],
    )


def _bearer_token(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized("Send a bearer token in the Authorization header.")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("The Authorization header must be 'Bearer <token>'.")
    return token.strip()


async def authenticate(request: Request, session: SessionDep, settings: SettingsDep) -> Principal:
    principal = await resolve_principal(session, settings, _bearer_token(request))
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(authenticate)]


class Authorizer:
    """A dependency that admits callers holding one permission."""

    def __init__(self, permission: Permission) -> None:
        self.permission = permission

    async def __call__(self, principal: CurrentPrincipal) -> Principal:
        if not principal.can(self.permission):
            raise Forbidden(
                f"This action needs the '{self.permission.value}' permission; "
                f"the role '{principal.role.value}' does not have it."
            )
        return principal


# The typed dependencies routes declare: the permission is part of the signature.
ManageInstances = Annotated[Principal, Depends(Authorizer(Permission.MANAGE_INSTANCES))]
ManageEnvironments = Annotated[Principal, Depends(Authorizer(Permission.MANAGE_ENVIRONMENTS))]
Deploy = Annotated[Principal, Depends(Authorizer(Permission.DEPLOY))]
PromoteStaging = Annotated[Principal, Depends(Authorizer(Permission.PROMOTE_STAGING))]
PromoteProduction = Annotated[Principal, Depends(Authorizer(Permission.PROMOTE_PRODUCTION))]
ManageShares = Annotated[Principal, Depends(Authorizer(Permission.MANAGE_SHARES))]
ManageNeutralization = Annotated[Principal, Depends(Authorizer(Permission.MANAGE_NEUTRALIZATION))]
Admin = Annotated[Principal, Depends(Authorizer(Permission.ADMIN))]


def token_expiry(ttl: timedelta) -> datetime:
    return datetime.now(UTC) + ttl
