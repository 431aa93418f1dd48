from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, status
from fastapi.responses import PlainTextResponse
from sqlalchemy import Select
from sse_starlette import EventSourceResponse, ServerSentEvent

from ocore.core.auth import Admin, CurrentPrincipal, Deploy
from ocore.core.deps import JobSystemDep, SecretBoxDep, SettingsDep
from ocore.core.errors import InvalidInput, NotFound
from ocore.core.events import Event, parse_event_id
from ocore.core.metrics import counts_subscribers
from ocore.core.pagination import PageParams, Pagination
from ocore.core.problems import PROBLEM_RESPONSES
from ocore.core.uow import SessionDep
from ocore.deployments import service, views, waivers
from ocore.deployments.models import Deployment
from ocore.deployments.repository import DeploymentRepository
from ocore.deployments.schemas import (
    DeploymentList,
    DeploymentOut,
    DeployRequest,
    LogSummaryOut,
    RollbackRequest,
    WaiverRequest,
)
from ocore.deployments.steps import deployment_stream, step_event
from ocore.environments.router import EnvironmentDep
from ocore.projects.router import ProjectDep

router = APIRouter(
    prefix="/projects/{project_id}", tags=["deployments"], responses=PROBLEM_RESPONSES
)
environment_router = APIRouter(
    prefix="/environments/{id}", tags=["deployments"], responses=PROBLEM_RESPONSES
)
FINISHED = ("succeeded", "failed", "cancelled")


async def load_deployment(
    deployment_id: uuid.UUID, project: ProjectDep, principal: CurrentPrincipal, session: SessionDep
) -> Deployment:
    deployment = await DeploymentRepository(session).get(principal.organization_id, deployment_id)
    if deployment.project_id != project.id:
        raise NotFound(f"Deployment {deployment_id} not found.")
    return deployment


DeploymentDep = Annotated[Deployment, Depends(load_deployment)]


async def _page(
    repository: DeploymentRepository, statement: Select[Any], page: PageParams
) -> DeploymentList:
    rows, total = await repository.list_page(statement, page)
    steps, evidence, findings = await repository.details([r.id for r in rows])
    return DeploymentList(
        deployments=[
            views.deployment_out(r, steps[r.id], evidence[r.id], findings[r.id]) for r in rows
        ],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


async def _out(session: SessionDep, deployment: Deployment) -> DeploymentOut:
    steps, evidence, findings = await DeploymentRepository(session).details([deployment.id])
    return views.deployment_out(
        deployment, steps[deployment.id], evidence[deployment.id], findings[deployment.id]
    )


@router.post(
    "/deploy",
    response_model=DeploymentOut,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Trigger a deployment (branch, tag or commit) on an instance",
)
async def deploy(
    project: ProjectDep,
    body: DeployRequest,
    principal: Deploy,
    session: SessionDep,
    settings: SettingsDep,
    box: SecretBoxDep,
    jobs: JobSystemDep,
) -> DeploymentOut:
    deployment = await service.create_deployment(
        session, settings, box, jobs, principal, project, body
    )
    return await _out(session, deployment)


@router.post(
    "/rollback",
    response_model=DeploymentOut,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Roll back to an earlier successful deployment (code and database)",
)
async def rollback(
    project: ProjectDep,
    body: RollbackRequest,
    principal: Deploy,
    session: SessionDep,
    jobs: JobSystemDep,
) -> DeploymentOut:
    deployment = await service.create_rollback(
        session, jobs, principal, project, body.deployment_id
    )
    return await _out(session, deployment)


@router.get("/deployments", response_model=DeploymentList, summary="List deployments")
async def list_deployments(
    project: ProjectDep, principal: CurrentPrincipal, session: SessionDep, page: Pagination
) -> DeploymentList:
    repository = DeploymentRepository(session)
    statement = (
        repository.scoped(principal.organization_id)
        .where(Deployment.project_id == project.id)
        .order_by(Deployment.created_at.desc(), Deployment.id)
    )
    return await _page(repository, statement, page)


@router.get(
    "/deployments/{deployment_id}", response_model=DeploymentOut, summary="Get a deployment"
)
async def get_deployment(deployment: DeploymentDep, session: SessionDep) -> DeploymentOut:
    return await _out(session, deployment)


@router.post(
    "/deployments/{deployment_id}/waivers",
    response_model=DeploymentOut,
    summary="Waive a failed gate the project does not require (admin, audited)",
)
async def waive_gate(
    deployment: DeploymentDep, body: WaiverRequest, principal: Admin, session: SessionDep
) -> DeploymentOut:
    await waivers.waive_gate(session, principal, deployment, body)
    return await _out(session, deployment)


def encode_log_events(events: list[Event]) -> tuple[bytes, bool]:
    """SSE text of a batch of a build's events, up to its ``complete``; and whether it had one."""
    chunk: list[bytes] = []
    for event in events:
        data = event.data
        kind = data.get("type", "message")
        payload = (
            data.get("step") if kind == "step" else {k: v for k, v in data.items() if k != "type"}
        )
        chunk.append(ServerSentEvent(data=json.dumps(payload), event=kind, id=event.id).encode())
        if kind == "complete":
            return b"".join(chunk), True
    return b"".join(chunk), False


@router.get(
    "/deployments/{deployment_id}/logs",
    summary="Stream the build (SSE): step, log and complete events; resume with Last-Event-ID",
    response_class=EventSourceResponse,
)
async def stream_logs(
    deployment: DeploymentDep,
    session: SessionDep,
    jobs: JobSystemDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> EventSourceResponse:
    try:
        after = parse_event_id(last_event_id) if last_event_id else (0, 0)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    if deployment.status in FINISHED and after[0] == 0:
        # A finished build replays its steps from the database (ids 0-1, 0-2, …) and
        # completes at once, even after its event stream has expired.
        steps = await DeploymentRepository(session).steps(deployment.id)
        final = {"status": deployment.status, "errorMessage": deployment.error_message}
        events = [("step", {**step_event(step), "output": step.output}) for step in steps]
        events.append(("complete", final))

        async def replay() -> AsyncIterator[ServerSentEvent]:
            for index, (kind, data) in enumerate(events, start=1):
                if index > after[1]:
                    yield ServerSentEvent(data=json.dumps(data), event=kind, id=f"0-{index}")

        return EventSourceResponse(replay())
    stream = deployment_stream(deployment.id)
    start = last_event_id or "0-0"
    finished_at_start = deployment.status in FINISHED

    @counts_subscribers("deployment_logs")
    async def live() -> AsyncIterator[bytes]:
        # One write per wake-up, with each batch encoded once for every subscriber:
        # per-subscriber reads and encodings were what limited fan-out (bench/sse.py).
        async for batches in jobs.fanout.subscribe(stream, start, idle_seconds=5):
            if batches is None:
                if finished_at_start:
                    return
                continue
            chunk: list[bytes] = []
            for batch in batches:
                encoded, complete = batch.encoded("deployment-sse", encode_log_events)
                chunk.append(encoded)
                if complete:
                    yield b"".join(chunk)
                    return
            yield b"".join(chunk)

    return EventSourceResponse(live(), ping=15)


@router.get(
    "/deployments/{deployment_id}/logs/download",
    response_class=PlainTextResponse,
    summary="Download the whole build log as text",
)
async def download_logs(deployment: DeploymentDep, session: SessionDep) -> PlainTextResponse:
    steps = await DeploymentRepository(session).steps(deployment.id)
    return PlainTextResponse(
        views.log_text(deployment, steps),
        headers={"Content-Disposition": f'attachment; filename="deployment-{deployment.id}.log"'},
    )


@router.get(
    "/deployments/{deployment_id}/logs/summary",
    response_model=LogSummaryOut,
    summary="Odoo log summary: modules, warnings, errors, sections",
)
async def logs_summary(deployment: DeploymentDep, session: SessionDep) -> LogSummaryOut:
    steps = await DeploymentRepository(session).steps(deployment.id)
    return LogSummaryOut.model_validate(views.log_summary(steps))


@environment_router.get(
    "/deployments",
    response_model=DeploymentList,
    summary="List the deployments of the environment's instance",
)
async def list_environment_deployments(
    environment: EnvironmentDep, principal: CurrentPrincipal, session: SessionDep, page: Pagination
) -> DeploymentList:
    repository = DeploymentRepository(session)
    statement = (
        repository.scoped(principal.organization_id)
        .where(Deployment.instance_id == environment.instance_id)
        .order_by(Deployment.created_at.desc(), Deployment.id)
    )
    return await _page(repository, statement, page)
