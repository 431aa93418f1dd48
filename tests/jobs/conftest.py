"""Job-system fixtures: an embedded job system, real `ocore worker` processes, a private Redis."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

import pytest

from ocore.core.crypto import SecretBox
from ocore.core.db import Database
from ocore.core.uow import commit
from ocore.jobs import engine
from ocore.jobs.models import Job
from ocore.jobs.queue import JobQueue
from ocore.jobs.runtime import JobSystem
from ocore.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def embedded(settings: Settings, database: Database) -> AsyncIterator[JobSystem]:
    """The embedded default's job system (no Redis), with short leases."""
    local = settings.model_copy(
        update={"redis_url": None, "job_lease_seconds": 1.5, "reconcile_interval_seconds": 0.5}
    )
    system = JobSystem(local, database, SecretBox(local.effective_secret_key))
    system.start()
    yield system
    await system.stop()


async def enqueue_noop(
    database: Database,
    queue: JobQueue,
    *,
    sleep: float = 0,
    lock_key: str | None = None,
    organization_id: uuid.UUID | None = None,
) -> uuid.UUID:
    async with database.sessionmaker() as session:
        job = await engine.enqueue(
            session,
            queue,
            database,
            kind="diagnostics.noop",
            target_type="diagnostics",
            target_id=None,
            organization_id=organization_id,
            payload={"sleepSeconds": sleep},
            lock_key=lock_key,
        )
        await commit(session)
        return job.id


async def wait_for_job(
    database: Database,
    job_id: uuid.UUID,
    predicate: Callable[[Job], bool],
    timeout: float = 20,
) -> Job:
    deadline = time.monotonic() + timeout
    while True:
        async with database.sessionmaker() as session:
            job = await session.get(Job, job_id)
        assert job is not None
        if predicate(job):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} stuck: {job.status} {job.error}")
        await asyncio.sleep(0.1)


@dataclass
class RedisServer:
    port: int
    directory: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.directory,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A Redis of this test's own, so it can be taken down without disturbing others."""
    with tempfile.TemporaryDirectory() as directory:
        server = RedisServer(free_port(), directory)
        server.start()
        yield server
        server.stop()


@dataclass
class WorkerPool:
    settings: Settings
    redis_url: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, count: int = 1) -> list[subprocess.Popen[bytes]]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OCORE_")}
        env.update(
            {
                "OCORE_DATABASE_URL": self.settings.effective_database_url,
                "OCORE_REDIS_URL": self.redis_url,
                "OCORE_QUEUE_NAME": self.settings.queue_name,
                "OCORE_JWT_SECRET": self.settings.effective_jwt_secret,
                "OCORE_SECRET_KEY": self.settings.effective_secret_key,
                "OCORE_DATA_DIR": str(self.settings.data_dir),
                "OCORE_JOB_LEASE_SECONDS": "2",
                "OCORE_RECONCILE_INTERVAL_SECONDS": "1",
            }
        )
        started = [
            subprocess.Popen(
                [sys.executable, "-m", "ocore.cli", "worker"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(count)
        ]
        self.processes.extend(started)
        return started

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def workers(settings: Settings) -> Iterator[Callable[[str], WorkerPool]]:
    pools: list[WorkerPool] = []

    def make(redis_url: str) -> WorkerPool:
        pool = WorkerPool(settings, redis_url)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.stop()
