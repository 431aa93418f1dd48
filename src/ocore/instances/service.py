"""Instances: an Odoo deployment on a server. Changes on the host are carried out by jobs."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ocore.core.auth import Principal
from ocore.core.crypto import SecretBox, random_token
from ocore.core.errors import Conflict, InvalidInput, ServiceUnavailable
from ocore.core.pagination import PageParams
from ocore.environments.models import Environment
from ocore.instances.models import Domain, Instance, Template
from ocore.instances.repository import InstanceRepository, TemplateRepository
from ocore.instances.schemas import InstanceCreate, InstanceUpdate, validate_slug
from ocore.jobs import engine
from ocore.jobs.models import Job
from ocore.jobs.runtime import JobSystem
from ocore.orgs import audit
from ocore.projects.repository import ProjectRepository
from ocore.servers.repository import ServerRepository
from ocore.settings import Settings

PORTS_PER_INSTANCE = 4
# Settings that Odoo reads at start: changing them needs a restart to apply.
RESTART_FIELDS = frozenset({"addons_path", "env_vars"})
TRANSITIONAL = frozenset({"provisioning", "deleting"})


def database_name(slug: str) -> str:
    return slug.replace("-", "_")


def slug_from_name(name: str) -> str:
    slug = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
    while "--" in slug:
        slug = slug.replace("--", "-")
    slug = slug[:63].strip("-")
    if not slug or not slug[0].isalpha():
        slug = f"odoo-{slug}".strip("-")
    try:
        return validate_slug(slug)
    except ValueError:
        raise InvalidInput(f"Cannot derive a slug from the name '{name}'; give one.") from None


async def list_instances(
    session: AsyncSession, principal: Principal, page: PageParams, server_id: uuid.UUID | None
) -> tuple[list[Instance], int]:
    repository = InstanceRepository(session)
    statement = repository.scoped(principal.organization_id)
    if server_id is not None:
        statement = statement.where(Instance.server_id == server_id)
    return await repository.list_page(statement.order_by(Instance.name, Instance.id), page)


def _free_port_block(used: set[int], settings: Settings) -> int:
    for base in range(
        settings.instance_port_min,
        settings.instance_port_max - PORTS_PER_INSTANCE + 2,
        PORTS_PER_INSTANCE,
    ):
        if base not in used:
            return base
    raise ServiceUnavailable("No free port block is left on this server for a new instance.")


async def create_instance(
    session: AsyncSession,
    settings: Settings,
    box: SecretBox,
    jobs: JobSystem,
    principal: Principal,
    body: InstanceCreate,
) -> tuple[Instance, Job]:
    org = principal.organization_id
    server = await ServerRepository(session).get(org, body.server_id)
    template: Template | None = None
    if body.template_id is not None:
        template = await TemplateRepository(session).get(org, body.template_id)
    project = (
        await ProjectRepository(session).get(org, body.project_id) if body.project_id else None
    )
    version = body.odoo_version or (template.odoo_version if template else None)
    version = version or (project.odoo_version if project else None)
    if version is None:
        raise InvalidInput("odooVersion is required (or a templateId or projectId that has one).")
    edition = body.odoo_edition or (template.odoo_edition if template else None)
    edition = edition or (project.odoo_edition if project else "community")
    if (body.branch or body.environment_type) and project is None:
        raise InvalidInput("branch and environmentType need a projectId.")

    repository = InstanceRepository(session)
    slug = body.slug or slug_from_name(body.name)
    if await repository.slug_taken(server.id, slug):
        raise Conflict(f"The server already has an instance with the slug '{slug}'.")

    instance = Instance(
        organization_id=org,
        server_id=server.id,
        project_id=project.id if project else None,
        template_id=template.id if template else None,
        name=body.name,
        slug=slug,
        status="provisioning",
        status_message="Waiting for the provisioning job.",
        odoo_version=version,
        odoo_edition=edition,
        addons_path=body.addons_path,
        env_vars=body.env_vars,
        database_name=database_name(slug),
        admin_password_encrypted=box.encrypt(random_token(24)),
        auto_subdomain=f"{slug}.{settings.base_domain}" if settings.base_domain else None,
    )
    if template is not None:
        for field in (
            "workers",
            "limit_memory_soft",
            "limit_memory_hard",
            "limit_time_cpu",
            "limit_time_real",
            "max_cron_threads",
        ):
            setattr(instance, field, getattr(template, field))
    await _insert_with_ports(session, settings, repository, instance)
    if instance.auto_subdomain:
        session.add(
            Domain(
                organization_id=org,
                instance_id=instance.id,
                domain=instance.auto_subdomain,
                is_primary=True,
                is_auto_generated=True,
            )
        )
    if project is not None:
        session.add(
            Environment(
                organization_id=org,
                project_id=project.id,
                instance_id=instance.id,
                name=body.name,
                environment_type=body.environment_type or "development",
                branch=body.branch or project.default_branch,
                status="provisioning",
            )
        )
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(
            "This domain is taken, or the project already has a production environment."
        ) from None
    job = await _enqueue(session, jobs, instance, "instance.provision", {}, max_attempts=3)
    await audit.record(session, principal, "instance.create", "instance", instance.id)
    return instance, job


async def _insert_with_ports(
    session: AsyncSession, settings: Settings, repository: InstanceRepository, instance: Instance
) -> None:
    """Pick the lowest free port block; a concurrent create that took it makes us pick again."""
    for _ in range(20):
        base = _free_port_block(await repository.used_ports(instance.server_id), settings)
        instance.http_port_host = base
        instance.longpolling_port_host = base + 1
        try:
            async with session.begin_nested():
                session.add(instance)
            return
        except IntegrityError:
            # The savepoint's rollback took the instance out of the session again.
            if await repository.slug_taken(instance.server_id, instance.slug):
                raise Conflict(
                    f"The server already has an instance with the slug '{instance.slug}'."
                ) from None
    raise Conflict("Could not reserve ports for the instance; try again.")


async def _enqueue(
    session: AsyncSession,
    jobs: JobSystem,
    instance: Instance,
    kind: str,
    payload: dict[str, object],
    *,
    max_attempts: int = 3,
) -> Job:
    return await engine.enqueue(
        session,
        jobs.queue,
        jobs.database,
        kind=kind,
        target_type="instance",
        target_id=instance.id,
        organization_id=instance.organization_id,
        payload=payload,
        lock_key=f"instance:{instance.id}",
        max_attempts=max_attempts,
    )


async def update_instance(
    session: AsyncSession, principal: Principal, instance: Instance, body: InstanceUpdate
) -> Instance:
    changes = body.changes()
    for field, value in changes.items():
        setattr(instance, field, value)
    if RESTART_FIELDS & changes.keys():
        instance.restart_required = True
    await session.flush()
    await audit.record(
        session,
        principal,
        "instance.update",
        "instance",
        instance.id,
        {"fields": sorted(changes)},
    )
    return instance


async def control_instance(
    session: AsyncSession, jobs: JobSystem, principal: Principal, instance: Instance, action: str
) -> Job:
    if instance.status in TRANSITIONAL:
        raise Conflict(f"The instance is {instance.status}; try again when it is done.")
    job = await _enqueue(session, jobs, instance, "instance.control", {"action": action})
    await audit.record(
        session, principal, f"instance.{action}", "instance", instance.id, {"action": action}
    )
    return job


async def delete_instance(
    session: AsyncSession,
    jobs: JobSystem,
    principal: Principal,
    instance: Instance,
    *,
    drop_database: bool,
) -> Job:
    if instance.status == "deleting":
        raise Conflict("The instance is already being deleted.")
    production = await session.scalar(
        select(Environment.name).where(
            Environment.instance_id == instance.id, Environment.environment_type == "production"
        )
    )
    if production is not None:
        raise Conflict(
            f"The production environment '{production}' runs on this instance; remove it first."
        )
    instance.status = "deleting"
    instance.status_message = "Waiting for the cleanup job."
    await session.flush()
    job = await _enqueue(
        session, jobs, instance, "instance.delete", {"dropDatabase": drop_database}
    )
    await audit.record(
        session,
        principal,
        "instance.delete",
        "instance",
        instance.id,
        {"dropDatabase": drop_database},
    )
    return job
