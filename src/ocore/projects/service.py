"""Projects: git repositories of Odoo addons and how their deploys are gated."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from ocore.core.auth import Principal
from ocore.core.crypto import SecretBox, random_token
from ocore.core.errors import Conflict
from ocore.core.pagination import PageParams
from ocore.git.refs import infer_provider
from ocore.orgs import audit
from ocore.projects.git import check_repository_location
from ocore.projects.models import Project
from ocore.projects.repository import ProjectRepository
from ocore.projects.schemas import ProjectCreate, ProjectUpdate
from ocore.settings import Settings


async def list_projects(
    session: AsyncSession, principal: Principal, page: PageParams
) -> tuple[list[Project], int]:
    repository = ProjectRepository(session)
    statement = repository.scoped(principal.organization_id).order_by(Project.name, Project.id)
    return await repository.list_page(statement, page)


async def create_project(
    session: AsyncSession,
    settings: Settings,
    box: SecretBox,
    principal: Principal,
    body: ProjectCreate,
) -> tuple[Project, str]:
    """The new project and its webhook secret (the only time it is shown)."""
    check_repository_location(settings, body.repository_url)
    repository = ProjectRepository(session)
    if await repository.name_taken(principal.organization_id, body.name):
        raise Conflict(f"A project named '{body.name}' already exists.")
    webhook_secret = random_token()
    project = Project(
        organization_id=principal.organization_id,
        name=body.name,
        repository_url=body.repository_url,
        git_provider=body.git_provider or infer_provider(body.repository_url),
        default_branch=body.default_branch,
        odoo_version=body.odoo_version,
        odoo_edition=body.odoo_edition,
        test_gate_staging=body.test_gate_staging,
        test_gate_production=body.test_gate_production,
        test_tags=body.test_tags,
        webhook_secret_encrypted=box.encrypt(webhook_secret),
        git_token_encrypted=box.encrypt(body.git_token.get_secret_value())
        if body.git_token
        else None,
    )
    await repository.add(project)
    await audit.record(session, principal, "project.create", "project", project.id)
    return project, webhook_secret


async def update_project(
    session: AsyncSession,
    settings: Settings,
    box: SecretBox,
    principal: Principal,
    project: Project,
    body: ProjectUpdate,
) -> Project:
    if body.repository_url is not None:
        check_repository_location(settings, body.repository_url)
    repository = ProjectRepository(session)
    changes = body.changes(exclude={"git_token"})
    if "name" in changes and await repository.name_taken(
        principal.organization_id, changes["name"], exclude=project.id
    ):
        raise Conflict(f"A project named '{changes['name']}' already exists.")
    for field, value in changes.items():
        setattr(project, field, value)
    if "repository_url" in changes and "git_provider" not in changes:
        project.git_provider = infer_provider(project.repository_url)
    if "git_token" in body.model_fields_set:
        project.git_token_encrypted = (
            box.encrypt(body.git_token.get_secret_value()) if body.git_token else None
        )
    await session.flush()
    fields = sorted(body.model_fields_set)
    await audit.record(
        session, principal, "project.update", "project", project.id, {"fields": fields}
    )
    return project


async def rotate_webhook_secret(
    session: AsyncSession, box: SecretBox, principal: Principal, project: Project
) -> str:
    secret = random_token()
    project.webhook_secret_encrypted = box.encrypt(secret)
    await session.flush()
    await audit.record(session, principal, "project.rotate_webhook_secret", "project", project.id)
    return secret


async def delete_project(session: AsyncSession, principal: Principal, project: Project) -> None:
    repository = ProjectRepository(session)
    environments = await repository.count_environments(project.id)
    if environments:
        raise Conflict(f"The project still has {environments} environment(s); delete them first.")
    await audit.record(session, principal, "project.delete", "project", project.id)
    await repository.delete(project)
