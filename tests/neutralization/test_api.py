"""The neutralization endpoints' rules that need no Odoo database: states, input, locks."""

from __future__ import annotations

import uuid

from ocore.core.auth import Role
from ocore.core.db import Database
from ocore.neutralization.models import NeutralizationItem
from tests.conftest import Tenant, wait_for_job
from tests.factories import make_instance


async def _environment(client, tenant: Tenant, database: Database, status: str = "running"):
    tag = uuid.uuid4().hex[:6]
    instance = await make_instance(database, tenant, f"shop-{tag}", status)
    project = await client.post(
        "/api/projects",
        json={"name": f"p-{tag}", "repositoryUrl": f"/srv/{tag}.git", "odooVersion": "17.0"},
        headers=tenant.headers,
    )
    assert project.status_code == 201, project.text
    response = await client.post(
        f"/api/projects/{project.json()['id']}/environments",
        json={"instanceId": str(instance.id), "branch": "feature-x", "environmentType": "staging"},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_neutralize_needs_a_ready_environment_and_its_name(
    client, tenant: Tenant, database: Database
) -> None:
    pending = await _environment(client, tenant, database, status="provisioning")
    response = await client.post(
        f"/api/environments/{pending['id']}/neutralization/neutralize",
        json={"confirmText": pending["name"]},
        headers=tenant.headers,
    )
    assert response.status_code == 409
    assert "ready" in response.json()["detail"]

    environment = await _environment(client, tenant, database)
    path = f"/api/environments/{environment['id']}/neutralization"
    for body in ({"confirmText": "feature"}, {"confirmText": ""}, {}, {"confirm": "x"}):
        response = await client.post(f"{path}/neutralize", json=body, headers=tenant.headers)
        assert response.status_code == 422, body
    response = await client.post(
        f"{path}/neutralize", json={"confirmText": environment["name"]}, headers=tenant.headers
    )
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["environmentId"] == environment["id"]
    assert environment["name"] in accepted["message"]
    job = (await client.get(f"/api/jobs/{accepted['jobId']}", headers=tenant.headers)).json()
    assert (job["kind"], job["status"]) == ("neutralization.run", "queued")

    # One database-changing job at a time; no toggles while it is queued or running.
    response = await client.post(
        f"{path}/neutralize", json={"confirmText": environment["name"]}, headers=tenant.headers
    )
    assert response.status_code == 409
    async with database.sessionmaker() as session:
        item = NeutralizationItem(
            organization_id=tenant.organization_id,
            environment_id=uuid.UUID(environment["id"]),
            category="crons",
            odoo_model="ir.cron",
            odoo_record_id=7,
            record_name="Mail: Email Queue Manager",
        )
        session.add(item)
        await session.commit()
    response = await client.post(
        f"{path}/items/{item.id}/toggle", json={"enable": True}, headers=tenant.headers
    )
    assert response.status_code == 409
    assert accepted["jobId"] in response.json()["detail"]


async def test_items_of_an_environment(client, tenant: Tenant, database: Database) -> None:
    environment = await _environment(client, tenant, database)
    other = await _environment(client, tenant, database)
    path = f"/api/environments/{environment['id']}/neutralization"
    async with database.sessionmaker() as session:
        for number in range(3):
            session.add(
                NeutralizationItem(
                    organization_id=tenant.organization_id,
                    environment_id=uuid.UUID(environment["id"]),
                    category="crons" if number else "payments",
                    odoo_model="ir.cron" if number else "payment.provider",
                    odoo_record_id=number + 1,
                    is_enabled=number == 0,
                )
            )
        await session.commit()
    body = (await client.get(f"{path}/items?limit=2", headers=tenant.headers)).json()
    assert body["total"] == 3
    assert len(body["items"]) == 2
    body = (await client.get(f"{path}/items?category=crons", headers=tenant.headers)).json()
    assert body["total"] == 2
    response = await client.get(f"{path}/items?category=nope", headers=tenant.headers)
    assert response.status_code == 422
    dangerous = (await client.get(f"{path}/dangerous", headers=tenant.headers)).json()
    assert dangerous["hasDangerousReenabled"] is True
    assert [i["odooModel"] for i in dangerous["items"]] == ["payment.provider"]
    summary = (await client.get(f"{path}/summary", headers=tenant.headers)).json()
    assert summary["categories"]["crons"] == {"enabledItems": 0, "totalItems": 2}
    assert (summary["enabledItems"], summary["totalItems"], summary["isNeutralized"]) == (
        1,
        3,
        False,
    )
    # An item is only reachable through its own environment.
    item_id = body["items"][0]["id"]
    response = await client.post(
        f"/api/environments/{other['id']}/neutralization/items/{item_id}/toggle",
        json={"enable": True},
        headers=tenant.headers,
    )
    assert response.status_code == 404
    response = await client.get(
        f"/api/environments/{uuid.uuid4()}/neutralization/items", headers=tenant.headers
    )
    assert response.status_code == 404
    response = await client.get(f"{path}/items")
    assert response.status_code == 401


async def test_production_is_never_touched(client, tenant: Tenant, database: Database) -> None:
    instance = await make_instance(database, tenant, f"prod-{uuid.uuid4().hex[:6]}")
    project = await client.post(
        "/api/projects",
        json={"name": "prod", "repositoryUrl": "/srv/prod.git", "odooVersion": "17.0"},
        headers=tenant.headers,
    )
    response = await client.post(
        f"/api/projects/{project.json()['id']}/environments",
        json={"instanceId": str(instance.id), "branch": "main", "environmentType": "production"},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    production = response.json()
    path = f"/api/environments/{production['id']}/neutralization"
    for sub, body in (
        ("neutralize", {"confirmText": production["name"]}),
        (f"items/{uuid.uuid4()}/toggle", {"enable": False}),
        ("toggle-category", {"category": "payments", "enable": True}),
    ):
        response = await client.post(f"{path}/{sub}", json=body, headers=tenant.headers)
        assert response.status_code == 409, response.text
        assert "production" in response.json()["detail"]
    summary = (await client.get(f"{path}/summary", headers=tenant.headers)).json()
    assert summary["isNeutralized"] is False
    assert summary["totalItems"] == 0


async def test_viewer_reads_but_cannot_change(client, tenant: Tenant, database: Database) -> None:
    environment = await _environment(client, tenant, database)
    path = f"/api/environments/{environment['id']}/neutralization"
    viewer = await tenant.add_member(Role.VIEWER)
    for sub in ("items", "summary", "dangerous"):
        assert (await client.get(f"{path}/{sub}", headers=viewer.headers)).status_code == 200
    for sub, body in (
        (f"items/{uuid.uuid4()}/toggle", {"enable": True}),
        ("toggle-category", {"category": "crons", "enable": True}),
        ("neutralize", {"confirmText": environment["name"]}),
    ):
        response = await client.post(f"{path}/{sub}", json=body, headers=viewer.headers)
        assert response.status_code == 403, response.text
        assert "manage:neutralization" in response.json()["detail"]
    # A developer holds manage:neutralization (an unknown item is then a plain 404).
    developer = await tenant.add_member(Role.DEVELOPER)
    response = await client.post(
        f"{path}/items/{uuid.uuid4()}/toggle", json={"enable": True}, headers=developer.headers
    )
    assert response.status_code == 404


async def test_a_failed_run_is_reported_on_the_environment(
    embedded_client, tenant: Tenant, database: Database
) -> None:
    # The factory's server points at a PostgreSQL role that does not exist.
    environment = await _environment(embedded_client, tenant, database)
    response = await embedded_client.post(
        f"/api/environments/{environment['id']}/neutralization/neutralize",
        json={"confirmText": environment["name"]},
        headers=tenant.headers,
    )
    assert response.status_code == 202
    job = await wait_for_job(embedded_client, tenant.headers, response.json()["jobId"])
    assert job["status"] == "failed"
    assert "cannot connect" in job["error"]
    environment = (
        await embedded_client.get(f"/api/environments/{environment['id']}", headers=tenant.headers)
    ).json()
    assert environment["statusMessage"].startswith("Neutralization failed: ")
    assert environment["isNeutralized"] is False
