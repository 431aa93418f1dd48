"""Share links: the secret appears once, is stored hashed, and links deactivate or vanish."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from ocore.core.auth import Role
from ocore.core.crypto import sha256_hex, verify_password
from ocore.shares.models import ShareLink
from tests.conftest import Tenant
from tests.factories import make_instance


@pytest.fixture
async def environment(client, tenant: Tenant, database) -> dict:
    project = (
        await client.post(
            "/api/projects",
            json={"name": "p", "repositoryUrl": "/srv/p.git", "odooVersion": "17.0"},
            headers=tenant.headers,
        )
    ).json()
    instance = await make_instance(database, tenant, "staging-1")
    response = await client.post(
        f"/api/projects/{project['id']}/environments",
        json={"instanceId": str(instance.id), "environmentType": "staging", "branch": "staging"},
        headers=tenant.headers,
    )
    return response.json()


async def test_token_link_lifecycle(client, tenant: Tenant, environment: dict, database) -> None:
    path = f"/api/environments/{environment['id']}/share"
    response = await client.post(
        path,
        json={"shareType": "token", "expiresIn": "24h", "label": "for ACME"},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["shareType"] == "token"
    assert created["url"].startswith("http://127.0.0.1:8000/api/share/")
    token = created["url"].rsplit("/", 1)[1]
    assert len(token) >= 40
    expires = datetime.fromisoformat(created["expiresAt"])
    assert timedelta(hours=23) < expires - datetime.now(UTC) <= timedelta(hours=24)

    async with database.sessionmaker() as session:
        row = await session.scalar(select(ShareLink))
    assert row is not None
    assert row.token_hash == sha256_hex(token)
    assert token not in row.token_hash

    listing = (await client.get(path, headers=tenant.headers)).json()
    assert listing["total"] == 1
    assert listing["shareLinks"][0]["label"] == "for ACME"
    assert listing["shareLinks"][0]["isActive"] is True
    assert token not in str(listing)

    response = await client.delete(f"{path}/{created['id']}", headers=tenant.headers)
    assert response.status_code == 200
    listing = (await client.get(path, headers=tenant.headers)).json()
    assert listing["shareLinks"][0]["isActive"] is False
    response = await client.delete(f"{path}/{created['id']}/permanent", headers=tenant.headers)
    assert response.status_code == 204
    assert (await client.get(path, headers=tenant.headers)).json()["total"] == 0
    response = await client.delete(f"{path}/{created['id']}", headers=tenant.headers)
    assert response.status_code == 404


async def test_password_link(client, tenant: Tenant, environment: dict, database) -> None:
    path = f"/api/environments/{environment['id']}/share"
    response = await client.post(
        path, json={"shareType": "password", "expiresIn": "720h"}, headers=tenant.headers
    )
    assert response.status_code == 422
    response = await client.post(
        path,
        json={"shareType": "password", "expiresIn": "720h", "password": "correct horse"},
        headers=tenant.headers,
    )
    assert response.status_code == 201
    assert "correct horse" not in response.text
    async with database.sessionmaker() as session:
        row = await session.scalar(select(ShareLink))
    assert row is not None
    assert row.password_hash is not None
    assert row.password_hash.startswith("$argon2id$")
    assert verify_password(row.password_hash, "correct horse")


@pytest.mark.parametrize(
    "body",
    [
        {"shareType": "magic"},
        {"expiresIn": "1y"},
        {"shareType": "password", "password": "short"},
        {"shareType": "token", "password": "not allowed here"},
        {"label": "x" * 201},
        {"url": "https://evil"},
    ],
)
async def test_bad_input(client, tenant: Tenant, environment: dict, body) -> None:
    path = f"/api/environments/{environment['id']}/share"
    assert (await client.post(path, json=body, headers=tenant.headers)).status_code == 422
    assert (await client.get(path, headers=tenant.headers)).json()["total"] == 0


async def test_permissions_and_tenancy(
    client, tenant: Tenant, other_tenant: Tenant, environment: dict
) -> None:
    path = f"/api/environments/{environment['id']}/share"
    viewer = await tenant.add_member(Role.VIEWER)
    developer = await tenant.add_member(Role.DEVELOPER)
    assert (await client.post(path, json={}, headers=viewer.headers)).status_code == 403
    created = (await client.post(path, json={}, headers=developer.headers)).json()
    for method, sub in (("GET", ""), ("POST", ""), ("DELETE", f"/{created['id']}")):
        response = await client.request(
            method, path + sub, json={} if method == "POST" else None, headers=other_tenant.headers
        )
        assert response.status_code == 404, (method, sub)
    response = await client.delete(
        f"{path}/{created['id']}/permanent", headers=other_tenant.headers
    )
    assert response.status_code == 404
    assert (await client.get(path, headers=tenant.headers)).json()["total"] == 1
