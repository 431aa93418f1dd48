"""A live ocore (uvicorn on a loopback port, jobs in-process) and a real Odoo host behind it."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ocore.app import create_app
from ocore.core.db import Database
from ocore.settings import Settings
from tests.conftest import Tenant, wait_for_job
from tests.fixtures.gitrepo import GitRepo
from tests.fixtures.http_server import serving
from tests.fixtures.nginx import Nginx, running_nginx
from tests.fixtures.odoo_runtime import install_odoo, kill_leftovers
from tests.fixtures.sshd import Sshd, running_sshd

DB = {"dbHost": "127.0.0.1", "dbPort": 5432, "dbUser": "ocore_test", "dbPassword": "ocore_test"}


@pytest.fixture
async def live(settings: Settings, database: Database) -> AsyncIterator[str]:
    """ocore served over real HTTP; returns its base URL."""
    app = create_app(
        settings.model_copy(update={"redis_url": None, "reconcile_interval_seconds": 1})
    )
    app.state.database = database
    async with serving(app) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
async def api(live: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def sshd() -> Iterator[Sshd]:
    with running_sshd() as server:
        yield server


@pytest.fixture(scope="module")
def nginx() -> Iterator[Nginx]:
    with running_nginx() as proxy:
        yield proxy


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    base = tmp_path_factory.mktemp("odoo-host")
    install_odoo(base, "17.0")
    yield base
    for instance_dir in (base / "instances").glob("*"):
        kill_leftovers(instance_dir)


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    return GitRepo.create(tmp_path)


def manifest(version: str, **extra: object) -> str:
    data = {"name": "Shop custom", "version": version, "depends": ["base"], **extra}
    return repr(data) + "\n"


async def provisioned(
    api: httpx.AsyncClient,
    tenant: Tenant,
    sshd: Sshd,
    nginx: Nginx,
    base_dir: Path,
    repo: GitRepo,
    environment_type: str = "staging",
) -> dict[str, Any]:
    """A project on the repository and a running instance linked to it (staging by default)."""
    server = await api.post(
        "/api/servers",
        json={
            "name": f"host-{uuid.uuid4().hex[:6]}",
            "host": sshd.host,
            "port": sshd.port,
            "username": sshd.username,
            "privateKey": sshd.client_private_key,
            "baseDir": str(base_dir),
            "nginxSitesDir": str(nginx.sites),
            "nginxCommand": nginx.command(),
            "nginxListen": f"{nginx.host}:{nginx.port}",
            **DB,
        },
        headers=tenant.headers,
    )
    assert server.status_code == 201, server.text
    project = await api.post(
        "/api/projects",
        json={"name": "shop", "repositoryUrl": repo.url, "odooVersion": "17.0"},
        headers=tenant.headers,
    )
    assert project.status_code == 201, project.text
    slug = f"shop-{uuid.uuid4().hex[:6]}"
    instance = await api.post(
        "/api/instances",
        json={
            "name": "Shop",
            "slug": slug,
            "serverId": server.json()["id"],
            "projectId": project.json()["id"],
            "environmentType": environment_type,
            "branch": "main",
        },
        headers=tenant.headers,
    )
    assert instance.status_code == 202, instance.text
    jobs = (
        await api.get(f"/api/jobs?targetId={instance.json()['id']}", headers=tenant.headers)
    ).json()["jobs"]
    job = await wait_for_job(api, tenant.headers, jobs[0]["id"], timeout=120)
    assert job["status"] == "succeeded", (
        job["error"],
        [(s["name"], s["output"][-800:]) for s in job["steps"]],
    )
    return {"project": project.json(), "instance": instance.json(), "slug": slug}


async def read_sse(response: httpx.Response, limit: int | None = None) -> list[dict[str, Any]]:
    """Events of a text/event-stream as dicts (event, id, data parsed); stops after ``limit``."""
    events: list[dict[str, Any]] = []
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if "data" in fields:
                events.append(
                    {
                        "event": fields.get("event", "message"),
                        "id": fields.get("id"),
                        "data": json.loads(fields["data"]),
                    }
                )
                if limit is not None and len(events) >= limit:
                    return events
                if events[-1]["event"] == "complete":
                    return events
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
    return events
