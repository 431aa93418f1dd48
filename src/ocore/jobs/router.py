from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, status
from sse_starlette import EventSourceResponse, ServerSentEvent

from ocore.core.auth import ROLE_PERMISSIONS, CurrentPrincipal, Permission
from ocore.core.deps import JobSystemDep
from ocore.core.errors import Forbidden, InvalidInput
from ocore.core.events import Event, parse_event_id
from ocore.core.metrics import counts_subscribers
from ocore.core.pagination import Pagination
from ocore.core.problems import PROBLEM_RESPONSES
from ocore.core.uow import SessionDep
from ocore.jobs import engine
from ocore.jobs.context import job_stream
from ocore.jobs.models import Job
from ocore.jobs.repository import JobRepository
from ocore.jobs.schemas import JobDetail, JobList, JobOut, job_detail

router = APIRouter(prefix="/jobs", tags=["jobs"], responses=PROBLEM_RESPONSES)

# Cancelling a job needs the permission that starting it needed.
_CANCEL_PERMISSION = {
    "instance": Permission.MANAGE_INSTANCES,
    "environment": Permission.MANAGE_ENVIRONMENTS,
    "deployment": Permission.DEPLOY,
}


async def load_job(job_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep) -> Job:
    return await JobRepository(session).get(principal.organization_id, job_id)


JobDep = Annotated[Job, Depends(load_job)]


@router.get("", response_model=JobList, summary="List jobs")
async def list_jobs(
    principal: CurrentPrincipal,
    session: SessionDep,
    page: Pagination,
    target_id: Annotated[uuid.UUID | None, Query(alias="targetId")] = None,
    job_status: Annotated[str | None, Query(alias="status", pattern=r"^[a-z]{1,20}$")] = None,
) -> JobList:
    repository = JobRepository(session)
    statement = repository.scoped(principal.organization_id)
    if target_id is not None:
        statement = statement.where(Job.target_id == target_id)
    if job_status is not None:
        statement = statement.where(Job.status == job_status)
    rows, total = await repository.list_page(
        statement.order_by(Job.created_at.desc(), Job.id), page
    )
    return JobList(
        jobs=[JobOut.model_validate(r) for r in rows],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.get("/{job_id}", response_model=JobDetail, summary="Get a job with its steps")
async def get_job(job: JobDep, session: SessionDep) -> JobDetail:
    return job_detail(job, await JobRepository(session).steps(job.id))


@router.post(
    "/{job_id}/cancel",
    response_model=JobOut,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Cancel a queued or running job",
)
async def cancel_job(job: JobDep, principal: CurrentPrincipal, session: SessionDep) -> JobOut:
    needed = _CANCEL_PERMISSION.get(job.target_type, Permission.ADMIN)
    if needed not in ROLE_PERMISSIONS[principal.role]:
        raise Forbidden(f"Cancelling this job needs the '{needed.value}' permission.")
    return JobOut.model_validate(await engine.request_cancel(session, job))


def encode_job_events(events: list[Event]) -> tuple[bytes, bool]:
    """SSE text of a batch of a job's events, up to its final status; and whether it had it."""
    chunk: list[bytes] = []
    for event in events:
        data: dict[str, Any] = event.data
        chunk.append(
            ServerSentEvent(data=json.dumps(data), event=data.get("type"), id=event.id).encode()
        )
        if data.get("type") == "status" and data.get("status") in engine.FINISHED:
            return b"".join(chunk), True
    return b"".join(chunk), False


@router.get(
    "/{job_id}/events",
    summary="Stream a job's steps, output and status (SSE, resumable with Last-Event-ID)",
    response_class=EventSourceResponse,
)
async def job_events(
    job: JobDep,
    jobs: JobSystemDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> EventSourceResponse:
    after = last_event_id or "0-0"
    try:
        parse_event_id(after)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    finished = job.status in engine.FINISHED

    @counts_subscribers("job_events")
    async def stream() -> AsyncIterator[bytes]:
        async for batches in jobs.fanout.subscribe(job_stream(job.id), after, idle_seconds=5):
            if batches is None:
                if finished:
                    return
                continue
            chunk: list[bytes] = []
            for batch in batches:
                encoded, done = batch.encoded("job-sse", encode_job_events)
                chunk.append(encoded)
                if done:
                    yield b"".join(chunk)
                    return
            yield b"".join(chunk)

    return EventSourceResponse(stream(), ping=15)
