"""Production from a branch, a neutralized staging clone, gated promotion, deletion."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import httpx

from ocore.core.auth import Role
from tests.conftest import Tenant, wait_for_job
from tests.deployments.conftest import manifest, provisioned, read_sse
from tests.fixtures.gitrepo import GitRepo
from tests.fixtures.nginx import Nginx
from tests.fixtures.sshd import Sshd

PG = "postgresql://ocore_test:ocore_test@127.0.0.1:5432/"


async def environment_of(api: httpx.AsyncClient, tenant: Tenant, instance_id: str) -> dict:
    environments = (await api.get("/api/environments", headers=tenant.headers)).json()
    return next(e for e in environments["environments"] if e["instanceId"] == instance_id)


async def job_for(api: httpx.AsyncClient, tenant: Tenant, target_id: str) -> dict:
    jobs = (await api.get(f"/api/jobs?targetId={target_id}", headers=tenant.headers)).json()
    return await wait_for_job(api, tenant.headers, jobs["jobs"][0]["id"], timeout=180)


async def deployed(api: httpx.AsyncClient, tenant: Tenant, project_id: str, body: dict) -> dict:
    response = await api.post(
        f"/api/projects/{project_id}/deploy", json=body, headers=tenant.headers
    )
    assert response.status_code == 202, response.text
    path = f"/api/projects/{project_id}/deployments/{response.json()['id']}/logs"
    async with api.stream("GET", path, headers=tenant.headers, timeout=300) as stream:
        events = await read_sse(stream)
    assert events[-1]["event"] == "complete"
    return events[-1]["data"]


async def rows(database: str, query: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(PG + database)
    try:
        return list(await connection.fetch(query))
    finally:
        await connection.close()


async def test_production_clone_promote_delete(
    api: httpx.AsyncClient,
    tenant: Tenant,
    sshd: Sshd,
    nginx: Nginx,
    base_dir: Path,
    repo: GitRepo,
) -> None:
    repo.commit({"shop_custom/__manifest__.py": manifest("17.0.1.0.0")}, "first")
    prod = await provisioned(api, tenant, sshd, nginx, base_dir, repo, "production")
    project_id = prod["project"]["id"]
    production = await environment_of(api, tenant, prod["instance"]["id"])
    assert production["environmentType"] == "production"
    assert production["status"] == "ready"
    done = await deployed(
        api, tenant, project_id, {"instanceId": prod["instance"]["id"], "branch": "main"}
    )
    assert done["status"] == "succeeded"

    # Production cannot be deleted; the same stage is a conflict.
    response = await api.delete(f"/api/environments/{production['id']}", headers=tenant.headers)
    assert response.status_code == 409
    response = await api.post(
        f"/api/environments/{production['id']}/promote",
        json={"targetStage": "production"},
        headers=tenant.headers,
    )
    assert response.status_code == 409

    # Clone production to a staging branch: copied, neutralized, serving.
    response = await api.post(
        f"/api/environments/{production['id']}/clone",
        json={"targetBranch": "staging", "targetType": "staging", "autoDestroy": True},
        headers=tenant.headers,
    )
    assert response.status_code == 202, response.text
    staging = response.json()
    assert staging["status"] == "cloning"
    assert staging["clonedFromId"] == production["id"]
    assert staging["autoDestroyOnMerge"] is True
    job = await job_for(api, tenant, staging["id"])
    assert job["status"] == "succeeded", (
        job["error"],
        [(s["name"], s["output"][-500:]) for s in job["steps"]],
    )
    staging = (await api.get(f"/api/environments/{staging['id']}", headers=tenant.headers)).json()
    assert staging["status"] == "ready"
    assert staging["isNeutralized"] is True
    assert staging["instanceStatus"] == "running"
    database = staging["instanceSlug"].replace("-", "_")
    flag = await rows(
        database, "SELECT value FROM ir_config_parameter WHERE key = 'database.is_neutralized'"
    )
    assert flag[0]["value"] == "true"
    modules = await rows(database, "SELECT state FROM ir_module_module WHERE name = 'shop_custom'")
    assert modules[0]["state"] == "installed"  # production's data came along
    prod_flag = await rows(
        prod["slug"].replace("-", "_"),
        "SELECT value FROM ir_config_parameter WHERE key = 'database.is_neutralized'",
    )
    assert prod_flag == [] or prod_flag[0]["value"] != "true"
    async with httpx.AsyncClient(base_url=nginx.url) as web:
        health = await web.get(
            "/web/health", headers={"Host": f"{staging['instanceSlug']}.localhost"}
        )
        assert health.status_code == 200

    response = await api.post(
        f"/api/environments/{production['id']}/clone",
        json={"targetBranch": "staging"},
        headers=tenant.headers,
    )
    assert response.status_code == 409  # that branch has an environment

    # Promotion to production is gated by the production test gate (block by default).
    project = (await api.get(f"/api/projects/{project_id}", headers=tenant.headers)).json()
    assert project["testGateProduction"] == "block"
    developer = await tenant.add_member(Role.DEVELOPER)
    response = await api.post(
        f"/api/environments/{staging['id']}/promote",
        json={"targetStage": "production"},
        headers=developer.headers,
    )
    assert response.status_code == 403
    response = await api.post(
        f"/api/environments/{staging['id']}/promote",
        json={"targetStage": "production"},
        headers=tenant.headers,
    )
    assert response.status_code == 409
    assert "test gate blocks" in response.json()["detail"]
    assert "never been deployed" in response.json()["detail"]

    # Deploy the staging branch, then promotion passes: the code goes to production.
    done = await deployed(
        api, tenant, project_id, {"instanceId": staging["instanceId"], "branch": "main"}
    )
    assert done["status"] == "succeeded"
    response = await api.post(
        f"/api/environments/{staging['id']}/promote",
        json={"targetStage": "production"},
        headers=tenant.headers,
    )
    assert response.status_code == 202, response.text
    assert response.json()["newStage"] == "production"
    assert response.json()["promotionId"]
    deployments = (
        await api.get(f"/api/environments/{production['id']}/deployments", headers=tenant.headers)
    ).json()
    assert deployments["deployments"][0]["triggerType"] == "promotion"

    # Deleting the staging environment removes its instance and database.
    response = await api.delete(f"/api/environments/{staging['id']}", headers=tenant.headers)
    assert response.status_code == 202
    job = await job_for(api, tenant, staging["id"])
    assert job["status"] == "succeeded", (
        job["error"],
        [(s["name"], s["output"][-500:]) for s in job["steps"]],
    )
    assert (
        await api.get(f"/api/environments/{staging['id']}", headers=tenant.headers)
    ).status_code == 404
    connection = await asyncpg.connect(PG + "postgres")
    try:
        exists = await connection.fetchval(
            "SELECT count(*) FROM pg_database WHERE datname = $1", database
        )
    finally:
        await connection.close()
    assert exists == 0
