"""The user's side of pushes: build an environment's pending commit, list commits since a SHA."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from ocore.core.auth import Principal
from ocore.core.crypto import SecretBox
from ocore.core.errors import Conflict, InvalidInput, RefNotFound
from ocore.deployments import service as deployments
from ocore.deployments.models import Deployment
from ocore.deployments.schemas import DeployRequest
from ocore.environments.models import Environment
from ocore.git.types import CommitList, checked_branch, checked_sha
from ocore.jobs.runtime import JobSystem
from ocore.projects.git import project_provider
from ocore.projects.models import Project
from ocore.projects.repository import ProjectRepository
from ocore.settings import Settings


async def trigger_build(
    session: AsyncSession,
    settings: Settings,
    box: SecretBox,
    jobs: JobSystem,
    principal: Principal,
    environment: Environment,
) -> Deployment:
    """Queue a deployment of the environment's pending commit and clear the pending fields.

    Whatever the commit behaviour. Conflict when nothing is pending, when the
    environment is being deleted or has no instance, and when the instance is
    busy (the commit then stays pending).
    """
    if environment.status == "deleting":
        raise Conflict(f"Environment {environment.name} is being deleted.")
    sha = environment.pending_commit_sha
    if sha is None:
        raise Conflict(f"Environment {environment.name} has no pending commit to build.")
    if environment.instance_id is None:
        raise Conflict(f"Environment {environment.name} has no instance to build on.")
    project = await ProjectRepository(session).get(
        principal.organization_id, environment.project_id
    )
    request = DeployRequest.model_validate(
        {"instanceId": environment.instance_id, "commitSha": sha}
    )
    deployment = await deployments.create_deployment(
        session, settings, box, jobs, principal, project, request, trigger_type="manual"
    )
    # A commit deploy records no branch; this one is the environment's branch head.
    deployment.branch = environment.branch
    environment.pending_commit_sha = None
    environment.pending_commit_count = 0
    await session.flush()
    return deployment


async def commits_since(
    settings: Settings, box: SecretBox, project: Project, since: str, branch: str, limit: int
) -> CommitList:
    """Commits on ``branch`` that ``since`` lacks, newest first (422 for a bad or unknown ref)."""
    since, branch = _checked(since, branch)
    provider = project_provider(settings, box, project)
    try:
        return await provider.commits_since(since, branch, limit=limit)
    except RefNotFound as exc:
        which = "branch" if exc.detail.startswith("branch") else "since"
        raise InvalidInput(f"{which}: {exc.detail}") from None


def _checked(since: str, branch: str) -> tuple[str, str]:
    """Both refs validated before any git runs, each error naming its parameter."""
    try:
        sha = checked_sha(since)
    except InvalidInput as exc:
        raise InvalidInput(f"since: {exc.detail}") from None
    try:
        name = checked_branch(branch)
    except InvalidInput as exc:
        raise InvalidInput(f"branch: {exc.detail}") from None
    return sha, name
