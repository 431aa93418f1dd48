"""Deploy rules: targets resolve or 422, foreign instances are 404, one deploy at a time."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ocore.core.auth import Role
from ocore.core.db import Database
from ocore.deployments.models import Deployment
from ocore.instances.models import Instance
from tests.conftest import Tenant
from tests.deployments.conftest import manifest
from tests.factories import make_instance
from tests.fixtures.gitrepo import GitRepo


@pytest.fixture
async def setup(client, tenant: Tenant, database: Database, tmp_path: Path) -> dict:
    repo = GitRepo.create(tmp_path)
    sha = repo.commit({"shop_custom/__manifest__.py": manifest("17.0.1.0.0")}, "first")
    repo.tag("v1.0")
    project = (
        await client.post(
            "/api/projects",
            json={"name": "shop", "repositoryUrl": repo.url, "odooVersion": "17.0"},
            headers=tenant.headers,
        )
    ).json()
    instance = await make_instance(database, tenant, "shop-staging")
    async with database.sessionmaker() as session:
        row = await session.get(Instance, instance.id)
        assert row is not None
        row.project_id = project["id"]
        await session.commit()
    return {"project": project, "instance": instance, "sha": sha, "repo": repo}


async def count_deployments(database: Database) -> int:
    async with database.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(Deployment)) or 0)


def deploy_path(setup: dict) -> str:
    return f"/api/projects/{setup['project']['id']}/deploy"


@pytest.mark.parametrize("target", [{"branch": "main"}, {"tag": "v1.0"}, {"commitSha": "SHA"}])
async def test_each_target_resolves(client, tenant: Tenant, setup: dict, target: dict) -> None:
    if target.get("commitSha") == "SHA":
        target = {"commitSha": setup["sha"][:12]}
    response = await client.post(
        deploy_path(setup),
        json={"instanceId": str(setup["instance"].id), **target},
        headers=tenant.headers,
    )
    assert response.status_code == 202, response.text
    assert response.json()["commitSha"] == setup["sha"]
    assert response.json()["status"] == "queued"
    assert response.json()["triggerType"] == "manual"


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"branch": "nope"}, 422, "branch 'nope' does not exist"),
        ({"tag": "v9"}, 422, "tag 'v9' does not exist"),
        ({"commitSha": "deadbeefdeadbeef"}, 422, "commit deadbeefdeadbeef does not exist"),
        ({"branch": "main", "tag": "v1.0"}, 422, "exactly one"),
        ({}, 422, "exactly one"),
        ({"branch": "--upload-pack=touch /tmp/pwned"}, 422, "body.branch"),
        ({"commitSha": "$(id)"}, 422, "body.commitSha"),
    ],
)
async def test_bad_targets(
    client, tenant: Tenant, setup: dict, database: Database, body, status, needle
) -> None:
    response = await client.post(
        deploy_path(setup),
        json={"instanceId": str(setup["instance"].id), **body},
        headers=tenant.headers,
    )
    assert response.status_code == status, response.text
    assert needle in response.json()["detail"]
    assert await count_deployments(database) == 0
    assert not os.path.exists("/tmp/pwned")  # noqa: ASYNC240


async def test_one_deploy_at_a_time(client, tenant: Tenant, setup: dict, database) -> None:
    body = {"instanceId": str(setup["instance"].id), "branch": "main"}
    assert (
        await client.post(deploy_path(setup), json=body, headers=tenant.headers)
    ).status_code == 202
    response = await client.post(deploy_path(setup), json=body, headers=tenant.headers)
    assert response.status_code == 409
    assert await count_deployments(database) == 1


async def test_instance_must_belong_to_the_project(
    client, tenant: Tenant, other_tenant: Tenant, setup: dict, database: Database
) -> None:
    stranger = await make_instance(database, tenant, "unrelated")
    response = await client.post(
        deploy_path(setup),
        json={"instanceId": str(stranger.id), "branch": "main"},
        headers=tenant.headers,
    )
    assert response.status_code == 404
    response = await client.post(
        deploy_path(setup),
        json={"instanceId": str(setup["instance"].id), "branch": "main"},
        headers=other_tenant.headers,
    )
    assert response.status_code == 404


async def test_permissions_and_reads(
    client, tenant: Tenant, other_tenant: Tenant, setup: dict
) -> None:
    viewer = await tenant.add_member(Role.VIEWER)
    developer = await tenant.add_member(Role.DEVELOPER)
    body = {"instanceId": str(setup["instance"].id), "branch": "main"}
    assert (
        await client.post(deploy_path(setup), json=body, headers=viewer.headers)
    ).status_code == 403
    created = await client.post(deploy_path(setup), json=body, headers=developer.headers)
    assert created.status_code == 202
    deployment = created.json()
    base = f"/api/projects/{setup['project']['id']}/deployments"
    listing = (await client.get(base, headers=viewer.headers)).json()
    assert listing["total"] == 1
    assert listing["deployments"][0]["id"] == deployment["id"]
    for path in (
        base,
        f"{base}/{deployment['id']}",
        f"{base}/{deployment['id']}/logs/summary",
        f"{base}/{deployment['id']}/logs/download",
    ):
        assert (await client.get(path, headers=other_tenant.headers)).status_code == 404, path
    summary = (
        await client.get(f"{base}/{deployment['id']}/logs/summary", headers=viewer.headers)
    ).json()
    assert summary["updatedModules"] == []
    response = await client.post(
        f"/api/projects/{setup['project']['id']}/rollback",
        json={"deploymentId": deployment["id"]},
        headers=tenant.headers,
    )
    assert response.status_code == 409
    assert "did not succeed" in response.json()["detail"]


async def test_waive_a_failed_optional_gate(client, tenant: Tenant, setup: dict, database) -> None:
    from ocore.deployments.models import DeploymentEvidence
    from ocore.orgs.models import AuditEntry

    async with database.sessionmaker() as session:
        deployment = Deployment(
            organization_id=tenant.organization_id,
            project_id=setup["project"]["id"],
            instance_id=setup["instance"].id,
            status="failed",
            commit_sha=setup["sha"],
            success_verdict={"status": "failed", "label": "Failed", "clean": False,
                             "waived": False, "legacy": False, "reason": "tests failed"},
        )  # fmt: skip
        session.add(deployment)
        await session.flush()
        for key, required, status in (
            ("module_update", True, "passed"),
            ("tests", False, "failed"),
            ("health_check", True, "failed"),
        ):
            session.add(
                DeploymentEvidence(
                    deployment_id=deployment.id,
                    gate_key=key,
                    name=key,
                    required=required,
                    status=status,
                )
            )
        await session.commit()
    path = f"/api/projects/{setup['project']['id']}/deployments/{deployment.id}/waivers"
    body = {"gateKey": "tests", "reason": "flaky test tracked in JIRA-42"}
    developer = await tenant.add_member(Role.DEVELOPER)
    assert (await client.post(path, json=body, headers=developer.headers)).status_code == 403
    assert (
        await client.post(path, json={**body, "reason": "meh"}, headers=tenant.headers)
    ).status_code == 422
    for gate in ("module_update", "health_check", "nope"):
        response = await client.post(path, json={**body, "gateKey": gate}, headers=tenant.headers)
        assert response.status_code in (404, 409), gate
    response = await client.post(path, json=body, headers=tenant.headers)
    assert response.status_code == 200, response.text
    tests_gate = next(e for e in response.json()["evidence"] if e["gateKey"] == "tests")
    assert tests_gate["waiver"]["reason"] == "flaky test tracked in JIRA-42"
    assert tests_gate["waiver"]["actor"].startswith("owner@")
    # The health check still failed: the verdict stays failed.
    assert response.json()["successVerdict"]["status"] == "failed"
    assert (await client.post(path, json=body, headers=tenant.headers)).status_code == 409
    async with database.sessionmaker() as session:
        actions = (await session.scalars(select(AuditEntry.action))).all()
    assert "deployment.waive" in actions
