"""Job dispatch through arq with real ``ocore worker`` processes, against arq alone.

    PYTHONPATH=. python bench/jobs.py [--samples 200] [--jobs 1000] [--workers 1,2]

On a throwaway PostgreSQL database (ocore's schema) and a private redis-server,
for N = 1 and 2 worker processes, all at arq's poll_delay of 0.05 s and
max_jobs 8 (ocore's ``worker_concurrency`` default):

  (a) raw arq: arq workers (this script, ``--raw-worker``) running a trivial
      function that records when it started; enqueued with ``enqueue_job``;
  (b) ocore: ``python -m ocore.cli worker`` processes running
      ``diagnostics.noop`` jobs enqueued with ``engine.enqueue`` + commit
      (the job row, the dispatch to arq after commit, the claim, the lease,
      the status events);

and, for comparison, (c) the in-process queue of the embedded default (a
``JobSystem`` without Redis in this process, on the same PostgreSQL).

Latency: one job at a time, ``--samples`` times, with a random pause of
0-100 ms between (two poll periods, so the enqueue falls anywhere in the
worker's poll cycle): from just before the enqueue call to the job starting
(raw: the function's first line; ocore: the job row's ``started_at``, set by
the runner's claim). Throughput: ``--jobs`` jobs dispatched to become due at
the same instant T (``defer``), then jobs per second per worker until the last
one is done (raw: its start; ocore: the row's ``finished_at``), and the CPU
time the workers used meanwhile, per job (in-process: this process's).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from _harness import (
    bench_settings,
    cpu_seconds,
    machine,
    ocore_database,
    ocore_env,
    percentile,
    private_redis,
    report,
    spawn,
    stop_processes,
)
from arq import create_pool, func
from arq.connections import ArqRedis
from arq.worker import Worker
from sqlalchemy import func as sql_func
from sqlalchemy import select

from ocore.core.crypto import SecretBox
from ocore.core.db import Database
from ocore.core.events import EventBus, RedisEventBus
from ocore.core.logging import configure_logging
from ocore.core.uow import commit
from ocore.jobs import engine
from ocore.jobs.context import job_stream
from ocore.jobs.models import Job
from ocore.jobs.queue import ArqQueue, JobQueue, redis_settings
from ocore.jobs.runtime import JobSystem
from ocore.settings import Settings

DEVNULL = open(os.devnull, "w")  # noqa: SIM115 - for the whole run
POLL_DELAY = 0.05
MAX_JOBS = 8
NOOP = "diagnostics.noop"
SCRIPT = str(Path(__file__).resolve())


# -- the raw arq side: a worker process and a trivial function ------------------------


async def trivial(ctx: dict[str, Any], key: str, sleep: float = 0) -> None:
    started = time.time()
    await ctx["redis"].rpush(key, f"{started} {os.getpid()}")
    if sleep:
        await asyncio.sleep(sleep)


def run_raw_worker(redis_url: str, queue_name: str) -> None:
    """An arq worker configured like ``ocore worker`` (minus its cron and startup)."""
    Worker(
        functions=[func(trivial, name="trivial", max_tries=1)],  # type: ignore[arg-type]
        queue_name=queue_name,
        redis_settings=redis_settings(redis_url),
        max_jobs=MAX_JOBS,
        job_timeout=3600,
        keep_result=0,
        poll_delay=POLL_DELAY,
    ).run()


class RawArq:
    name = "raw arq"

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self.queue_name = f"bench:raw:{uuid.uuid4().hex[:8]}"
        self.pool: ArqRedis | None = None
        self.processes: list[subprocess.Popen[bytes]] = []

    async def start(self, count: int) -> None:
        self.pool = await create_pool(
            redis_settings(self.redis_url), default_queue_name=self.queue_name
        )
        argv = [sys.executable, SCRIPT, "--raw-worker", self.redis_url, self.queue_name]
        self.processes = spawn(argv, count=count)
        seen: set[str] = set()
        deadline = time.monotonic() + 60
        while len(seen) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(seen)} of {count} raw arq workers started")
            key = f"bench:warm:{uuid.uuid4().hex}"
            for _ in range(MAX_JOBS * count + 4):
                await self.pool.enqueue_job("trivial", key, 0.2)
            for _ in range(MAX_JOBS * count + 4):
                popped = await self.pool.blpop([key], timeout=30)
                assert popped is not None, "a warm-up job did not run"
                seen.add(popped[1].decode().split()[1])

    async def latency(self) -> float:
        assert self.pool is not None
        key = f"bench:lat:{uuid.uuid4().hex}"
        t0 = time.time()
        await self.pool.enqueue_job("trivial", key)
        popped = await self.pool.blpop([key], timeout=30)
        assert popped is not None, "the job did not run"
        return float(popped[1].decode().split()[0]) - t0

    async def throughput(self, count: int) -> tuple[float, float, float]:
        """(T, time the last job was done, workers' CPU seconds), all ``count`` jobs due at T."""
        assert self.pool is not None
        key = f"bench:tp:{uuid.uuid4().hex}"
        due = time.time() + lead_time(count)
        when = datetime.fromtimestamp(due, UTC)
        for _ in range(count):
            await self.pool.enqueue_job("trivial", key, _defer_until=when)
        check_lead(due)
        cpu = self.cpu()
        while True:
            if await self.pool.llen(key) >= count:
                break
            await asyncio.sleep(0.1)
        cpu = self.cpu() - cpu
        done = [float(v.decode().split()[0]) for v in await self.pool.lrange(key, 0, -1)]
        return due, max(done), cpu

    def cpu(self) -> float:
        return sum(cpu_seconds(p.pid) for p in self.processes)

    async def stop(self) -> None:
        stop_processes(self.processes)
        self.processes = []
        if self.pool is not None:
            await self.pool.aclose()
            self.pool = None


# -- the ocore side: engine.enqueue into ocore workers or the in-process queue --------


def lead_time(count: int) -> float:
    """Time to dispatch ``count`` jobs before they are due (ocore: ~5 ms each, 10 at a time)."""
    return 1.0 + count * 0.01


def check_lead(due: float) -> None:
    if time.time() > due:
        print(f"  warning: dispatching took {time.time() - due:.2f}s past T", flush=True)


class OcoreJobs:
    """ocore's path: a job row, engine.enqueue + commit (dispatch after commit), a runner."""

    def __init__(self, name: str, database: Database, queue: JobQueue, events: EventBus) -> None:
        self.name = name
        self.database = database
        self.queue = queue
        self.events = events

    async def enqueue(self, *, sleep: float = 0) -> uuid.UUID:
        async with self.database.sessionmaker() as session:
            job = await engine.enqueue(
                session,
                self.queue,
                self.database,
                kind=NOOP,
                target_type="diagnostics",
                target_id=None,
                organization_id=None,
                payload={"sleepSeconds": sleep},
            )
            await commit(session)
            return job.id

    def cpu(self) -> float:
        raise NotImplementedError

    async def wait_finished(self, job_id: uuid.UUID) -> Job:
        subscription = self.events.subscribe(job_stream(job_id), "0-0", block_ms=30_000)
        async with contextlib.aclosing(subscription) as stream:
            async for event in stream:
                if event is None:
                    raise RuntimeError(f"job {job_id} gave no news for 30s")
                data = event.data
                if data.get("type") == "status" and data.get("status") in engine.FINISHED:
                    break
        async with self.database.sessionmaker() as session:
            job = await session.get(Job, job_id)
        assert job is not None
        assert job.status == "succeeded", (job.status, job.error)
        return job

    async def warm_up(self, count: int) -> None:
        """Until ``count`` distinct runners (worker ids) have taken jobs."""
        seen: set[str] = set()
        deadline = time.monotonic() + 60
        while len(seen) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(seen)} of {count} ocore workers took jobs")
            ids = [await self.enqueue(sleep=0.2) for _ in range(MAX_JOBS * count + 4)]
            for job_id in ids:
                job = await self.wait_finished(job_id)
                seen.add(job.worker_id or "")
        for _ in range(5):
            await self.wait_finished(await self.enqueue())

    async def latency(self) -> float:
        t0 = time.time()
        job = await self.wait_finished(await self.enqueue())
        assert job.started_at is not None
        return job.started_at.timestamp() - t0

    async def throughput(self, count: int) -> tuple[float, float, float]:
        async with self.database.sessionmaker() as session:
            ids = []
            for _ in range(count):
                job = await engine.enqueue(
                    session,
                    self.queue,
                    self.database,
                    kind=NOOP,
                    target_type="diagnostics",
                    target_id=None,
                    organization_id=None,
                    payload={"sleepSeconds": 0},
                )
                ids.append(job.id)
            # A plain commit: the dispatches below replace the after-commit ones.
            await session.commit()
        due = time.time() + lead_time(count)

        async def dispatch(job_id: uuid.UUID) -> None:
            delay = max(0.001, due - time.time())
            await engine.dispatch_job(self.database, self.queue, job_id, defer_seconds=delay)

        for first in range(0, count, 10):
            await asyncio.gather(*(dispatch(job_id) for job_id in ids[first : first + 10]))
        check_lead(due)
        cpu = self.cpu()
        finished = Job.status.in_(engine.FINISHED)
        while True:
            async with self.database.sessionmaker() as session:
                done = await session.scalar(
                    select(sql_func.count()).where(Job.id.in_(ids), finished)
                )
                if done == count:
                    last = await session.scalar(
                        select(sql_func.max(Job.finished_at)).where(Job.id.in_(ids))
                    )
                    failed = await session.scalar(
                        select(sql_func.count()).where(Job.id.in_(ids), Job.status != "succeeded")
                    )
                    break
            await asyncio.sleep(0.1)
        cpu = self.cpu() - cpu
        if failed:
            print(f"  warning: {failed} of {count} jobs did not succeed", flush=True)
        assert last is not None
        return due, last.timestamp(), cpu


class OcoreWorkers(OcoreJobs):
    def __init__(self, settings: Settings, database: Database) -> None:
        assert settings.redis_url is not None
        super().__init__(
            "ocore worker (arq)",
            database,
            ArqQueue(settings.redis_url, settings.queue_name),
            RedisEventBus(settings.redis_url),
        )
        self.settings = settings
        self.processes: list[subprocess.Popen[bytes]] = []

    async def start(self, count: int) -> None:
        # ocore's own defaults otherwise (log level INFO, lease 60 s, reconcile every 15 s).
        env = ocore_env(self.settings, OCORE_LOG_LEVEL="INFO")
        self.processes = spawn([sys.executable, "-m", "ocore.cli", "worker"], env, count)
        await self.warm_up(count)

    def cpu(self) -> float:
        return sum(cpu_seconds(p.pid) for p in self.processes)

    async def stop(self) -> None:
        stop_processes(self.processes)
        self.processes = []
        await self.queue.close()
        await self.events.close()


class InProcess(OcoreJobs):
    """The embedded default's queue: jobs run as tasks of this very process."""

    def __init__(self, settings: Settings, database: Database) -> None:
        local = settings.model_copy(update={"redis_url": None, "log_level": "INFO"})
        self.system = JobSystem(local, database, SecretBox(local.effective_secret_key))
        super().__init__("in-process (embedded)", database, self.system.queue, self.system.events)
        # Logs as `ocore serve` writes them (INFO, JSON), to /dev/null like the workers'.
        configure_logging(local)
        self._quiet = contextlib.ExitStack()

    async def start(self, count: int) -> None:
        self._quiet.enter_context(contextlib.redirect_stderr(DEVNULL))
        self.system.start()
        await self.warm_up(1)

    def cpu(self) -> float:
        return time.process_time()

    async def stop(self) -> None:
        await self.system.stop()
        self._quiet.close()


# -- measuring -------------------------------------------------------------------------


class Setup(Protocol):
    name: str

    async def start(self, count: int) -> None: ...

    async def stop(self) -> None: ...

    async def latency(self) -> float: ...

    async def throughput(self, count: int) -> tuple[float, float, float]: ...

    def cpu(self) -> float: ...


@dataclass
class Result:
    name: str
    workers: int
    latencies: list[float]
    jobs: int
    seconds: float
    cpu: float

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies, 50) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies, 99) * 1000

    @property
    def per_worker(self) -> float:
        return self.jobs / self.seconds / self.workers

    @property
    def cpu_ms_per_job(self) -> float:
        return self.cpu / self.jobs * 1000


async def measure(setup: Setup, workers: int, samples: int, jobs: int) -> Result:
    print(f"{setup.name}, {workers} worker(s): starting", flush=True)
    await setup.start(workers)
    try:
        latencies = []
        for _ in range(samples):
            await asyncio.sleep(random.uniform(0, 2 * POLL_DELAY))  # noqa: S311 - not crypto
            latencies.append(await setup.latency())
        due, last, cpu = await setup.throughput(jobs)
    finally:
        await setup.stop()
    result = Result(setup.name, workers, latencies, jobs, last - due, cpu)
    print(
        f"  p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, "
        f"{result.per_worker:.0f} jobs/s per worker ({jobs} in {last - due:.2f}s), "
        f"{result.cpu_ms_per_job:.2f} CPU ms per job",
        flush=True,
    )
    return result


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200, help="latency samples per setup")
    parser.add_argument("--jobs", type=int, default=1000, help="jobs per throughput run")
    parser.add_argument("--workers", default="1,2", help="worker process counts")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]

    print(f"machine: {machine()}", flush=True)
    results: list[Result] = []
    with private_redis() as redis, tempfile.TemporaryDirectory(prefix="ocore-bench-") as data:
        async with ocore_database() as url:
            settings = bench_settings(url, redis.url, Path(data))
            database = Database(url)
            try:
                for n in counts:
                    for setup in (RawArq(redis.url), OcoreWorkers(settings, database)):
                        results.append(await measure(setup, n, args.samples, args.jobs))
                local = InProcess(settings, database)
                results.append(await measure(local, 1, args.samples, args.jobs))
            finally:
                await database.dispose()

    reference = {r.workers: r for r in results if r.name == RawArq.name}
    print(
        f"\n{args.samples} latency samples, {args.jobs} jobs per throughput run, "
        f"poll_delay {POLL_DELAY}s, max_jobs {MAX_JOBS}; x = against raw arq, same N\n"
    )
    header = (
        f"{'setup':<22} {'N':>2} {'p50 ms':>7} {'x':>6} {'p99 ms':>7} {'x':>6} "
        f"{'jobs/s/worker':>14} {'x':>6} {'CPU ms/job':>11}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        ref = reference.get(r.workers)
        vs = ["", "", ""]
        if ref is not None and r is not ref:
            vs = [
                f"{r.p50_ms / ref.p50_ms:.2f}",
                f"{r.p99_ms / ref.p99_ms:.2f}",
                f"{r.per_worker / ref.per_worker:.2f}",
            ]
        print(
            f"{r.name:<22} {r.workers:>2} {r.p50_ms:>7.1f} {vs[0]:>6} {r.p99_ms:>7.1f} "
            f"{vs[1]:>6} {r.per_worker:>14.0f} {vs[2]:>6} {r.cpu_ms_per_job:>11.2f}"
        )
    for r in results:
        if r.name == RawArq.name:
            continue
        ref = reference.get(r.workers)  # the in-process queue counts as N = 1
        setup = f"jobs: {r.name}, {r.workers} worker(s)"
        report(f"{setup}, enqueue → running p50", r.p50_ms, ref and ref.p50_ms, "ms", "raw arq")
        report(f"{setup}, enqueue → running p99", r.p99_ms, ref and ref.p99_ms, "ms", "raw arq")
        report(f"{setup}, no-op jobs/s per worker", r.per_worker, ref and ref.per_worker, "")
    print(
        "\nCPU ms/job: CPU time of the worker processes (in-process: of this process) "
        "from the end of the dispatching to the last job done, per job"
    )
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--raw-worker":
        run_raw_worker(sys.argv[2], sys.argv[3])
    else:
        sys.exit(asyncio.run(main()))
