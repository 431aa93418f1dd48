"""``ocore worker``: an arq worker that runs jobs by id, and the reconciler as a cron job."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import structlog
from arq import cron, func
from arq.worker import Worker
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ocore.core.crypto import SecretBox
from ocore.core.db import Database
from ocore.core.events import RedisEventBus
from ocore.core.logging import configure_logging
from ocore.core.metrics import serve_metrics
from ocore.core.tracing import start_tracing
from ocore.instances.probe import probe_instances as probe_running_instances
from ocore.jobs.engine import JobRunner, reconcile
from ocore.jobs.queue import RUN_JOB, ArqQueue, redis_settings
from ocore.jobs.registry import load_job_kinds
from ocore.jobs.runtime import worker_id
from ocore.servers.hosts import create_ssh_pool
from ocore.settings import Settings

# Our own leases detect dead workers; arq's timeout only stops runaway jobs.
ARQ_JOB_TIMEOUT_SECONDS = 24 * 3600
# How often a worker that lost Redis tries it again.
REDIS_RETRY_SECONDS = 1.0
_REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError)

log = structlog.get_logger("ocore.worker")


class JobWorker(Worker):
    """arq's worker, kept running while Redis is away.

    arq lets a Redis error out of its poll loop and the process exits, taking
    along the jobs it runs, which need only PostgreSQL and the hosts. Here a
    poll that cannot reach Redis is tried again a moment later: jobs enqueued
    meanwhile wait in their table, and the reconciler dispatches them once
    Redis is back.
    """

    _redis_lost_at: float | None = None

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except _REDIS_DOWN as exc:
            if self._redis_lost_at is None:
                self._redis_lost_at = time.monotonic()
                log.warning("queue_unreachable", error=str(exc) or type(exc).__name__)
            await asyncio.sleep(REDIS_RETRY_SECONDS)
            return
        if self._redis_lost_at is not None:
            down = time.monotonic() - self._redis_lost_at
            log.info("queue_reachable_again", after_seconds=round(down, 1))
            self._redis_lost_at = None

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        try:
            await super().start_jobs(job_ids)
        except _REDIS_DOWN:
            # arq took a slot for the job it was starting and gives it back only
            # when that job ends: a few outages would leave the worker no slots.
            self.job_counter -= 1
            self.sem.release()
            raise


async def _startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx["settings"]
    assert settings.redis_url is not None
    database = Database(settings.effective_database_url)
    queue = ArqQueue(settings.redis_url, settings.queue_name)
    events = RedisEventBus(settings.redis_url)
    ssh_pool = create_ssh_pool(database)
    ctx.update(database=database, queue=queue, events=events, ssh_pool=ssh_pool)
    ctx["runner"] = JobRunner(
        database,
        queue,
        events,
        settings,
        SecretBox(settings.effective_secret_key),
        ssh_pool,
        worker_id(),
    )
    ctx["traces"] = start_tracing(settings)
    port = settings.worker_metrics_port
    if settings.metrics_enabled and port is not None:
        ctx["stop_metrics"] = serve_metrics(
            settings.worker_metrics_host, port, settings.metrics_token
        )


async def _shutdown(ctx: dict[str, Any]) -> None:
    if "stop_metrics" in ctx:
        ctx["stop_metrics"]()
    await ctx["queue"].close()
    await ctx["events"].close()
    await ctx["ssh_pool"].close_all()
    await ctx["database"].dispose()
    if ctx.get("traces") is not None:
        ctx["traces"].shutdown()


async def run_job(ctx: dict[str, Any], job_id: str) -> None:
    await ctx["runner"].run(uuid.UUID(job_id))


async def probe_instances(ctx: dict[str, Any]) -> None:
    await probe_running_instances(ctx["database"], ctx["runner"].secret_box, ctx["ssh_pool"])


async def reconcile_jobs(ctx: dict[str, Any]) -> None:
    await reconcile(ctx["database"], ctx["queue"], ctx["events"], ctx["settings"], ctx["ssh_pool"])


def create_worker(settings: Settings, *, burst: bool = False) -> Worker:
    if not settings.redis_url:
        raise ValueError(
            "ocore worker needs OCORE_REDIS_URL; the embedded default runs jobs in 'ocore serve'"
        )
    configure_logging(settings)
    load_job_kinds()
    step = max(1, min(59, int(settings.reconcile_interval_seconds)))
    return JobWorker(
        functions=[func(run_job, name=RUN_JOB, max_tries=1)],
        cron_jobs=[
            cron(
                reconcile_jobs,
                name="reconcile_jobs",
                second=set(range(0, 60, step)),
                run_at_startup=True,
                unique=True,
            ),
            cron(probe_instances, name="probe_instances", second={0}, unique=True),
        ],
        queue_name=settings.queue_name,
        redis_settings=redis_settings(settings.redis_url),
        on_startup=_startup,
        on_shutdown=_shutdown,
        ctx={"settings": settings},
        max_jobs=settings.worker_concurrency,
        job_timeout=ARQ_JOB_TIMEOUT_SECONDS,
        keep_result=0,
        poll_delay=0.05,
        burst=burst,
    )
