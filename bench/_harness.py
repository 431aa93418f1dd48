"""What the benchmarks share: a throwaway ocore database, a private Redis, ports, percentiles.

Not a benchmark itself. The scripts import it as ``_harness`` (their own
directory is first on ``sys.path`` when run as ``python bench/x.py``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from ocore.core import migrate
from ocore.core.db import Database
from ocore.settings import Settings

ADMIN_DATABASE_URL = os.environ.get(
    "OCORE_TEST_DATABASE_URL",
    "postgresql+asyncpg://ocore_test:ocore_test@127.0.0.1:5432/postgres",
)
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextlib.asynccontextmanager
async def ocore_database(prefix: str = "ocore_bench") -> AsyncIterator[str]:
    """A fresh database with ocore's schema (the alembic chain); dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(_dsn(ADMIN_DATABASE_URL))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = make_url(ADMIN_DATABASE_URL).set(database=name).render_as_string(hide_password=False)
    try:
        database = Database(url)
        try:
            await migrate.upgrade(database)
        finally:
            await database.dispose()
        yield url
    finally:
        admin = await asyncpg.connect(_dsn(ADMIN_DATABASE_URL))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def bench_settings(database_url: str, redis_url: str | None, data_dir: Path) -> Settings:
    return Settings(
        _env_file=None,
        data_dir=data_dir,
        database_url=database_url,
        redis_url=redis_url,
        jwt_secret="bench-secret-" + uuid.uuid4().hex,
        secret_key="bench-key-" + uuid.uuid4().hex,
        log_json=True,
        log_level="WARNING",
        queue_name=f"ocore:bench:{uuid.uuid4().hex[:8]}",
    )


def ocore_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment an ``ocore`` subprocess (serve, worker) reads its settings from."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCORE_")}
    env.update(
        {
            "OCORE_DATABASE_URL": settings.effective_database_url,
            "OCORE_QUEUE_NAME": settings.queue_name,
            "OCORE_JWT_SECRET": settings.effective_jwt_secret,
            "OCORE_SECRET_KEY": settings.effective_secret_key,
            "OCORE_DATA_DIR": str(settings.data_dir),
            "OCORE_LOG_LEVEL": settings.log_level,
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
            ),
        }
    )
    if settings.redis_url:
        env["OCORE_REDIS_URL"] = settings.redis_url
    env.update(extra)
    return env


@dataclass
class RedisServer:
    port: int
    directory: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - a fixed program and arguments
            [
                shutil.which("redis-server") or "redis-server",
                *("--bind", "127.0.0.1", "--port", str(self.port)),
                *("--save", "", "--appendonly", "no", "--dir", self.directory),
                *("--maxclients", "10000"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@contextlib.contextmanager
def private_redis() -> Iterator[RedisServer]:
    """A redis-server of the benchmark's own on a free port (nothing else's data at risk)."""
    with tempfile.TemporaryDirectory(prefix="ocore-bench-redis-") as directory:
        server = RedisServer(free_port(), directory)
        server.start()
        try:
            yield server
        finally:
            server.stop()


def spawn(
    argv: Sequence[str], env: dict[str, str] | None = None, count: int = 1
) -> list[subprocess.Popen[bytes]]:
    """Start ``count`` copies of a command of this benchmark's own, output discarded."""
    return [
        subprocess.Popen(  # noqa: S603 - fixed programs with arguments the scripts build
            list(argv), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(count)
    ]


def stop_processes(processes: Sequence[subprocess.Popen[bytes]], timeout: float = 10) -> None:
    """SIGTERM each (still running) process this script started, then wait; SIGKILL stragglers."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank on the sorted values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def machine() -> str:
    cores = os.cpu_count()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{cores} CPUs, load average {load}"


REPORT_ENV = "OCORE_BENCH_REPORT"


def report(
    figure: str,
    ocore: float | str,
    reference: float | str | None = None,
    unit: str = "",
    note: str = "",
) -> None:
    """One row of ``bench/run.py``'s table, appended as JSON to the file it names.

    A no-op when a script runs on its own. The ratio is ocore/reference when both
    are numbers; a string (e.g. "0 of 719") is shown as it is.
    """
    path = os.environ.get(REPORT_ENV)
    if not path:
        return
    row = {"figure": figure, "ocore": ocore, "reference": reference, "unit": unit, "note": note}
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(row) + "\n")
