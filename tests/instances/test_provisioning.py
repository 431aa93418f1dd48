"""Instances end to end on a real host: sshd, nginx, the stand-in Odoo, PostgreSQL."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import Tenant, wait_for_job
from tests.deployments.conftest import DB
from tests.fixtures.nginx import Nginx
from tests.fixtures.odoo_runtime import kill_leftovers
from tests.fixtures.odoo_standin.harness import free_port
from tests.fixtures.sshd import Sshd


@pytest.fixture
async def server(embedded_client, tenant: Tenant, sshd: Sshd, nginx: Nginx, base_dir: Path):
    response = await embedded_client.post(
        "/api/servers",
        json={
            "name": "odoo-host",
            "host": sshd.host,
            "port": sshd.port,
            "username": sshd.username,
            "privateKey": sshd.client_private_key,
            "runtime": "native",
            "baseDir": str(base_dir),
            "nginxSitesDir": str(nginx.sites),
            "nginxCommand": nginx.command(),
            "nginxListen": f"{nginx.host}:{nginx.port}",
            **DB,
        },
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    yield response.json()
    for instance_dir in (base_dir / "instances").glob("*"):
        kill_leftovers(instance_dir)


async def job_of(client, tenant: Tenant, instance_id: str, kind: str) -> dict:
    jobs = (await client.get(f"/api/jobs?targetId={instance_id}", headers=tenant.headers)).json()[
        "jobs"
    ]
    job = next(j for j in jobs if j["kind"] == kind)
    return await wait_for_job(client, tenant.headers, job["id"], timeout=120)


async def test_provision_control_and_delete(
    embedded_client, tenant: Tenant, server: dict, nginx: Nginx, base_dir: Path
) -> None:
    client = embedded_client
    slug = f"shop-{uuid.uuid4().hex[:6]}"
    response = await client.post(
        "/api/instances",
        json={"name": "Shop", "slug": slug, "serverId": server["id"], "odooVersion": "17.0"},
        headers=tenant.headers,
    )
    assert response.status_code == 202, response.text
    instance = response.json()

    job = await job_of(client, tenant, instance["id"], "instance.provision")
    assert job["status"] == "succeeded", job
    assert [s["name"] for s in job["steps"]] == [
        "prepare host",
        "initialize database",
        "start blue",
        "reverse proxy",
        "report generation",
    ]
    init_output = job["steps"][1]["output"]
    assert "odoo.modules.loading" in init_output
    instance = (await client.get(f"/api/instances/{instance['id']}", headers=tenant.headers)).json()
    assert instance["status"] == "running", instance
    assert instance["activeColor"] == "blue"
    assert instance["lastSeenAt"] is not None
    assert instance["wkhtmltopdfStatus"] in ("ok", "missing")

    conf = (base_dir / "instances" / slug / "blue" / "odoo.conf").read_text()
    assert "list_db = False" in conf
    assert "gevent_port" in conf
    assert oct((base_dir / "instances" / slug / "blue" / "odoo.conf").stat().st_mode)[-3:] == "600"

    async with httpx.AsyncClient(base_url=nginx.url) as web:
        health = await web.get("/web/health", headers={"Host": f"{slug}.localhost"})
        assert health.status_code == 200
        assert health.json() == {"status": "pass"}
        login = await web.get("/web/login", headers={"Host": f"{slug}.localhost"})
        assert login.status_code == 200
        assert "<form" in login.text

    response = await client.post(
        f"/api/instances/{instance['id']}/control",
        json={"action": "restart"},
        headers=tenant.headers,
    )
    assert response.status_code == 202
    assert (await job_of(client, tenant, instance["id"], "instance.control"))[
        "status"
    ] == "succeeded"
    instance = (await client.get(f"/api/instances/{instance['id']}", headers=tenant.headers)).json()
    assert instance["restartCount"] == 1
    assert instance["lastRestartAt"] is not None

    for action, expected in (("stop", "stopped"), ("start", "running")):
        response = await client.post(
            f"/api/instances/{instance['id']}/control",
            json={"action": action},
            headers=tenant.headers,
        )
        assert response.status_code == 202, response.text
        assert (await job_of(client, tenant, instance["id"], "instance.control"))[
            "status"
        ] == "succeeded"
        fetched = (
            await client.get(f"/api/instances/{instance['id']}", headers=tenant.headers)
        ).json()
        assert fetched["status"] == expected
        async with httpx.AsyncClient(base_url=nginx.url) as web:
            answer = await web.get("/web/health", headers={"Host": f"{slug}.localhost"})
        assert (answer.status_code == 200) == (expected == "running")

    response = await client.put(
        f"/api/instances/{instance['id']}",
        json={"envVars": {"SHOP_MODE": "test"}},
        headers=tenant.headers,
    )
    assert response.json()["restartRequired"] is True

    response = await client.delete(
        f"/api/instances/{instance['id']}?dropDatabase=true", headers=tenant.headers
    )
    assert response.status_code == 202
    assert "being deleted" in response.json()["message"]
    job = await job_of(client, tenant, instance["id"], "instance.delete")
    assert job["status"] == "succeeded", job
    response = await client.get(f"/api/instances/{instance['id']}", headers=tenant.headers)
    assert response.status_code == 404
    assert not (Path(nginx.sites) / f"ocore-{slug}.conf").exists()
    assert not (base_dir / "instances" / slug).exists()
    async with httpx.AsyncClient(base_url=nginx.url) as web:
        gone = await web.get("/web/health", headers={"Host": f"{slug}.localhost"})
        assert gone.status_code != 200


async def test_missing_odoo_version_fails_with_an_actionable_message(
    embedded_client, tenant: Tenant, server: dict
) -> None:
    response = await embedded_client.post(
        "/api/instances",
        json={"name": "Old", "serverId": server["id"], "odooVersion": "16.0"},
        headers=tenant.headers,
    )
    assert response.status_code == 202
    instance = response.json()
    job = await job_of(embedded_client, tenant, instance["id"], "instance.provision")
    assert job["status"] == "failed"
    instance = (
        await embedded_client.get(f"/api/instances/{instance['id']}", headers=tenant.headers)
    ).json()
    assert instance["status"] == "error"
    assert "Odoo 16.0 is not installed" in instance["statusMessage"]
    assert "/odoo/16.0" in instance["statusMessage"]


async def test_enterprise_needs_its_addons_on_the_host(
    embedded_client, tenant: Tenant, server: dict
) -> None:
    response = await embedded_client.post(
        "/api/instances",
        json={
            "name": "Ent",
            "serverId": server["id"],
            "odooVersion": "17.0",
            "odooEdition": "enterprise",
        },
        headers=tenant.headers,
    )
    instance = response.json()
    job = await job_of(embedded_client, tenant, instance["id"], "instance.provision")
    assert job["status"] == "failed"
    instance = (
        await embedded_client.get(f"/api/instances/{instance['id']}", headers=tenant.headers)
    ).json()
    assert "Enterprise is not installed" in instance["statusMessage"]
    assert "/odoo/17.0/enterprise" in instance["statusMessage"]


async def test_unreachable_database_fails_cleanly(
    embedded_client, tenant: Tenant, server: dict
) -> None:
    response = await embedded_client.put(
        f"/api/servers/{server['id']}", json={"dbPort": free_port()}, headers=tenant.headers
    )
    assert response.status_code == 200
    response = await embedded_client.post(
        "/api/instances",
        json={"name": "Nodb", "serverId": server["id"], "odooVersion": "17.0"},
        headers=tenant.headers,
    )
    instance = response.json()
    job = await job_of(embedded_client, tenant, instance["id"], "instance.provision")
    assert job["status"] == "failed"
    assert job["steps"][-1]["name"] == "initialize database"
    assert job["steps"][-1]["status"] == "failed"
    instance = (
        await embedded_client.get(f"/api/instances/{instance['id']}", headers=tenant.headers)
    ).json()
    assert instance["status"] == "error"
    assert instance["statusMessage"]
    assert "PGPASSWORD" not in instance["statusMessage"]


async def test_health_probe_records_history_and_status(
    embedded_app, embedded_client, tenant: Tenant, server: dict, base_dir: Path
) -> None:
    import json

    from ocore.instances.probe import probe_instances

    client = embedded_client
    slug = f"probe-{uuid.uuid4().hex[:6]}"
    response = await client.post(
        "/api/instances",
        json={"name": "Probe", "slug": slug, "serverId": server["id"], "odooVersion": "17.0"},
        headers=tenant.headers,
    )
    instance = response.json()
    job = await job_of(client, tenant, instance["id"], "instance.provision")
    assert job["status"] == "succeeded", job
    jobs = embedded_app.state.jobs

    async def probe() -> dict:
        await probe_instances(jobs.database, jobs.secret_box, jobs.ssh_pool)
        return (await client.get(f"/api/instances/{instance['id']}", headers=tenant.headers)).json()

    healthy = await probe()
    assert healthy["status"] == "running"
    assert healthy["healthScore"] is not None
    knob = base_dir / "instances" / slug / "data" / "standin.json"
    knob.write_text(json.dumps({"health": "fail"}))
    sick = await probe()
    assert sick["status"] == "unhealthy"
    assert "Health check failed" in sick["statusMessage"]
    health = (
        await client.get(f"/api/instances/{instance['id']}/health", headers=tenant.headers)
    ).json()
    assert health["status"] == "unhealthy"
    score = (
        await client.get(f"/api/instances/{instance['id']}/health-score", headers=tenant.headers)
    ).json()
    availability = next(f for f in score["factors"] if f["name"] == "availability")
    assert availability["score"] == 50
    assert "1/2 health checks passed" in availability["details"]
    assert score["score"] == round(sum(f["weighted"] for f in score["factors"]))
    knob.unlink()
    recovered = await probe()
    assert recovered["status"] == "running"
    assert recovered["statusMessage"] is None
