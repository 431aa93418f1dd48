"""Dispatch: arq on Redis in production, asyncio tasks in the embedded default.

A dispatch only says "run job X"; the runner's claim makes a duplicate harmless.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Protocol

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings

RUN_JOB = "run_job"


class JobQueue(Protocol):
    async def dispatch(self, job_id: uuid.UUID, *, defer_seconds: float = 0) -> None: ...

    async def close(self) -> None: ...


class ArqQueue:
    def __init__(self, redis_url: str, queue_name: str) -> None:
        self._settings = redis_settings(redis_url)
        self._queue_name = queue_name
        self._pool: ArqRedis | None = None
        self._lock = asyncio.Lock()

    async def _connect(self) -> ArqRedis:
        async with self._lock:
            if self._pool is None:
                self._pool = await create_pool(self._settings, default_queue_name=self._queue_name)
            return self._pool

    async def dispatch(self, job_id: uuid.UUID, *, defer_seconds: float = 0) -> None:
        pool = await self._connect()
        await pool.enqueue_job(
            RUN_JOB,
            str(job_id),
            # Unique per dispatch: arq must not swallow a re-dispatch of the same job.
            _job_id=f"{job_id}:{uuid.uuid4().hex[:12]}",
            _defer_by=defer_seconds or None,
        )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None


def redis_settings(url: str) -> RedisSettings:
    settings = RedisSettings.from_dsn(url)
    # Fail fast when Redis is down: the job stays in the table and is dispatched later.
    settings.conn_timeout = 2
    settings.conn_retries = 0
    return settings


class InProcessQueue:
    """Runs jobs as tasks of this process, at most ``concurrency`` at a time."""

    def __init__(self, concurrency: int) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._run: Callable[[uuid.UUID], Awaitable[None]] | None = None

    def bind(self, run: Callable[[uuid.UUID], Awaitable[None]]) -> None:
        self._run = run

    async def dispatch(self, job_id: uuid.UUID, *, defer_seconds: float = 0) -> None:
        if self._run is None:
            raise RuntimeError("the in-process queue has no runner bound")
        task = asyncio.create_task(self._execute(self._run, job_id, defer_seconds))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _execute(
        self, run: Callable[[uuid.UUID], Awaitable[None]], job_id: uuid.UUID, delay: float
    ) -> None:
        if delay:
            await asyncio.sleep(delay)
        async with self._slots:
            await run(job_id)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
