"""Every bad token answers 401; a missing permission 403; another tenant's row 404."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jose import jwt

from ocore.app import create_app
from ocore.core.auth import Role
from ocore.core.db import Database
from ocore.core.uow import commit
from ocore.orgs import service as orgs
from ocore.orgs.models import User
from ocore.settings import Settings
from tests.conftest import Tenant

PROJECT = {
    "name": "shop",
    "repositoryUrl": "https://github.com/acme/shop.git",
    "odooVersion": "17.0",
}


def claims_for(settings: Settings, tenant: Tenant, **overrides: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": str(tenant.owner.user.id),
        "org": str(tenant.organization_id),
        "role": "owner",
        "jti": str(tenant.owner.token_id),
        "typ": "access",
        "iat": int(now.timestamp()),
        "nbf": int(now.timestamp()),
        "exp": int((now + timedelta(hours=1)).timestamp()),
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def sign(settings: Settings, claims: dict[str, Any], **kwargs: Any) -> str:
    return jwt.encode(claims, settings.effective_jwt_secret, algorithm="HS256", **kwargs)


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def assert_401(client: httpx.AsyncClient, token: str | None, *, header: str | None = None):
    headers = {}
    if header is not None:
        headers["Authorization"] = header
    elif token is not None:
        headers["Authorization"] = f"Bearer {token}"
    response = await client.get("/api/projects", headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"
    body = response.json()
    assert body["status"] == 401
    assert body["code"] == "unauthorized"
    return body


async def test_a_valid_token_is_accepted(client, tenant: Tenant, settings: Settings) -> None:
    response = await client.get("/api/projects", headers=tenant.headers)
    assert response.status_code == 200
    # The same claims re-signed by us are accepted too: the checks below fail for their reason.
    token = sign(settings, claims_for(settings, tenant))
    response = await client.get("/api/projects", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


async def test_missing_and_malformed_headers(client, tenant: Tenant) -> None:
    body = await assert_401(client, None)
    assert "Authorization" in body["detail"]
    await assert_401(client, None, header=f"Basic {tenant.owner.token}")
    await assert_401(client, None, header="Bearer ")
    await assert_401(client, "not-a-jwt")


async def test_expired_token(client, tenant: Tenant, settings: Settings) -> None:
    past = datetime.now(UTC) - timedelta(hours=2)
    token = sign(
        settings,
        claims_for(
            settings,
            tenant,
            iat=int(past.timestamp()),
            nbf=int(past.timestamp()),
            exp=int((past + timedelta(minutes=10)).timestamp()),
        ),
    )
    body = await assert_401(client, token)
    assert "expired" in body["detail"].lower()


async def test_token_without_exp(client, tenant: Tenant, settings: Settings) -> None:
    claims = claims_for(settings, tenant)
    del claims["exp"]
    await assert_401(client, sign(settings, claims))


async def test_not_yet_valid_token(client, tenant: Tenant, settings: Settings) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    token = sign(settings, claims_for(settings, tenant, nbf=int(later.timestamp())))
    await assert_401(client, token)


async def test_tampered_signature_and_payload(client, tenant: Tenant, settings: Settings) -> None:
    header, payload, signature = tenant.owner.token.split(".")
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    await assert_401(client, f"{header}.{payload}.{flipped}")
    # A payload raised to another role keeps the old signature: refused.
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["org"] = str(uuid.uuid4())
    await assert_401(client, f"{header}.{b64(claims)}.{signature}")


async def test_signed_with_another_secret(client, tenant: Tenant, settings: Settings) -> None:
    token = jwt.encode(claims_for(settings, tenant), "another-secret", algorithm="HS256")
    await assert_401(client, token)


@pytest.mark.parametrize(
    ("claim", "value"),
    [("aud", "someone-else"), ("iss", "evil-issuer"), ("typ", "refresh"), ("role", "superuser")],
)
async def test_wrong_claims(client, tenant: Tenant, settings: Settings, claim, value) -> None:
    await assert_401(client, sign(settings, claims_for(settings, tenant, **{claim: value})))


async def test_alg_none(client, tenant: Tenant, settings: Settings) -> None:
    token = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims_for(settings, tenant))}."
    body = await assert_401(client, token)
    assert "algorithm" in body["detail"]


async def test_wrong_typ_header(client, tenant: Tenant, settings: Settings) -> None:
    token = sign(settings, claims_for(settings, tenant), headers={"typ": "dpop+jwt"})
    await assert_401(client, token)


async def test_oversized_token(client, tenant: Tenant, settings: Settings) -> None:
    token = sign(settings, claims_for(settings, tenant, padding="x" * 10_000))
    body = await assert_401(client, token)
    assert "too large" in body["detail"]


async def test_unknown_jti_is_refused(client, tenant: Tenant, settings: Settings) -> None:
    # Correctly signed, but never minted by this server (e.g. a leaked secret's forgery).
    await assert_401(client, sign(settings, claims_for(settings, tenant, jti=str(uuid.uuid4()))))


async def test_revoked_token(client, tenant: Tenant, database: Database) -> None:
    assert (await client.get("/api/projects", headers=tenant.headers)).status_code == 200
    async with database.sessionmaker() as session:
        await orgs.revoke_token(session, tenant.owner.token_id)
        await commit(session)
    body = await assert_401(client, tenant.owner.token)
    assert "revoked" in body["detail"]


async def test_disabled_user(client, tenant: Tenant, database: Database) -> None:
    async with database.sessionmaker() as session:
        user = await session.get(User, tenant.owner.user.id)
        assert user is not None
        user.is_active = False
        await commit(session)
    await assert_401(client, tenant.owner.token)


async def test_role_claim_cannot_exceed_the_token_row(
    client, tenant: Tenant, settings: Settings
) -> None:
    viewer = await tenant.add_member(Role.VIEWER)
    claims = claims_for(
        settings, tenant, sub=str(viewer.user.id), jti=str(viewer.token_id), role="owner"
    )
    await assert_401(client, sign(settings, claims))


async def test_hs256_signed_with_the_rs256_public_key(
    settings: Settings, database: Database, tenant: Tenant
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    rs_settings = settings.model_copy(
        update={"jwt_algorithm": "RS256", "jwt_public_key": public_pem}
    )
    app = create_app(rs_settings)
    app.state.database = database
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ocore.test") as client:
        good = jwt.encode(claims_for(settings, tenant), private_pem, algorithm="RS256")
        assert (
            await client.get("/api/projects", headers={"Authorization": f"Bearer {good}"})
        ).status_code == 200
        # The classic confusion attack: the public key used as an HMAC secret.
        forged = f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64(claims_for(settings, tenant))}"
        import hashlib
        import hmac

        signature = hmac.new(public_pem.encode(), forged.encode(), hashlib.sha256).digest()
        forged += "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()
        await assert_401(client, forged)


async def test_permissions_by_role(client, tenant: Tenant) -> None:
    viewer = await tenant.add_member(Role.VIEWER)
    developer = await tenant.add_member(Role.DEVELOPER)
    admin = await tenant.add_member(Role.ADMIN)

    for member in (viewer, developer):
        response = await client.post("/api/projects", json=PROJECT, headers=member.headers)
        assert response.status_code == 403, response.text
        assert response.json()["code"] == "forbidden"
        assert "admin" in response.json()["detail"]
    response = await client.post("/api/projects", json=PROJECT, headers=admin.headers)
    assert response.status_code == 201
    project_id = response.json()["id"]
    # Reading is open to every role of the organization.
    for member in (viewer, developer):
        assert (
            await client.get(f"/api/projects/{project_id}", headers=member.headers)
        ).status_code == 200
    response = await client.delete(f"/api/projects/{project_id}", headers=viewer.headers)
    assert response.status_code == 403
    assert (
        await client.get(f"/api/projects/{project_id}", headers=admin.headers)
    ).status_code == 200


async def test_token_roles_are_capped_by_the_user(
    database: Database, settings: Settings, tenant: Tenant
) -> None:
    developer = await tenant.add_member(Role.DEVELOPER)
    async with database.sessionmaker() as session:
        with pytest.raises(Exception, match="cannot hold a token"):
            await orgs.issue_token(session, settings, developer.user, role=Role.ADMIN)


async def test_other_organization_rows_are_404(
    client, tenant: Tenant, other_tenant: Tenant
) -> None:
    project = (await client.post("/api/projects", json=PROJECT, headers=tenant.headers)).json()
    server = (
        await client.post(
            "/api/servers", json={"name": "local", "isLocal": True}, headers=tenant.headers
        )
    ).json()
    for path in (f"/api/projects/{project['id']}", f"/api/servers/{server['id']}"):
        for method, body in (("GET", None), ("PUT", {"name": "stolen"}), ("DELETE", None)):
            response = await client.request(method, path, json=body, headers=other_tenant.headers)
            assert response.status_code == 404, (method, path, response.text)
            assert project["name"] not in response.text
    response = await client.post(
        f"/api/projects/{project['id']}/webhook-secret", headers=other_tenant.headers
    )
    assert response.status_code == 404
    listing = (await client.get("/api/projects", headers=other_tenant.headers)).json()
    assert listing["total"] == 0
    # Nothing changed for the owner.
    mine = (await client.get(f"/api/projects/{project['id']}", headers=tenant.headers)).json()
    assert mine["name"] == "shop"
