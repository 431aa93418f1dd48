"""The job system of one process: queue, event bus, and (embedded) runner and reconciler."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket

import structlog

from ocore.core.crypto import SecretBox
from ocore.core.db import Database
from ocore.core.events import EventBus, create_event_bus
from ocore.core.fanout import Fanout
from ocore.jobs.engine import JobRunner, reconcile
from ocore.jobs.queue import ArqQueue, InProcessQueue, JobQueue
from ocore.servers.hosts import create_ssh_pool
from ocore.settings import Settings

log = structlog.get_logger("ocore.jobs")


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class JobSystem:
    def __init__(self, settings: Settings, database: Database, secret_box: SecretBox) -> None:
        self.settings = settings
        self.database = database
        self.events: EventBus = create_event_bus(settings.redis_url)
        # What SSE endpoints follow: one bus reader per stream, whatever the audience.
        self.fanout = Fanout(self.events)
        self.queue: JobQueue
        self.runner: JobRunner | None = None
        self.ssh_pool = create_ssh_pool(database)
        self.secret_box = secret_box
        self._reconciler: asyncio.Task[None] | None = None
        self._prober: asyncio.Task[None] | None = None
        if settings.redis_url:
            self.queue = ArqQueue(settings.redis_url, settings.queue_name)
        else:
            # Embedded default: this process runs the jobs it enqueues.
            local = InProcessQueue(settings.worker_concurrency)
            self.queue = local
            self.runner = JobRunner(
                database, local, self.events, settings, secret_box, self.ssh_pool, worker_id()
            )
            local.bind(self.runner.run)

    def start(self) -> None:
        if self.runner is not None and self._reconciler is None:
            self._reconciler = asyncio.create_task(self._reconcile_forever())
            self._prober = asyncio.create_task(self._probe_forever())

    async def _probe_forever(self) -> None:
        from ocore.instances.probe import probe_instances

        while True:
            await asyncio.sleep(self.settings.health_check_interval_seconds)
            try:
                await probe_instances(self.database, self.secret_box, self.ssh_pool)
            except Exception:
                log.exception("probe_failed")

    async def _reconcile_forever(self) -> None:
        while True:
            try:
                await reconcile(
                    self.database, self.queue, self.events, self.settings, self.ssh_pool
                )
            except Exception:
                log.exception("reconcile_failed")
            await asyncio.sleep(self.settings.reconcile_interval_seconds)

    async def stop(self) -> None:
        for task in (self._reconciler, self._prober):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._reconciler = self._prober = None
        await self.queue.close()
        await self.events.close()
        await self.ssh_pool.close_all()
