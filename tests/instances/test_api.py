"""The instances API without a host: validation, ports, tenancy; jobs stay queued."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from ocore.core.auth import Role
from ocore.core.db import Database
from ocore.instances.models import Instance
from ocore.jobs.models import Job
from tests.conftest import INSTANCE_PORT_MIN, Tenant


@pytest.fixture
async def server(client, tenant: Tenant) -> dict:
    response = await client.post(
        "/api/servers", json={"name": "here", "isLocal": True}, headers=tenant.headers
    )
    assert response.status_code == 201
    return response.json()


async def create(client, tenant: Tenant, server: dict, **fields: object):
    body = {"name": "Shop", "serverId": server["id"], "odooVersion": "17.0", **fields}
    return await client.post("/api/instances", json=body, headers=tenant.headers)


async def count(database: Database, model: type) -> int:
    async with database.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_create_queues_provisioning(client, tenant: Tenant, server: dict, database) -> None:
    response = await create(client, tenant, server, envVars={"SENTRY_DSN": "https://x"})
    assert response.status_code == 202, response.text
    instance = response.json()
    assert instance["slug"] == "shop"
    assert instance["status"] == "provisioning"
    assert instance["odooVersion"] == "17.0"
    assert instance["odooEdition"] == "community"
    assert instance["activeColor"] == "blue"
    assert instance["httpPort"] == 8069
    assert instance["httpPortHost"] == INSTANCE_PORT_MIN
    assert instance["longpollingPortHost"] == INSTANCE_PORT_MIN + 1
    assert instance["envVars"] == {"SENTRY_DSN": "https://x"}
    assert instance["domains"] == []
    assert "adminPassword" not in response.text
    async with database.sessionmaker() as session:
        job = await session.scalar(select(Job))
    assert job is not None
    assert (job.kind, job.status, str(job.target_id)) == (
        "instance.provision",
        "queued",
        instance["id"],
    )
    listing = (await client.get("/api/instances", headers=tenant.headers)).json()
    assert listing["total"] == 1
    filtered = await client.get(f"/api/instances?server_id={server['id']}", headers=tenant.headers)
    assert filtered.json()["total"] == 1


async def test_concurrent_creates_get_distinct_ports(client, tenant: Tenant, server: dict) -> None:
    responses = await asyncio.gather(
        *(create(client, tenant, server, name=f"Shop {i}") for i in range(6))
    )
    assert [r.status_code for r in responses] == [202] * 6
    ports = sorted(r.json()["httpPortHost"] for r in responses)
    assert ports == [INSTANCE_PORT_MIN + 4 * i for i in range(6)]


@pytest.mark.parametrize(
    ("fields", "location"),
    [
        ({"slug": "Bad Slug"}, "body.slug"),
        ({"slug": "-x"}, "body.slug"),
        ({"odooVersion": "15.0"}, "body.odooVersion"),
        ({"envVars": {"lower": "x"}}, "body.envVars"),
        ({"envVars": {"PATH": "/tmp"}}, "body.envVars"),
        ({"envVars": {"A": "x\u0000y"}}, "body.envVars"),
        ({"addonsPath": "relative/addons"}, "body.addonsPath"),
        ({"addonsPath": "/opt/../etc"}, "body.addonsPath"),
        ({"branch": "main;reboot"}, "body.branch"),
        ({"environmentType": "prod"}, "body.environmentType"),
        ({"serverId": "not-a-uuid"}, "body.serverId"),
        ({"bogus": 1}, "body.bogus"),
    ],
)
async def test_bad_input_changes_nothing(
    client, tenant: Tenant, server: dict, database: Database, fields, location
) -> None:
    response = await create(client, tenant, server, **fields)
    assert response.status_code == 422, response.text
    assert location in response.json()["detail"]
    assert await count(database, Instance) == 0
    assert await count(database, Job) == 0


async def test_version_is_required_without_template_or_project(
    client, tenant: Tenant, server: dict
) -> None:
    response = await client.post(
        "/api/instances", json={"name": "x", "serverId": server["id"]}, headers=tenant.headers
    )
    assert response.status_code == 422
    assert "odooVersion" in response.json()["detail"]


async def test_duplicate_slug_conflicts(client, tenant: Tenant, server: dict, database) -> None:
    assert (await create(client, tenant, server)).status_code == 202
    response = await create(client, tenant, server, name="Other", slug="shop")
    assert response.status_code == 409
    assert await count(database, Instance) == 1


async def test_template_and_project_defaults(client, tenant: Tenant, server: dict) -> None:
    template = await client.post(
        "/api/templates",
        json={"name": "big", "odooVersion": "18.0", "workers": 6, "modules": ["sale", "stock"]},
        headers=tenant.headers,
    )
    assert template.status_code == 201, template.text
    project = await client.post(
        "/api/projects",
        json={"name": "p", "repositoryUrl": "/srv/p.git", "odooVersion": "16.0"},
        headers=tenant.headers,
    )
    response = await client.post(
        "/api/instances",
        json={
            "name": "Big",
            "serverId": server["id"],
            "templateId": template.json()["id"],
            "projectId": project.json()["id"],
            "environmentType": "staging",
        },
        headers=tenant.headers,
    )
    assert response.status_code == 202, response.text
    instance = response.json()
    assert instance["odooVersion"] == "18.0"
    assert instance["workers"] == 6
    assert instance["templateId"] == template.json()["id"]


async def test_update_marks_restart_required(client, tenant: Tenant, server: dict) -> None:
    instance = (await create(client, tenant, server)).json()
    response = await client.put(
        f"/api/instances/{instance['id']}", json={"name": "Renamed"}, headers=tenant.headers
    )
    assert response.json()["name"] == "Renamed"
    assert response.json()["restartRequired"] is False
    response = await client.put(
        f"/api/instances/{instance['id']}",
        json={"envVars": {"FOO": "bar"}, "mcpWriteEnabled": True},
        headers=tenant.headers,
    )
    assert response.status_code == 200
    assert response.json()["restartRequired"] is True
    assert response.json()["mcpWriteEnabled"] is True
    response = await client.put(
        f"/api/instances/{instance['id']}", json={"slug": "nope"}, headers=tenant.headers
    )
    assert response.status_code == 422


async def test_control_and_delete_wait_for_the_running_job(
    client, tenant: Tenant, server: dict
) -> None:
    instance = (await create(client, tenant, server)).json()
    response = await client.post(
        f"/api/instances/{instance['id']}/control",
        json={"action": "restart"},
        headers=tenant.headers,
    )
    assert response.status_code == 409  # still provisioning
    response = await client.post(
        f"/api/instances/{instance['id']}/control",
        json={"action": "explode"},
        headers=tenant.headers,
    )
    assert response.status_code == 422
    response = await client.delete(f"/api/instances/{instance['id']}", headers=tenant.headers)
    assert response.status_code == 409  # the provisioning job holds the instance
    fetched = (await client.get(f"/api/instances/{instance['id']}", headers=tenant.headers)).json()
    assert fetched["status"] == "provisioning"


async def test_health_and_score(client, tenant: Tenant, server: dict) -> None:
    instance = (await create(client, tenant, server)).json()
    health = (
        await client.get(f"/api/instances/{instance['id']}/health", headers=tenant.headers)
    ).json()
    assert health == {
        "id": instance["id"],
        "slug": "shop",
        "status": "provisioning",
        "statusMessage": "Waiting for the provisioning job.",
        "lastSeenAt": None,
    }
    score = (
        await client.get(f"/api/instances/{instance['id']}/health-score", headers=tenant.headers)
    ).json()
    assert {f["name"] for f in score["factors"]} == {
        "availability",
        "response_time",
        "freshness",
        "stability",
        "pdf_rendering",
        "configuration",
    }
    assert score["score"] == round(sum(f["weighted"] for f in score["factors"]))
    assert score["grade"] in "ABCDF"


async def test_permissions_and_tenancy(
    client, tenant: Tenant, other_tenant: Tenant, server: dict
) -> None:
    developer = await tenant.add_member(Role.DEVELOPER)
    response = await client.post(
        "/api/instances",
        json={"name": "x", "serverId": server["id"], "odooVersion": "17.0"},
        headers=developer.headers,
    )
    assert response.status_code == 403
    instance = (await create(client, tenant, server)).json()
    for method, path, body in (
        ("GET", f"/api/instances/{instance['id']}", None),
        ("PUT", f"/api/instances/{instance['id']}", {"name": "stolen"}),
        ("DELETE", f"/api/instances/{instance['id']}", None),
        ("POST", f"/api/instances/{instance['id']}/control", {"action": "stop"}),
        ("GET", f"/api/instances/{instance['id']}/health", None),
        ("GET", f"/api/instances/{instance['id']}/health-score", None),
    ):
        response = await client.request(method, path, json=body, headers=other_tenant.headers)
        assert response.status_code == 404, (method, path)
    # Another organization's server cannot host my instance either.
    response = await client.post(
        "/api/instances",
        json={"name": "x", "serverId": server["id"], "odooVersion": "17.0"},
        headers=other_tenant.headers,
    )
    assert response.status_code == 404
