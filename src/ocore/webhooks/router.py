"""Git pushes reaching ocore: provider webhooks, manual builds of pending commits, commit lists.

Webhook URLs (public: the project's webhook secret authenticates them, no JWT):

- ``POST /api/webhooks/github/{projectId}``: GitHub, ``X-Hub-Signature-256`` HMAC;
  events ``push``, ``delete`` and ``pull_request`` (others answer 200 "ignored").
- ``POST /api/webhooks/gitlab/{projectId}``: GitLab, ``X-Gitlab-Token`` = the secret;
  ``Push Hook`` and ``Merge Request Hook``.
- ``POST /api/webhooks/git/{projectId}``: plain git servers (``hooks/post-receive.sh``),
  ``X-Ocore-Signature`` HMAC, ``X-Ocore-Delivery``.

Answers: 202 when the delivery queued work (a build, a deletion), 200 when it only
recorded a pending commit, was ignored or replayed (``status: "duplicate"``);
401 (one message for an unknown project and a bad signature), 413 past 5 MiB,
422 for an authentic but malformed payload.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, status

from ocore.core.auth import Deploy
from ocore.core.deps import JobSystemDep, SecretBoxDep, SettingsDep
from ocore.core.problems import PROBLEM_RESPONSES
from ocore.core.uow import SessionDep
from ocore.deployments import views
from ocore.deployments.repository import DeploymentRepository
from ocore.deployments.schemas import DeploymentOut
from ocore.environments.router import EnvironmentDep
from ocore.git.webhooks import WebhookSource
from ocore.projects.router import ProjectDep
from ocore.webhooks import intake, manual, service
from ocore.webhooks.schemas import CommitOut, CommitsSince, WebhookResult

router = APIRouter(tags=["webhooks"], responses=PROBLEM_RESPONSES)

WEBHOOK_RESPONSES: dict[int | str, dict[str, str]] = {
    202: {"description": "Handled; a build or a deletion was queued"},
    413: {"description": "Payload too large"},
}
ProjectRef = Annotated[str, Path(description="The project's UUID (from its webhook URL)")]


async def _receive(
    source: WebhookSource,
    project_ref: str,
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    box: SecretBoxDep,
    jobs: JobSystemDep,
) -> WebhookResult:
    body = await intake.read_bounded(request.stream(), request.headers.get("content-length"))
    project, event = await intake.authenticate(
        session, box, source, project_ref, request.headers, body
    )
    result = await service.handle_delivery(session, settings, box, jobs, project, source, event)
    queued = any(a.action in ("build_queued", "marked_for_deletion") for a in result.environments)
    response.status_code = (
        status.HTTP_202_ACCEPTED if queued and result.status == "processed" else status.HTTP_200_OK
    )
    return result


@router.post(
    "/webhooks/github/{project_id}",
    response_model=WebhookResult,
    responses=WEBHOOK_RESPONSES,
    summary="Receive a GitHub webhook delivery",
)
async def github_webhook(
    project_id: ProjectRef,
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    box: SecretBoxDep,
    jobs: JobSystemDep,
) -> WebhookResult:
    return await _receive("github", project_id, request, response, session, settings, box, jobs)


@router.post(
    "/webhooks/gitlab/{project_id}",
    response_model=WebhookResult,
    responses=WEBHOOK_RESPONSES,
    summary="Receive a GitLab webhook delivery",
)
async def gitlab_webhook(
    project_id: ProjectRef,
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    box: SecretBoxDep,
    jobs: JobSystemDep,
) -> WebhookResult:
    return await _receive("gitlab", project_id, request, response, session, settings, box, jobs)


@router.post(
    "/webhooks/git/{project_id}",
    response_model=WebhookResult,
    responses=WEBHOOK_RESPONSES,
    summary="Receive a push from a plain git server (post-receive hook)",
)
async def generic_webhook(
    project_id: ProjectRef,
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    box: SecretBoxDep,
    jobs: JobSystemDep,
) -> WebhookResult:
    return await _receive("generic", project_id, request, response, session, settings, box, jobs)


@router.post(
    "/environments/{id}/trigger-build",
    response_model=DeploymentOut,
    status_code=status.HTTP_202_ACCEPTED,
    tags=["environments"],
    summary="Trigger a manual build of the pending commit",
)
async def trigger_build(
    environment: EnvironmentDep,
    principal: Deploy,
    session: SessionDep,
    settings: SettingsDep,
    box: SecretBoxDep,
    jobs: JobSystemDep,
) -> DeploymentOut:
    deployment = await manual.trigger_build(session, settings, box, jobs, principal, environment)
    steps, evidence, findings = await DeploymentRepository(session).details([deployment.id])
    return views.deployment_out(
        deployment, steps[deployment.id], evidence[deployment.id], findings[deployment.id]
    )


@router.get(
    "/projects/{project_id}/commits-since",
    response_model=CommitsSince,
    tags=["environments"],
    summary="List commits since a SHA",
)
async def commits_since(
    project: ProjectDep,
    settings: SettingsDep,
    box: SecretBoxDep,
    since: Annotated[str, Query(max_length=64, description="Starting commit SHA")],
    branch: Annotated[str, Query(max_length=200, description="Branch name")],
    limit: Annotated[int, Query(ge=1, le=100, description="At most this many commits")] = 100,
) -> CommitsSince:
    listing = await manual.commits_since(settings, box, project, since, branch, limit)
    return CommitsSince(
        commits=[CommitOut.model_validate(commit) for commit in listing.commits],
        total_count=listing.total_count,
    )
