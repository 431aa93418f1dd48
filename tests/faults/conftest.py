"""Fault injection against real services: ocore processes, a host over SSH, Postgres, Redis.

``fleet`` is ocore as production runs it: the API and ``ocore worker``
processes sharing the session's database and a private Redis (one that no
other test run relies on, so it may be stopped). The host is the deployment
tests' one: an OpenSSH server on loopback, nginx, the stand-in Odoo.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from ocore.core.db import Database
from ocore.deployments.models import Snapshot
from ocore.instances.models import Instance
from ocore.jobs.models import Job
from ocore.settings import Settings
from tests.conftest import drop_database
from tests.deployments.conftest import api, base_dir, live, nginx, repo, sshd
from tests.faults.helpers import wait_until
from tests.fixtures.ocore_process import OcoreProcess, ocore_env, start_api, start_worker
from tests.fixtures.odoo_runtime import kill_leftovers
from tests.fixtures.redis_server import RedisServer, running_redis

__all__ = ["api", "base_dir", "live", "nginx", "repo", "sshd"]

# Short enough that a dead worker's job moves on within seconds, long enough
# that a live worker on a busy two-core machine always renews in time.
LEASE_SECONDS = 4


@pytest.fixture(autouse=True)
async def _host_cleanup(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Stop the instances a test started on the host and drop their databases.

    The host is shared by the module's tests, and the next test is given the
    same instance ports again (the tables are emptied between tests).
    """
    yield
    if "base_dir" not in request.fixturenames or "database" not in request.fixturenames:
        return
    base: Path = request.getfixturevalue("base_dir")
    for instance_dir in (base / "instances").glob("*"):
        kill_leftovers(instance_dir)
    database: Database = request.getfixturevalue("database")
    async with database.sessionmaker() as session:
        names = [
            *(await session.scalars(select(Instance.database_name))).all(),
            *(await session.scalars(select(Snapshot.location))).all(),
        ]
    for name in set(names):
        await drop_database(name)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


@dataclass
class Fleet:
    """The API and workers of one ocore installation; the test starts workers as it needs."""

    api: httpx.AsyncClient
    env: dict[str, str]
    workdir: Path
    database: Database
    workers: list[OcoreProcess] = field(default_factory=list)

    def start_worker(self) -> OcoreProcess:
        worker = start_worker(self.env, self.workdir, f"worker-{len(self.workers)}")
        self.workers.append(worker)
        return worker

    async def job(self, job_id: uuid.UUID | str) -> Job:
        async with self.database.sessionmaker() as session:
            job = await session.get(Job, uuid.UUID(str(job_id)))
        assert job is not None
        return job

    async def job_for(self, target_id: str) -> Job:
        """The (latest) job acting on ``target_id``, once there is one."""

        async def latest() -> Job | None:
            async with self.database.sessionmaker() as session:
                return await session.scalar(
                    select(Job)
                    .where(Job.target_id == uuid.UUID(target_id))
                    .order_by(Job.created_at.desc())
                    .limit(1)
                )

        job: Job = await wait_until(latest, f"a job for {target_id}", timeout=30)
        return job

    def logs(self) -> str:
        """The workers' output, for assertion messages."""
        return "\n".join(f"--- {p.log_path.name}\n{p.log[-3000:]}" for p in self.workers)


@pytest.fixture
async def fleet(
    settings: Settings, database: Database, redis_server: RedisServer, tmp_path: Path
) -> AsyncIterator[Fleet]:
    env = ocore_env(
        settings,
        tmp_path / "data",
        redis_url=redis_server.url(),
        queue_name=f"ocore:faults:{uuid.uuid4().hex[:8]}",
        job_lease_seconds=LEASE_SECONDS,
        reconcile_interval_seconds=1,
    )
    process, url = await start_api(env, tmp_path)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            fleet = Fleet(client, env, tmp_path, database)
            try:
                yield fleet
            finally:
                for worker in fleet.workers:
                    worker.stop()
    finally:
        process.stop()
