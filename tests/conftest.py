"""Shared fixtures: a real PostgreSQL database per test session (built by the
alembic chain), real Redis, the app behind an httpx client, and tenants to call it as."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from ocore.app import create_app
from ocore.core import migrate
from ocore.core.auth import Role
from ocore.core.db import Database
from ocore.core.uow import commit
from ocore.models import Base
from ocore.orgs import service as orgs
from ocore.orgs.models import User
from ocore.settings import Settings
from tests.fixtures.ports import SESSION_PORT_MIN, SESSION_WINDOW

ADMIN_DATABASE_URL = os.environ.get(
    "OCORE_TEST_DATABASE_URL",
    "postgresql+asyncpg://ocore_test:ocore_test@127.0.0.1:5432/postgres",
)
REDIS_URL = os.environ.get("OCORE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
INSTANCE_PORT_MIN = SESSION_PORT_MIN


def asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def create_database(name: str) -> str:
    """Create an empty PostgreSQL database; returns its SQLAlchemy URL."""
    connection = await asyncpg.connect(asyncpg_dsn(ADMIN_DATABASE_URL))
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return make_url(ADMIN_DATABASE_URL).set(database=name).render_as_string(hide_password=False)


async def drop_database(name: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(ADMIN_DATABASE_URL))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    name = f"ocore_test_{uuid.uuid4().hex[:12]}"
    url = await create_database(name)
    database = Database(url)
    await migrate.upgrade(database)
    await database.dispose()
    yield url
    await drop_database(name)


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        _env_file=None,
        data_dir=tmp_path_factory.mktemp("ocore-data"),
        database_url=database_url,
        redis_url=REDIS_URL,
        jwt_secret="test-secret-" + uuid.uuid4().hex,
        secret_key="test-key-" + uuid.uuid4().hex,
        log_json=True,
        queue_name=f"ocore:test:{uuid.uuid4().hex[:8]}",
        # A port window of this session's own: other test runs on the machine keep theirs.
        instance_port_min=INSTANCE_PORT_MIN,
        instance_port_max=INSTANCE_PORT_MIN + SESSION_WINDOW - 1,
    )


@pytest.fixture(scope="session")
async def database(settings: Settings) -> AsyncIterator[Database]:
    db = Database(settings.effective_database_url)
    yield db
    await db.dispose()


@pytest.fixture(autouse=True)
async def _clean_tables(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Each test starts from empty tables (only when it used the database)."""
    yield
    if "database" not in request.fixturenames:
        return
    database: Database = request.getfixturevalue("database")
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    async with database.engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {names} CASCADE"))


@pytest.fixture
async def session(database: Database) -> AsyncIterator[AsyncSession]:
    async with database.sessionmaker() as s:
        yield s


@pytest.fixture(scope="session")
async def app(settings: Settings, database: Database):  # type: ignore[no-untyped-def]
    application = create_app(settings)
    application.state.database = database
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def embedded_app(settings: Settings, database: Database):  # type: ignore[no-untyped-def]
    """The app as the embedded default runs it: jobs run in this process.

    Per test: its reconciler would otherwise pick up other tests' jobs.
    """
    application = create_app(
        settings.model_copy(update={"redis_url": None, "reconcile_interval_seconds": 1})
    )
    application.state.database = database
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def embedded_client(embedded_app) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=embedded_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://ocore.test") as c:
        yield c


async def wait_for_job(
    client: httpx.AsyncClient, headers: dict[str, str], job_id: str, timeout: float = 30
) -> dict[str, Any]:
    """Poll the jobs API until the job is finished; returns it with its steps."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        job: dict[str, Any] = (await client.get(f"/api/jobs/{job_id}", headers=headers)).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"job {job_id} still {job['status']}: {job}")
        await asyncio.sleep(0.1)


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://ocore.test") as c:
        yield c


@dataclass
class Member:
    user: User
    token: str
    token_id: uuid.UUID

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Tenant:
    organization_id: uuid.UUID
    owner: Member
    add_member: Callable[[Role], Awaitable[Member]]

    @property
    def headers(self) -> dict[str, str]:
        return self.owner.headers


async def new_tenant(database: Database, settings: Settings, name: str) -> Tenant:
    """An organization with its owner and an owner token; ``add_member`` adds users by role."""
    async with database.sessionmaker() as s:
        organization, owner = await orgs.create_organization(
            s, name=f"{name} {uuid.uuid4().hex[:6]}", owner_email=f"owner@{name.lower()}.test"
        )
        issued = await orgs.issue_token(s, settings, owner, name="test")
        await commit(s)
    org_id = organization.id

    async def add_member(role: Role) -> Member:
        async with database.sessionmaker() as s:
            user = await orgs.add_user(
                s, org_id, email=f"{role.value}-{uuid.uuid4().hex[:6]}@x.test", role=role
            )
            member_token = await orgs.issue_token(s, settings, user)
            await commit(s)
        return Member(user=user, token=member_token.token, token_id=member_token.row.id)

    return Tenant(
        organization_id=org_id,
        owner=Member(user=owner, token=issued.token, token_id=issued.row.id),
        add_member=add_member,
    )


@pytest.fixture
def make_tenant(database: Database, settings: Settings) -> Callable[[str], Awaitable[Tenant]]:
    async def make(name: str = "Acme") -> Tenant:
        return await new_tenant(database, settings, name)

    return make


@pytest.fixture
async def tenant(make_tenant: Callable[[str], Awaitable[Tenant]]) -> Tenant:
    return await make_tenant("Acme")


@pytest.fixture
async def other_tenant(make_tenant: Callable[[str], Awaitable[Tenant]]) -> Tenant:
    return await make_tenant("Globex")


def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]
