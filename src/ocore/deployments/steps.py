"""A deployment's steps as rows and as events: what the API shows and what SSE streams."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import select, update

from ocore.core.db import Database, utcnow
from ocore.core.events import EventBus
from ocore.deployments.models import DeploymentStep
from ocore.jobs.context import MAX_STEP_OUTPUT, append_output

FLUSH_INTERVAL = 0.25


def deployment_stream(deployment_id: uuid.UUID) -> str:
    return f"deployment:{deployment_id}"


def step_event(step: DeploymentStep) -> dict[str, Any]:
    return {
        "id": str(step.id),
        "name": step.name,
        "status": step.status,
        "sortOrder": step.sort_order,
        "version": step.version,
        "startedAt": step.started_at.isoformat() if step.started_at else None,
        "completedAt": step.completed_at.isoformat() if step.completed_at else None,
        "durationMs": step.duration_ms,
    }


class StepFailed(Exception):
    """A step ended the deployment; the message is what the user reads."""


class DeploymentRecorder:
    """Writes steps of one deployment and publishes every change and line on its stream."""

    def __init__(self, database: Database, events: EventBus, deployment_id: uuid.UUID) -> None:
        self.database = database
        self.events = events
        self.deployment_id = deployment_id
        self.stream = deployment_stream(deployment_id)
        self._order = 0

    async def reset(self) -> None:
        """A retried build starts its steps afresh (the stream keeps the old attempt's events)."""
        async with self.database.sessionmaker() as session:
            rows = (
                await session.scalars(
                    select(DeploymentStep).where(DeploymentStep.deployment_id == self.deployment_id)
                )
            ).all()
            for row in rows:
                await session.delete(row)
            await session.commit()

    @asynccontextmanager
    async def step(self, name: str) -> AsyncIterator[StepLog]:
        self._order += 1
        async with self.database.sessionmaker() as session:
            row = DeploymentStep(
                deployment_id=self.deployment_id,
                name=name,
                status="running",
                sort_order=self._order,
                version=1,
                started_at=utcnow(),
            )
            session.add(row)
            await session.commit()
        await self.events.publish(self.stream, {"type": "step", "step": step_event(row)})
        log = StepLog(self, row.id, name)
        started = time.perf_counter()
        status = "failed"
        try:
            yield log
            status = "succeeded"
        finally:
            await log.flush()
            async with self.database.sessionmaker() as session:
                row = (
                    await session.execute(
                        update(DeploymentStep)
                        .where(DeploymentStep.id == row.id)
                        .values(
                            status=status,
                            completed_at=utcnow(),
                            duration_ms=int((time.perf_counter() - started) * 1000),
                            version=DeploymentStep.version + 1,
                        )
                        .returning(DeploymentStep)
                    )
                ).scalar_one()
                await session.commit()
            await self.events.publish(self.stream, {"type": "step", "step": step_event(row)})

    async def complete(self, data: dict[str, Any]) -> None:
        await self.events.publish(self.stream, {"type": "complete", **data})


class StepLog:
    def __init__(self, recorder: DeploymentRecorder, step_id: uuid.UUID, name: str) -> None:
        self._recorder = recorder
        self._step_id = step_id
        self.name = name
        self._pending: list[str] = []
        self._last_flush = time.monotonic()
        self._size = 0
        self.lines: list[str] = []

    async def log(self, line: str) -> None:
        line = line.rstrip("\n")
        self._pending.append(line)
        self.lines.append(line)
        if time.monotonic() - self._last_flush >= FLUSH_INTERVAL:
            await self.flush()

    async def flush(self) -> None:
        if not self._pending:
            return
        lines, self._pending = self._pending, []
        self._last_flush = time.monotonic()
        await self._recorder.events.publish_many(
            self._recorder.stream,
            [{"type": "log", "step": self.name, "line": line} for line in lines],
        )
        chunk = "".join(f"{line}\n" for line in lines)
        self._size += len(chunk)
        async with self._recorder.database.sessionmaker() as session:
            await append_output(
                session, DeploymentStep, self._step_id, chunk, self._size > MAX_STEP_OUTPUT
            )
            await session.commit()
