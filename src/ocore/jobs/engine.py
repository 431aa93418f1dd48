"""The job engine: the job row is the truth, the queue only says "look at job X".

Lifecycle: queued → running → succeeded | failed | cancelled. A runner claims a
job with one conditional UPDATE (so two dispatches of the same job run it once),
renews its lease while it works, and records the outcome only if it still holds
the lease. A job whose lease lapses (its worker died) is requeued by the
reconciler; every job kind is written to be run again from the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ocore.core import metrics
from ocore.core.crypto import SecretBox
from ocore.core.db import Database, utcnow
from ocore.core.errors import Conflict, HostUnreachable, ServiceUnavailable
from ocore.core.events import EventBus
from ocore.core.uow import after_commit
from ocore.hosts import SSHPool
from ocore.jobs import registry
from ocore.jobs.context import JobContext, job_stream
from ocore.jobs.models import Job
from ocore.jobs.observe import observed_run
from ocore.jobs.queue import JobQueue
from ocore.settings import Settings

log = structlog.get_logger("ocore.jobs")

ACTIVE = ("queued", "running")
FINISHED = ("succeeded", "failed", "cancelled")
# Errors worth another attempt: the host or a service may be back in a moment.
RETRYABLE = (HostUnreachable, ServiceUnavailable, ConnectionError, TimeoutError)


async def enqueue(
    session: AsyncSession,
    queue: JobQueue,
    database: Database,
    *,
    kind: str,
    target_type: str,
    target_id: uuid.UUID | None,
    organization_id: uuid.UUID | None,
    payload: dict[str, Any] | None = None,
    lock_key: str | None = None,
    max_attempts: int = 3,
) -> Job:
    """Add a job to the caller's transaction; it is dispatched only once that commits.

    ``lock_key`` (e.g. ``instance:<id>``) admits one unfinished job per resource:
    a second one is a Conflict, checked by a unique index, so concurrent
    requests cannot both pass.
    """
    if registry.get(kind) is None:
        raise ValueError(f"unknown job kind '{kind}'")
    job = Job(
        id=uuid.uuid4(),
        organization_id=organization_id,
        kind=kind,
        target_type=target_type,
        target_id=target_id,
        lock_key=lock_key,
        payload=payload or {},
        max_attempts=max_attempts,
    )
    try:
        async with session.begin_nested():
            session.add(job)
    except IntegrityError:
        raise Conflict(
            f"Another operation is already queued or running on this {target_type}; "
            "wait for it to finish or cancel it."
        ) from None
    job_id = job.id

    async def dispatch() -> None:
        await dispatch_job(database, queue, job_id)

    after_commit(session, dispatch)
    return job


async def dispatch_job(
    database: Database, queue: JobQueue, job_id: uuid.UUID, *, defer_seconds: float = 0
) -> bool:
    """Hand a committed job to the queue; on failure the reconciler tries again later."""
    try:
        await queue.dispatch(job_id, defer_seconds=defer_seconds)
    except Exception as exc:
        log.warning("job_dispatch_failed", job_id=str(job_id), error=type(exc).__name__)
        return False
    async with database.sessionmaker() as session:
        await session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == "queued")
            .values(dispatched_at=utcnow())
        )
        await session.commit()
    return True


def job_context(
    job: Job,
    database: Database,
    events: EventBus,
    settings: Settings,
    secret_box: SecretBox,
    ssh_pool: SSHPool,
) -> JobContext:
    return JobContext(
        job_id=job.id,
        kind=job.kind,
        organization_id=job.organization_id,
        target_type=job.target_type,
        target_id=job.target_id,
        payload=dict(job.payload),
        attempt=job.attempt,
        database=database,
        events=events,
        settings=settings,
        secret_box=secret_box,
        ssh_pool=ssh_pool,
    )


class JobRunner:
    """Runs jobs by id; one per worker process (or per API process when embedded)."""

    def __init__(
        self,
        database: Database,
        queue: JobQueue,
        events: EventBus,
        settings: Settings,
        secret_box: SecretBox,
        ssh_pool: SSHPool,
        worker_id: str,
    ) -> None:
        self.database = database
        self.queue = queue
        self.events = events
        self.settings = settings
        self.secret_box = secret_box
        self.ssh_pool = ssh_pool
        self.worker_id = worker_id

    async def run(self, job_id: uuid.UUID) -> None:
        job = await self._claim(job_id)
        if job is None:
            return
        kind = registry.get(job.kind)
        context = job_context(
            job, self.database, self.events, self.settings, self.secret_box, self.ssh_pool
        )
        bound = log.bind(job_id=str(job.id), kind=job.kind, attempt=job.attempt)
        if kind is None:
            await self._finish(context, "failed", f"Unknown job kind '{job.kind}'.", final=True)
            return
        await context.publish({"type": "status", "status": "running", "attempt": job.attempt})
        bound.info("job_started")
        work = asyncio.create_task(observed_run(kind, context))
        lease = asyncio.create_task(self._keep_lease(job.id, work))
        try:
            await work
        except asyncio.CancelledError:
            if lease.done() and lease.result() == "cancel_requested":
                await self._finish(context, "cancelled", "Cancelled on request.", final=True)
                bound.info("job_cancelled")
            elif lease.done():
                bound.warning("job_lease_lost")
            else:
                raise  # this worker is shutting down: the lease lapses and the job is retried
        except Exception as exc:
            message = _describe(exc)
            retry = isinstance(exc, RETRYABLE) and job.attempt < job.max_attempts
            bound.warning("job_failed", error=message, retry=retry)
            if retry:
                await self._requeue(context, message)
            else:
                await self._finish(context, "failed", message, final=True)
                if kind.on_failure is not None:
                    await kind.on_failure(context, message)
        else:
            await self._finish(context, "succeeded", None, final=True)
            bound.info("job_succeeded")
        finally:
            lease.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lease

    async def _claim(self, job_id: uuid.UUID) -> Job | None:
        now = utcnow()
        lease_until = now + timedelta(seconds=self.settings.job_lease_seconds)
        async with self.database.sessionmaker() as session:
            claimed = (
                await session.execute(
                    update(Job)
                    .where(
                        Job.id == job_id,
                        Job.cancel_requested.is_(False),
                        Job.attempt < Job.max_attempts,
                        or_(
                            Job.status == "queued",
                            (Job.status == "running") & (Job.lease_expires_at < now),
                        ),
                    )
                    .values(
                        status="running",
                        attempt=Job.attempt + 1,
                        worker_id=self.worker_id,
                        lease_expires_at=lease_until,
                        started_at=now,
                        error=None,
                    )
                    .returning(Job)
                )
            ).scalar_one_or_none()
            await session.commit()
        return claimed

    async def _keep_lease(self, job_id: uuid.UUID, work: asyncio.Task[None]) -> str:
        """Renew the lease until the work ends; cancel the work if the lease is lost."""
        interval = self.settings.job_lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            async with self.database.sessionmaker() as session:
                row = (
                    await session.execute(
                        update(Job)
                        .where(
                            Job.id == job_id,
                            Job.worker_id == self.worker_id,
                            Job.status == "running",
                        )
                        .values(
                            lease_expires_at=utcnow()
                            + timedelta(seconds=self.settings.job_lease_seconds)
                        )
                        .returning(Job.cancel_requested)
                    )
                ).first()
                await session.commit()
            if row is None or row[0]:
                work.cancel()
                return "lost" if row is None else "cancel_requested"

    async def _finish(
        self, context: JobContext, status: str, error: str | None, *, final: bool
    ) -> None:
        async with self.database.sessionmaker() as session:
            await session.execute(
                update(Job)
                .where(Job.id == context.job_id, Job.worker_id == self.worker_id)
                .values(status=status, error=error, finished_at=utcnow(), lease_expires_at=None)
            )
            await session.commit()
        metrics.record_job_finished(context.kind, status)
        await context.publish({"type": "status", "status": status, "error": error})

    async def _requeue(self, context: JobContext, error: str) -> None:
        delay = min(2**context.attempt, 60)
        async with self.database.sessionmaker() as session:
            await session.execute(
                update(Job)
                .where(Job.id == context.job_id, Job.worker_id == self.worker_id)
                .values(
                    status="queued",
                    error=error,
                    worker_id=None,
                    lease_expires_at=None,
                    dispatched_at=None,
                )
            )
            await session.commit()
        await context.publish({"type": "status", "status": "queued", "error": error})
        await dispatch_job(self.database, self.queue, context.job_id, defer_seconds=delay)


def _describe(exc: BaseException) -> str:
    detail = getattr(exc, "detail", None)
    return str(detail or exc or type(exc).__name__)


async def request_cancel(session: AsyncSession, job: Job) -> Job:
    """Cancel a queued job now; ask a running one to stop (its runner sees it at the next beat)."""
    if job.status in FINISHED:
        raise Conflict(f"The job has already {job.status}.")
    if job.status == "queued":
        job.status = "cancelled"
        job.finished_at = utcnow()
        job.error = "Cancelled on request."
    job.cancel_requested = True
    await session.flush()
    return job


async def reconcile(
    database: Database,
    queue: JobQueue,
    events: EventBus,
    settings: Settings,
    ssh_pool: SSHPool,
) -> dict[str, int]:
    """Repair what crashes leave behind: lapsed leases, undispatched jobs."""
    now = utcnow()
    requeued = failed = dispatched = 0
    async with database.sessionmaker() as session:
        lapsed = (
            await session.scalars(
                select(Job).where(Job.status == "running", Job.lease_expires_at < now)
            )
        ).all()
        for job in lapsed:
            out_of_attempts = job.attempt >= job.max_attempts
            result = await session.execute(
                update(Job)
                .where(Job.id == job.id, Job.status == "running", Job.lease_expires_at < now)
                .values(
                    status="failed" if out_of_attempts else "queued",
                    error=(
                        f"The worker running this job stopped responding ({job.attempt} attempts)."
                        if out_of_attempts
                        else "The worker running this job stopped responding; retrying."
                    ),
                    worker_id=None,
                    lease_expires_at=None,
                    dispatched_at=None,
                    finished_at=now if out_of_attempts else None,
                )
            )
            if result.rowcount:  # type: ignore[attr-defined]
                failed += out_of_attempts
                requeued += not out_of_attempts
        await session.commit()
        for job in lapsed:
            if job.attempt >= job.max_attempts:
                await _run_failure_hook(job, database, events, settings, ssh_pool)
        stale = now - timedelta(seconds=settings.job_redispatch_seconds)
        waiting = (
            await session.scalars(
                select(Job.id).where(
                    Job.status == "queued",
                    or_(Job.dispatched_at.is_(None), Job.dispatched_at < stale),
                )
            )
        ).all()
    for job_id in waiting:
        dispatched += await dispatch_job(database, queue, job_id)
    orphans = await repair_orphans(database, settings)
    if requeued or failed or dispatched or orphans:
        log.info(
            "jobs_reconciled",
            requeued=requeued,
            failed=failed,
            dispatched=dispatched,
            orphans=orphans,
        )
    return {"requeued": requeued, "failed": failed, "dispatched": dispatched, "orphans": orphans}


async def repair_orphans(database: Database, settings: Settings) -> int:
    """Resources in a transitional status with no unfinished job: their job was lost."""
    grace = utcnow() - timedelta(seconds=settings.job_redispatch_seconds)
    repaired = 0
    async with database.sessionmaker() as session:
        for check in registry.orphan_checks():
            model = check.model
            active = select(Job.id).where(Job.target_id == model.id, Job.status.in_(ACTIVE))
            result = await session.execute(
                update(model)
                .where(
                    model.status.in_(check.statuses),
                    model.updated_at < grace,
                    ~active.exists(),
                )
                .values(**check.values)
            )
            repaired += result.rowcount  # type: ignore[attr-defined]
        await session.commit()
    return repaired


async def _run_failure_hook(
    job: Job, database: Database, events: EventBus, settings: Settings, ssh_pool: SSHPool
) -> None:
    kind = registry.get(job.kind)
    if kind is None or kind.on_failure is None:
        return
    context = job_context(
        job, database, events, settings, SecretBox(settings.effective_secret_key), ssh_pool
    )
    await events.publish(job_stream(job.id), {"type": "status", "status": "failed"})
    await kind.on_failure(context, "The worker running this job stopped responding.")
