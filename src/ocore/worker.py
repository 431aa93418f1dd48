"""``ocore worker``: an arq worker that runs jobs by id, and the reconciler as a cron job."""

from __future__ import annotations

import uuid
from typing import Any

from arq import cron, func
from arq.worker import Worker

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
    return Worker(
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
