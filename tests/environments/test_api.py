"""Environments: linking, reading, renaming, commit behaviour, test gates, pipeline."""

from __future__ import annotations

import pytest

from ocore.core.auth import Role
from ocore.instances.models import Instance
from tests.conftest import Tenant
from tests.factories import make_instance


@pytest.fixture
async def project(client, tenant: Tenant) -> dict:
    response = await client.post(
        "/api/projects",
        json={"name": "shop", "repositoryUrl": "/srv/git/shop.git", "odooVersion": "17.0"},
        headers=tenant.headers,
    )
    return response.json()


async def link(client, tenant: Tenant, project: dict, instance: Instance, kind: str, branch: str):
    return await client.post(
        f"/api/projects/{project['id']}/environments",
        json={"instanceId": str(instance.id), "environmentType": kind, "branch": branch},
        headers=tenant.headers,
    )


async def test_link_read_update(client, tenant: Tenant, project: dict, database) -> None:
    instance = await make_instance(database, tenant, "shop-prod")
    response = await link(client, tenant, project, instance, "production", "main")
    assert response.status_code == 201, response.text
    env = response.json()
    assert env["environmentType"] == "production"
    assert env["branch"] == "main"
    assert env["name"] == "main"
    assert env["instanceSlug"] == "shop-prod"
    assert env["instanceStatus"] == "running"
    assert env["status"] == "ready"
    assert env["odooVersion"] == "17.0"
    assert env["primaryDomain"].startswith("shop-prod-")
    assert env["commitBehavior"] == "create_new_build"
    assert env["serverId"] == str(instance.server_id)

    response = await client.put(
        f"/api/environments/{env['id']}",
        json={"name": "Production", "description": "the shop"},
        headers=tenant.headers,
    )
    assert response.status_code == 200
    assert response.json()["name"] == "Production"
    response = await client.put(
        f"/api/environments/{env['id']}",
        json={"environmentType": "staging"},
        headers=tenant.headers,
    )
    assert response.status_code == 422
    fetched = (await client.get(f"/api/environments/{env['id']}", headers=tenant.headers)).json()
    assert fetched["environmentType"] == "production"
    assert fetched["description"] == "the shop"

    listing = (await client.get("/api/environments", headers=tenant.headers)).json()
    assert listing["total"] == 1
    project_list = (
        await client.get(f"/api/projects/{project['id']}/environments", headers=tenant.headers)
    ).json()
    assert [e["id"] for e in project_list] == [env["id"]]


async def test_one_production_and_one_environment_per_instance(
    client, tenant: Tenant, project: dict, database
) -> None:
    first = await make_instance(database, tenant, "a-prod")
    second = await make_instance(database, tenant, "b-prod")
    assert (await link(client, tenant, project, first, "production", "main")).status_code == 201
    response = await link(client, tenant, project, second, "production", "main")
    assert response.status_code == 409
    assert "production" in response.json()["detail"]
    response = await link(client, tenant, project, first, "staging", "staging")
    assert response.status_code == 409
    assert (await link(client, tenant, project, second, "staging", "staging")).status_code == 201


async def test_commit_behavior(client, tenant: Tenant, project: dict, database) -> None:
    instance = await make_instance(database, tenant, "dev-1")
    env = (await link(client, tenant, project, instance, "development", "feature/x")).json()
    response = await client.put(
        f"/api/environments/{env['id']}/commit-behavior",
        json={"behavior": "do_nothing"},
        headers=tenant.headers,
    )
    assert response.status_code == 200
    assert response.json()["commitBehavior"] == "do_nothing"
    assert response.json()["message"]
    response = await client.put(
        f"/api/environments/{env['id']}/commit-behavior",
        json={"behavior": "deploy_everything"},
        headers=tenant.headers,
    )
    assert response.status_code == 422
    fetched = (await client.get(f"/api/environments/{env['id']}", headers=tenant.headers)).json()
    assert fetched["commitBehavior"] == "do_nothing"


async def test_test_gates(client, tenant: Tenant, project: dict) -> None:
    path = f"/api/projects/{project['id']}/test-gates"
    assert (await client.get(path, headers=tenant.headers)).json() == {
        "testGateStaging": "warn",
        "testGateProduction": "block",
    }
    response = await client.put(
        path,
        json={"testGateStaging": "block", "testGateProduction": "block"},
        headers=tenant.headers,
    )
    assert response.status_code == 200
    assert response.json()["testGateStaging"] == "block"
    response = await client.put(path, json={"testGateStaging": "block"}, headers=tenant.headers)
    assert response.status_code == 422
    developer = await tenant.add_member(Role.DEVELOPER)
    response = await client.put(
        path,
        json={"testGateStaging": "warn", "testGateProduction": "warn"},
        headers=developer.headers,
    )
    assert response.status_code == 403


async def test_pipeline_groups_by_stage(client, tenant: Tenant, project: dict, database) -> None:
    for slug, kind, branch in (
        ("p-prod", "production", "main"),
        ("p-stage", "staging", "staging"),
        ("p-dev1", "development", "feature/a"),
        ("p-dev2", "development", "feature/b"),
    ):
        instance = await make_instance(database, tenant, slug)
        assert (await link(client, tenant, project, instance, kind, branch)).status_code == 201
    response = await client.get(
        f"/api/projects/{project['id']}/pipeline?recentDeployments=3", headers=tenant.headers
    )
    assert response.status_code == 200
    stages = response.json()["stages"]
    assert {k: [e["branch"] for e in v] for k, v in stages.items()} == {
        "development": ["feature/a", "feature/b"],
        "staging": ["staging"],
        "production": ["main"],
    }
    assert stages["production"][0]["recentDeployments"] == []
    response = await client.get(
        f"/api/projects/{project['id']}/pipeline?recentDeployments=11", headers=tenant.headers
    )
    assert response.status_code == 422


async def test_tenancy(client, tenant: Tenant, other_tenant: Tenant, project: dict, database):
    instance = await make_instance(database, tenant, "mine")
    env = (await link(client, tenant, project, instance, "staging", "main")).json()
    for method, path, body in (
        ("GET", f"/api/environments/{env['id']}", None),
        ("PUT", f"/api/environments/{env['id']}", {"name": "x"}),
        ("PUT", f"/api/environments/{env['id']}/commit-behavior", {"behavior": "do_nothing"}),
        ("GET", f"/api/projects/{project['id']}/environments", None),
        ("GET", f"/api/projects/{project['id']}/pipeline", None),
        ("GET", f"/api/projects/{project['id']}/test-gates", None),
    ):
        response = await client.request(method, path, json=body, headers=other_tenant.headers)
        assert response.status_code == 404, (method, path)
    assert (await client.get("/api/environments", headers=other_tenant.headers)).json()[
        "total"
    ] == 0
    # Linking my instance from another organization's project is impossible too.
    theirs = (
        await client.post(
            "/api/projects",
            json={"name": "theirs", "repositoryUrl": "/srv/t.git", "odooVersion": "17.0"},
            headers=other_tenant.headers,
        )
    ).json()
    response = await link(client, other_tenant, theirs, instance, "staging", "main")
    assert response.status_code == 404
