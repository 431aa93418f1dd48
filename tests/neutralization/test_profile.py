"""The neutralization profile: created with safe defaults on first read, per project."""

from __future__ import annotations

import asyncio

from ocore.core.auth import Role
from tests.conftest import Tenant


async def test_defaults_update_and_permissions(client, tenant: Tenant, other_tenant: Tenant):
    project = (
        await client.post(
            "/api/projects",
            json={"name": "p", "repositoryUrl": "/srv/p.git", "odooVersion": "17.0"},
            headers=tenant.headers,
        )
    ).json()
    path = f"/api/projects/{project['id']}/neutralization/profile"
    first, second = await asyncio.gather(
        client.get(path, headers=tenant.headers), client.get(path, headers=tenant.headers)
    )
    assert first.status_code == second.status_code == 200
    assert first.json()["id"] == second.json()["id"]
    profile = first.json()
    assert profile["mailStrategy"] == "mailpit"
    assert all(
        profile[k]
        for k in (
            "neutralizeCrons",
            "neutralizeMail",
            "neutralizePayments",
            "neutralizeCarriers",
            "neutralizeSocial",
        )
    )
    response = await client.put(
        path, json={"neutralizeCrons": False, "mailStrategy": "disable"}, headers=tenant.headers
    )
    assert response.status_code == 200
    assert response.json()["neutralizeCrons"] is False
    assert response.json()["mailStrategy"] == "disable"
    assert response.json()["neutralizePayments"] is True
    for body in ({"mailStrategy": "smtp"}, {"neutralizeMail": None}, {"other": True}):
        assert (await client.put(path, json=body, headers=tenant.headers)).status_code == 422
    viewer = await tenant.add_member(Role.VIEWER)
    assert (await client.get(path, headers=viewer.headers)).status_code == 200
    response = await client.put(path, json={"neutralizeMail": False}, headers=viewer.headers)
    assert response.status_code == 403
    assert (await client.get(path, headers=other_tenant.headers)).status_code == 404
    response = await client.put(path, json={"neutralizeMail": False}, headers=other_tenant.headers)
    assert response.status_code == 404
    assert (await client.get(path, headers=tenant.headers)).json()["neutralizeMail"] is True
