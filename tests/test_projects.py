"""The projects API: the canonical CRUD every later resource copies."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from ocore.core.db import Database
from ocore.orgs.models import AuditEntry
from ocore.projects.models import Project
from tests.conftest import Tenant

PROJECT = {
    "name": "shop",
    "repositoryUrl": "git@github.com:acme/shop.git",
    "odooVersion": "17.0",
}


async def count_projects(database: Database) -> int:
    async with database.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(Project)) or 0)


async def test_create_get_update_delete(client, tenant: Tenant, database: Database) -> None:
    response = await client.post(
        "/api/projects", json={**PROJECT, "gitToken": "ghp_secret_value"}, headers=tenant.headers
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["gitProvider"] == "github"
    assert created["defaultBranch"] == "main"
    assert created["testGateProduction"] == "block"
    assert created["hasGitToken"] is True
    assert len(created["webhookSecret"]) >= 32
    assert "ghp_secret_value" not in response.text

    fetched = (await client.get(f"/api/projects/{created['id']}", headers=tenant.headers)).json()
    assert "webhookSecret" not in fetched
    assert "gitToken" not in fetched
    assert fetched["name"] == "shop"

    response = await client.put(
        f"/api/projects/{created['id']}",
        json={"defaultBranch": "17.0-main", "testGateStaging": "block", "testTags": "/shop"},
        headers=tenant.headers,
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["defaultBranch"] == "17.0-main"
    assert updated["testGateStaging"] == "block"
    assert updated["name"] == "shop"
    assert updated["updatedAt"] >= fetched["updatedAt"]

    response = await client.delete(f"/api/projects/{created['id']}", headers=tenant.headers)
    assert response.status_code == 204
    response = await client.get(f"/api/projects/{created['id']}", headers=tenant.headers)
    assert response.status_code == 404
    assert await count_projects(database) == 0

    async with database.sessionmaker() as session:
        actions = (
            await session.scalars(select(AuditEntry.action).order_by(AuditEntry.created_at))
        ).all()
    assert actions == ["project.create", "project.update", "project.delete"]


async def test_webhook_secret_rotation(client, tenant: Tenant) -> None:
    created = (await client.post("/api/projects", json=PROJECT, headers=tenant.headers)).json()
    response = await client.post(
        f"/api/projects/{created['id']}/webhook-secret", headers=tenant.headers
    )
    assert response.status_code == 200
    assert response.json()["webhookSecret"] != created["webhookSecret"]


async def test_pagination(client, tenant: Tenant) -> None:
    for i in range(25):
        response = await client.post(
            "/api/projects", json={**PROJECT, "name": f"p{i:02}"}, headers=tenant.headers
        )
        assert response.status_code == 201
    first = (await client.get("/api/projects", headers=tenant.headers)).json()
    assert first["total"] == 25
    assert first["limit"] == 20
    assert [p["name"] for p in first["projects"]] == [f"p{i:02}" for i in range(20)]
    rest = (await client.get("/api/projects?limit=10&offset=20", headers=tenant.headers)).json()
    assert [p["name"] for p in rest["projects"]] == [f"p{i:02}" for i in range(20, 25)]
    assert rest["offset"] == 20
    for query in ("limit=101", "limit=0", "offset=-1", "limit=abc"):
        response = await client.get(f"/api/projects?{query}", headers=tenant.headers)
        assert response.status_code == 422, query
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["errors"][0]["location"].startswith("query.")


async def test_duplicate_name_conflicts(client, tenant: Tenant, database: Database) -> None:
    assert (
        await client.post("/api/projects", json=PROJECT, headers=tenant.headers)
    ).status_code == 201
    response = await client.post("/api/projects", json=PROJECT, headers=tenant.headers)
    assert response.status_code == 409
    assert response.json()["code"] == "conflict"
    assert await count_projects(database) == 1
    other = (
        await client.post("/api/projects", json={**PROJECT, "name": "b"}, headers=tenant.headers)
    ).json()
    response = await client.put(
        f"/api/projects/{other['id']}", json={"name": "shop"}, headers=tenant.headers
    )
    assert response.status_code == 409


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({**PROJECT, "odooVersion": "19.0"}, "body.odooVersion"),
        ({**PROJECT, "odooVersion": 17}, "body.odooVersion"),
        ({**PROJECT, "repositoryUrl": "--upload-pack=touch /tmp/x"}, "body.repositoryUrl"),
        ({**PROJECT, "repositoryUrl": "https://h/a b"}, "body.repositoryUrl"),
        ({**PROJECT, "repositoryUrl": "file:///../../etc"}, "body.repositoryUrl"),
        (
            {**PROJECT, "repositoryUrl": "https://x-token:ghp_secret@github.com/a/b"},
            "body.repositoryUrl",
        ),
        ({**PROJECT, "repositoryUrl": "https://ghp_secret@github.com/a/b"}, "body.repositoryUrl"),
        ({**PROJECT, "defaultBranch": "main;rm -rf /"}, "body.defaultBranch"),
        ({**PROJECT, "defaultBranch": "-delete"}, "body.defaultBranch"),
        ({**PROJECT, "defaultBranch": "a..b"}, "body.defaultBranch"),
        ({**PROJECT, "testGateStaging": "maybe"}, "body.testGateStaging"),
        ({**PROJECT, "testTags": "$(id)"}, "body.testTags"),
        ({**PROJECT, "name": ""}, "body.name"),
        ({**PROJECT, "unknownField": 1}, "body.unknownField"),
        ({"name": "x"}, "body.repositoryUrl"),
    ],
)
async def test_bad_input_is_422_and_writes_nothing(
    client, tenant: Tenant, database: Database, body, location
) -> None:
    response = await client.post("/api/projects", json=body, headers=tenant.headers)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "invalid_input"
    assert location in [e["location"] for e in problem["errors"]]
    assert location in problem["detail"]
    assert await count_projects(database) == 0


async def test_update_rejects_null_and_unknown_fields(client, tenant: Tenant) -> None:
    created = (await client.post("/api/projects", json=PROJECT, headers=tenant.headers)).json()
    for body in ({"name": None}, {"odooVersion": None}, {"nope": True}, {"odooVersion": "9"}):
        response = await client.put(
            f"/api/projects/{created['id']}", json=body, headers=tenant.headers
        )
        assert response.status_code == 422, body
    # Clearing what may be cleared works.
    response = await client.put(
        f"/api/projects/{created['id']}", json={"testTags": None}, headers=tenant.headers
    )
    assert response.status_code == 200
    assert response.json()["testTags"] is None
    unchanged = (await client.get(f"/api/projects/{created['id']}", headers=tenant.headers)).json()
    assert unchanged["name"] == "shop"
    assert unchanged["odooVersion"] == "17.0"


async def test_malformed_json_and_bad_uuid(client, tenant: Tenant) -> None:
    response = await client.post(
        "/api/projects",
        content=b'{"name": "x",',
        headers={**tenant.headers, "content-type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_input"
    response = await client.get("/api/projects/not-a-uuid", headers=tenant.headers)
    assert response.status_code == 422
    assert "path.project_id" in response.json()["detail"]


@pytest.mark.parametrize(
    ("url", "provider"),
    [
        ("https://gitlab.com/acme/shop.git", "gitlab"),
        ("/srv/git/shop.git", "local"),
        ("ssh://git@git.acme.test:2222/shop.git", "ssh"),
    ],
)
async def test_provider_is_inferred(client, tenant: Tenant, url: str, provider: str) -> None:
    response = await client.post(
        "/api/projects", json={**PROJECT, "repositoryUrl": url}, headers=tenant.headers
    )
    assert response.status_code == 201, response.text
    assert response.json()["gitProvider"] == provider


async def test_local_repository_inside_the_data_directory_is_refused(
    client, tenant: Tenant, settings, database: Database
) -> None:
    # Another organization's git mirror (or ocore's secrets) lives there.
    for url in (f"{settings.data_dir}/git-cache/other.git", f"file://{settings.data_dir}/x.git"):
        response = await client.post(
            "/api/projects", json={**PROJECT, "repositoryUrl": url}, headers=tenant.headers
        )
        assert response.status_code == 422, url
        assert "data directory" in response.json()["detail"]
    assert await count_projects(database) == 0
