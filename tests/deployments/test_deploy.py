"""Deploy from a real git repository to a real host, watch over SSE, fail safely, roll back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import httpx

from tests.conftest import Tenant
from tests.deployments.conftest import manifest, provisioned, read_sse
from tests.fixtures.gitrepo import GitRepo
from tests.fixtures.nginx import Nginx
from tests.fixtures.sshd import Sshd

PG = "postgresql://ocore_test:ocore_test@127.0.0.1:5432/"


async def deploy(api: httpx.AsyncClient, tenant: Tenant, env: dict, **target: str) -> dict:
    response = await api.post(
        f"/api/projects/{env['project']['id']}/deploy",
        json={"instanceId": env["instance"]["id"], **target},
        headers=tenant.headers,
    )
    assert response.status_code == 202, response.text
    return response.json()


async def follow(api: httpx.AsyncClient, tenant: Tenant, env: dict, deployment_id: str) -> list:
    path = f"/api/projects/{env['project']['id']}/deployments/{deployment_id}/logs"
    async with api.stream("GET", path, headers=tenant.headers, timeout=300) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return await read_sse(response)


async def fetch(api: httpx.AsyncClient, tenant: Tenant, env: dict, deployment_id: str) -> dict:
    path = f"/api/projects/{env['project']['id']}/deployments/{deployment_id}"
    return (await api.get(path, headers=tenant.headers)).json()


async def serving(nginx: Nginx, slug: str) -> int:
    async with httpx.AsyncClient(base_url=nginx.url) as web:
        return (await web.get("/web/health", headers={"Host": f"{slug}.localhost"})).status_code


async def marker_rows(database: str) -> list[str]:
    connection = await asyncpg.connect(PG + database)
    try:
        await connection.execute("CREATE TABLE IF NOT EXISTS deploy_marker (note text)")
        return [r["note"] for r in await connection.fetch("SELECT note FROM deploy_marker")]
    finally:
        await connection.close()


async def add_marker(database: str, note: str) -> None:
    connection = await asyncpg.connect(PG + database)
    try:
        await connection.execute("CREATE TABLE IF NOT EXISTS deploy_marker (note text)")
        await connection.execute("INSERT INTO deploy_marker VALUES ($1)", note)
    finally:
        await connection.close()


async def test_deploy_watch_fail_and_roll_back(
    api: httpx.AsyncClient,
    tenant: Tenant,
    sshd: Sshd,
    nginx: Nginx,
    base_dir: Path,
    repo: GitRepo,
) -> None:
    first = repo.commit({"shop_custom/__manifest__.py": manifest("17.0.1.0.0")}, "Add shop_custom")
    env = await provisioned(api, tenant, sshd, nginx, base_dir, repo)
    database = env["slug"].replace("-", "_")

    # 1. Deploy a branch and watch it live over SSE.
    deployment = await deploy(api, tenant, env, branch="main")
    assert deployment["status"] == "queued"
    assert deployment["commitSha"] == first
    assert deployment["commitMessage"] == "Add shop_custom"
    assert deployment["commitAuthor"] == "Ada Lovelace"
    events = await follow(api, tenant, env, deployment["id"])
    assert events[-1]["event"] == "complete"
    assert events[-1]["data"]["status"] == "succeeded", events[-1]
    step_names = [
        e["data"]["name"]
        for e in events
        if e["event"] == "step" and e["data"]["status"] == "running"
    ]
    assert step_names == [
        "fetch source",
        "detect changes",
        "snapshot database",
        "build",
        "update modules",
        "switch to green",
    ]
    lines = [e["data"]["line"] for e in events if e["event"] == "log"]
    assert any("Loading module shop_custom" in line for line in lines)
    ids = [e["id"] for e in events]
    assert len(ids) == len(set(ids))

    done = await fetch(api, tenant, env, deployment["id"])
    assert done["status"] == "succeeded"
    assert done["activeColor"] == "green"
    assert done["snapshotId"] is not None
    assert done["durationMs"] > 0
    assert {e["gateKey"] for e in done["evidence"]} == {"module_update", "health_check"}
    assert all(e["status"] == "passed" for e in done["evidence"])
    assert done["successVerdict"]["status"] == "passed"
    assert done["risk"]["level"] in ("low", "medium", "high")
    assert all(s["status"] == "succeeded" and s["durationMs"] is not None for s in done["steps"])
    assert await serving(nginx, env["slug"]) == 200

    summary = (
        await api.get(
            f"/api/projects/{env['project']['id']}/deployments/{deployment['id']}/logs/summary",
            headers=tenant.headers,
        )
    ).json()
    assert summary["updatedModules"] == ["shop_custom"]
    assert summary["success"] is True
    download = await api.get(
        f"/api/projects/{env['project']['id']}/deployments/{deployment['id']}/logs/download",
        headers=tenant.headers,
    )
    assert download.text.startswith(f"# ocore deployment {deployment['id']}")
    assert "==> update modules [succeeded" in download.text

    # A finished deployment replays at once; resuming after an id gives exactly the rest.
    replay = await follow(api, tenant, env, deployment["id"])
    path = f"/api/projects/{env['project']['id']}/deployments/{deployment['id']}/logs"
    async with api.stream(
        "GET", path, headers={**tenant.headers, "Last-Event-ID": replay[2]["id"]}
    ) as response:
        rest = await read_sse(response)
    assert [e["id"] for e in rest] == [e["id"] for e in replay[3:]]

    # 2. Data written after the first deploy, then a second deploy (a version bump).
    await add_marker(database, "after first deploy")
    second = repo.commit({"shop_custom/__manifest__.py": manifest("17.0.1.1.0")}, "Bump")
    deployment2 = await deploy(api, tenant, env, commitSha=second)
    assert deployment2["previousCommitSha"] == first
    events = await follow(api, tenant, env, deployment2["id"])
    assert events[-1]["data"]["status"] == "succeeded", events[-1]
    done2 = await fetch(api, tenant, env, deployment2["id"])
    assert done2["activeColor"] == "blue"
    await add_marker(database, "after second deploy")

    # 3. A deploy whose module update fails: the old colour keeps serving, the database is restored.
    await add_marker(database, "before the broken deploy")
    broken = repo.commit(
        {"shop_custom/__manifest__.py": manifest("17.0.1.2.0", standin_fail="load")}, "Break"
    )
    deployment3 = await deploy(api, tenant, env, commitSha=broken)
    events = await follow(api, tenant, env, deployment3["id"])
    assert events[-1]["data"]["status"] == "failed"
    failed = await fetch(api, tenant, env, deployment3["id"])
    assert failed["status"] == "failed"
    assert "Module update failed" in failed["errorMessage"]
    update_gate = next(e for e in failed["evidence"] if e["gateKey"] == "module_update")
    assert update_gate["status"] == "failed"
    assert update_gate["validation"]["exitCode"] != 0
    assert any(f["class"] == "registry_load_failure" for f in failed["findings"])
    assert failed["successVerdict"]["status"] == "failed"
    assert [s["name"] for s in failed["steps"]][-1] == "recover"
    instance = (
        await api.get(f"/api/instances/{env['instance']['id']}", headers=tenant.headers)
    ).json()
    assert instance["activeColor"] == "blue"
    assert await serving(nginx, env["slug"]) == 200
    assert await marker_rows(database) == [
        "after first deploy",
        "after second deploy",
        "before the broken deploy",
    ]

    # 4. Roll back to the first deployment: its code, and the database as before the second.
    response = await api.post(
        f"/api/projects/{env['project']['id']}/rollback",
        json={"deploymentId": deployment["id"]},
        headers=tenant.headers,
    )
    assert response.status_code == 202, response.text
    rollback = response.json()
    assert rollback["triggerType"] == "rollback"
    assert rollback["previousDeploymentId"] == deployment["id"]
    assert rollback["commitSha"] == first
    events = await follow(api, tenant, env, rollback["id"])
    assert events[-1]["data"]["status"] == "succeeded", events
    assert await marker_rows(database) == ["after first deploy"]
    assert await serving(nginx, env["slug"]) == 200

    # Rolling back to a failed deployment or the live one is refused.
    for target in (deployment3["id"], deployment["id"]):
        response = await api.post(
            f"/api/projects/{env['project']['id']}/rollback",
            json={"deploymentId": target},
            headers=tenant.headers,
        )
        assert response.status_code == 409, response.text
    listing = (
        await api.get(f"/api/projects/{env['project']['id']}/deployments", headers=tenant.headers)
    ).json()
    assert [d["id"] for d in listing["deployments"]] == [
        rollback["id"],
        deployment3["id"],
        deployment2["id"],
        deployment["id"],
    ]
    await asyncio.sleep(0)
