"""A real Odoo host for the neutralization tests: sshd, nginx, stand-in Odoo 16/17/18.

Provisioning an instance takes seconds, so a module provisions its instances
once and its tests share them: a module that sets ``SHARED_ROWS = True`` keeps
its ocore rows between tests (they are truncated when the module ends) and
its tests leave the Odoo databases as they found them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import text, update

from ocore.app import create_app
from ocore.core.db import Database
from ocore.environments.models import Environment
from ocore.instances.models import Instance
from ocore.models import Base
from ocore.settings import Settings
from tests.conftest import Tenant, new_tenant, wait_for_job
from tests.fixtures.nginx import Nginx, running_nginx
from tests.fixtures.odoo_runtime import (
    DB_HOST,
    DB_PASSWORD,
    DB_PORT,
    DB_USER,
    drop_database,
    install_odoo,
    kill_leftovers,
)
from tests.fixtures.ports import free_port_window
from tests.fixtures.sshd import Sshd, running_sshd

PORT_BLOCK = 16  # four instances of four ports
DB = {"dbHost": DB_HOST, "dbPort": DB_PORT, "dbUser": DB_USER, "dbPassword": DB_PASSWORD}


async def _truncate(database: Database) -> None:
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    async with database.engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {names} CASCADE"))


@pytest.fixture(autouse=True)
async def _clean_tables(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Overrides the suite's per-test truncation for modules sharing provisioned instances."""
    yield
    if getattr(request.module, "SHARED_ROWS", False) or "database" not in request.fixturenames:
        return
    await _truncate(request.getfixturevalue("database"))


@pytest.fixture(scope="module", autouse=True)
async def _clean_tables_after_module(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    yield
    if getattr(request.module, "SHARED_ROWS", False):
        await _truncate(request.getfixturevalue("database"))


@pytest.fixture(scope="package")
def sshd() -> Iterator[Sshd]:
    with running_sshd() as server:
        yield server


@pytest.fixture(scope="package")
def nginx() -> Iterator[Nginx]:
    with running_nginx() as proxy:
        yield proxy


@pytest.fixture(scope="package")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("odoo-host")
    for version in ("16.0", "17.0", "18.0"):
        install_odoo(base, version)
    return base


@dataclass
class Site:
    """A provisioned instance, its project and its staging environment."""

    instance: dict[str, Any]
    project: dict[str, Any]
    environment: dict[str, Any]
    database_name: str

    @property
    def path(self) -> str:
        return f"/api/environments/{self.environment['id']}/neutralization"

    @property
    def dsn(self) -> str:
        return f"postgresql://{DB_USER}:{DB_PASSWORD}@{DB_HOST}:{DB_PORT}/{self.database_name}"

    async def fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        """Read the Odoo database directly, not through the code under test."""
        connection = await asyncpg.connect(self.dsn)
        try:
            return list(await connection.fetch(query, *args))
        finally:
            await connection.close()

    async def execute(self, query: str, *args: object) -> None:
        connection = await asyncpg.connect(self.dsn)
        try:
            await connection.execute(query, *args)
        finally:
            await connection.close()


@dataclass
class World:
    client: httpx.AsyncClient
    tenant: Tenant
    server: dict[str, Any]
    database: Database
    base_dir: Path

    async def provision(self, version: str, modules: list[str]) -> Site:
        client, headers = self.client, self.tenant.headers
        tag = uuid.uuid4().hex[:6]
        template = await client.post(
            "/api/templates",
            json={"name": f"t-{tag}", "odooVersion": version, "modules": modules},
            headers=headers,
        )
        assert template.status_code == 201, template.text
        project = await client.post(
            "/api/projects",
            json={"name": f"p-{tag}", "repositoryUrl": f"/srv/{tag}.git", "odooVersion": version},
            headers=headers,
        )
        assert project.status_code == 201, project.text
        slug = f"shop{version[:2]}-{tag}"
        response = await client.post(
            "/api/instances",
            json={
                "name": f"Shop {version}",
                "slug": slug,
                "serverId": self.server["id"],
                "odooVersion": version,
                "templateId": template.json()["id"],
            },
            headers=headers,
        )
        assert response.status_code == 202, response.text
        instance = response.json()
        job = await self.job(instance["id"], "instance.provision", timeout=180)
        assert job["status"] == "succeeded", (
            job["error"],
            [s["output"][-800:] for s in job["steps"]],
        )
        response = await client.post(
            f"/api/projects/{project.json()['id']}/environments",
            json={
                "instanceId": instance["id"],
                "branch": f"staging-{tag}",
                "environmentType": "staging",
                "name": f"Staging {version}",
            },
            headers=headers,
        )
        assert response.status_code == 201, response.text
        environment = response.json()
        assert environment["status"] == "ready", environment
        async with self.database.sessionmaker() as session:
            row = await session.get(Instance, uuid.UUID(instance["id"]))
            assert row is not None
            database_name = row.database_name
        return Site(instance, project.json(), environment, database_name)

    async def job(self, target_id: str, kind: str, timeout: float = 60) -> dict[str, Any]:
        response = await self.client.get(
            f"/api/jobs?targetId={target_id}", headers=self.tenant.headers
        )
        job = next(j for j in response.json()["jobs"] if j["kind"] == kind)
        return await wait_for_job(self.client, self.tenant.headers, job["id"], timeout=timeout)

    async def set_mailpit_port(self, site: Site, port: int | None) -> None:
        async with self.database.sessionmaker() as session:
            await session.execute(
                update(Environment)
                .where(Environment.id == uuid.UUID(site.environment["id"]))
                .values(mailpit_port=port)
            )
            await session.commit()

    async def neutralize(self, site: Site, headers: dict[str, str] | None = None) -> dict[str, Any]:
        """Run the neutralize endpoint and wait for its job; returns the job with its steps."""
        response = await self.client.post(
            f"{site.path}/neutralize",
            json={"confirmText": site.environment["name"]},
            headers=headers or self.tenant.headers,
        )
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["environmentId"] == site.environment["id"]
        return await wait_for_job(self.client, self.tenant.headers, body["jobId"], timeout=60)

    async def items(self, site: Site, **params: str) -> list[dict[str, Any]]:
        response = await self.client.get(
            f"{site.path}/items",
            params={"limit": "100", **params},
            headers=self.tenant.headers,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["total"] == len(body["items"]), "more than one page of items"
        return list(body["items"])


@pytest.fixture(scope="module")
async def world(
    settings: Settings, database: Database, sshd: Sshd, nginx: Nginx, base_dir: Path
) -> AsyncIterator[World]:
    """The embedded app (jobs run in-process) with a tenant and a server on the test host."""
    low = free_port_window(PORT_BLOCK)
    app = create_app(
        settings.model_copy(
            update={
                "redis_url": None,
                "reconcile_interval_seconds": 1,
                "instance_port_min": low,
                "instance_port_max": low + PORT_BLOCK - 1,
            }
        )
    )
    app.state.database = database
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://ocore.test") as client:
            tenant = await new_tenant(database, settings, "Neutral")
            response = await client.post(
                "/api/servers",
                json={
                    "name": f"odoo-host-{uuid.uuid4().hex[:6]}",
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
            world = World(client, tenant, response.json(), database, base_dir)
            names: list[str] = []
            try:
                yield world
            finally:
                async with database.sessionmaker() as session:
                    rows = await session.execute(
                        text("SELECT slug, database_name FROM instances WHERE server_id = :id"),
                        {"id": uuid.UUID(world.server["id"])},
                    )
                    instances = list(rows.all())
                for slug, name in instances:
                    kill_leftovers(base_dir / "instances" / slug)
                    names.append(name)
    for name in names:
        drop_database(name)
