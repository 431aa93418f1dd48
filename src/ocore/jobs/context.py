"""What a running job sees: its row's facts, sessions, and steps that record their output."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ocore.core.crypto import SecretBox
from ocore.core.db import Database, utcnow
from ocore.core.events import EventBus
from ocore.hosts import SSHPool
from ocore.jobs.models import JobStep
from ocore.settings import Settings

# Output is written to the step row in batches: one UPDATE per this many seconds.
FLUSH_INTERVAL = 0.5
# A step's stored output keeps its tail beyond this size; the event stream had it all.
MAX_STEP_OUTPUT = 4 * 1024 * 1024


def job_stream(job_id: uuid.UUID) -> str:
    return f"job:{job_id}"


@dataclass
class JobContext:
    job_id: uuid.UUID
    kind: str
    organization_id: uuid.UUID | None
    target_type: str
    target_id: uuid.UUID | None
    payload: dict[str, Any]
    attempt: int
    database: Database
    events: EventBus
    settings: Settings
    secret_box: SecretBox
    ssh_pool: SSHPool
    _sort_order: int = field(default=0, init=False)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session whose work is committed when the block ends without error."""
        async with self.database.sessionmaker() as session:
            yield session
            await session.commit()

    async def publish(self, data: dict[str, Any]) -> None:
        await self.events.publish(job_stream(self.job_id), data)

    @asynccontextmanager
    async def step(self, name: str) -> AsyncIterator[Step]:
        """Record a step: running, then succeeded or failed, with its output and duration."""
        async with self.session() as session:
            if self._sort_order == 0:
                self._sort_order = int(
                    await session.scalar(select(func.count()).where(JobStep.job_id == self.job_id))
                    or 0
                )
            self._sort_order += 1
            row = JobStep(
                job_id=self.job_id,
                name=name,
                status="running",
                sort_order=self._sort_order,
                started_at=utcnow(),
            )
            session.add(row)
        step = Step(self, row.id, name)
        await self.publish({"type": "step", "step": name, "status": "running"})
        started = time.perf_counter()
        status = "failed"
        try:
            yield step
            status = "succeeded"
        finally:
            await step.flush()
            duration_ms = int((time.perf_counter() - started) * 1000)
            async with self.session() as session:
                await session.execute(
                    update(JobStep)
                    .where(JobStep.id == row.id)
                    .values(status=status, completed_at=utcnow(), duration_ms=duration_ms)
                )
            await self.publish(
                {"type": "step", "step": name, "status": status, "durationMs": duration_ms}
            )


class Step:
    def __init__(self, context: JobContext, step_id: uuid.UUID, name: str) -> None:
        self._context = context
        self._step_id = step_id
        self.name = name
        self._pending: list[str] = []
        self._last_flush = time.monotonic()
        self._size = 0

    async def log(self, line: str) -> None:
        self._pending.append(line.rstrip("\n"))
        if time.monotonic() - self._last_flush >= FLUSH_INTERVAL:
            await self.flush()

    async def flush(self) -> None:
        if not self._pending:
            return
        lines, self._pending = self._pending, []
        self._last_flush = time.monotonic()
        chunk = "".join(f"{line}\n" for line in lines)
        await self._context.publish({"type": "log", "step": self.name, "lines": lines})
        self._size += len(chunk)
        async with self._context.session() as session:
            await append_output(
                session, JobStep, self._step_id, chunk, self._size > MAX_STEP_OUTPUT
            )


async def append_output(
    session: AsyncSession, model: Any, row_id: uuid.UUID, chunk: str, over_limit: bool
) -> None:
    """Append to a step row's ``output``; past the limit only its tail is kept."""
    if over_limit:
        stored = await session.scalar(select(model.output).where(model.id == row_id))
        values: dict[str, Any] = {"output": ((stored or "") + chunk)[-MAX_STEP_OUTPUT:]}
    else:
        values = {"output": model.output + chunk}
    await session.execute(update(model).where(model.id == row_id).values(values))
