"""``/api/templates``: stored defaults for new instances (version, edition, modules, limits)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Response, status
from pydantic import AfterValidator, Field

from ocore.core.auth import CurrentPrincipal, ManageInstances
from ocore.core.errors import Conflict, InvalidInput
from ocore.core.pagination import Pagination
from ocore.core.problems import PROBLEM_RESPONSES
from ocore.core.schemas import InputSchema, Schema, UpdateSchema
from ocore.core.uow import SessionDep
from ocore.instances.models import Template
from ocore.instances.repository import TemplateRepository
from ocore.instances.schemas import Name, OdooEdition, OdooVersion
from ocore.orgs import audit

_MODULE = re.compile(r"[a-z][a-z0-9_]{0,63}")  # fullmatch: "$" passes a trailing "\n"
GiB = 1024**3


def _modules(value: list[str]) -> list[str]:
    for module in value:
        if not _MODULE.fullmatch(module):
            raise ValueError(f"'{module[:70]}' is not an Odoo module name")
    return list(dict.fromkeys(value))


Modules = Annotated[list[str], Field(max_length=500), AfterValidator(_modules)]
Workers = Annotated[int, Field(ge=0, le=64)]
Memory = Annotated[int, Field(ge=256 * 1024**2, le=256 * GiB)]
Seconds = Annotated[int, Field(ge=1, le=86400)]
CronThreads = Annotated[int, Field(ge=0, le=32)]


class TemplateCreate(InputSchema):
    name: Name
    odoo_version: OdooVersion
    odoo_edition: OdooEdition = "community"
    modules: Modules = Field(default_factory=list)
    workers: Workers = 2
    limit_memory_soft: Memory = 2 * GiB
    limit_memory_hard: Memory = int(2.5 * GiB)
    limit_time_cpu: Seconds = 60
    limit_time_real: Seconds = 120
    max_cron_threads: CronThreads = 2


class TemplateUpdate(UpdateSchema):
    name: Name | None = None
    odoo_version: OdooVersion | None = None
    odoo_edition: OdooEdition | None = None
    modules: Modules | None = None
    workers: Workers | None = None
    limit_memory_soft: Memory | None = None
    limit_memory_hard: Memory | None = None
    limit_time_cpu: Seconds | None = None
    limit_time_real: Seconds | None = None
    max_cron_threads: CronThreads | None = None


class TemplateOut(Schema):
    id: uuid.UUID
    name: str
    odoo_version: str
    odoo_edition: str
    modules: list[str]
    workers: int
    limit_memory_soft: int
    limit_memory_hard: int
    limit_time_cpu: int
    limit_time_real: int
    max_cron_threads: int
    created_at: datetime
    updated_at: datetime


class TemplateList(Schema):
    templates: list[TemplateOut]
    total: int
    limit: int
    offset: int


router = APIRouter(prefix="/templates", tags=["templates"], responses=PROBLEM_RESPONSES)


async def load_template(
    template_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep
) -> Template:
    return await TemplateRepository(session).get(principal.organization_id, template_id)


TemplateDep = Annotated[Template, Depends(load_template)]


def _check_limits(template: Template) -> None:
    if template.limit_memory_hard < template.limit_memory_soft:
        raise InvalidInput("limitMemoryHard must be at least limitMemorySoft.")
    if template.limit_time_real < template.limit_time_cpu:
        raise InvalidInput("limitTimeReal must be at least limitTimeCpu.")


@router.get("", response_model=TemplateList, summary="List instance templates")
async def list_templates(
    principal: CurrentPrincipal, session: SessionDep, page: Pagination
) -> TemplateList:
    repository = TemplateRepository(session)
    statement = repository.scoped(principal.organization_id).order_by(Template.name)
    rows, total = await repository.list_page(statement, page)
    return TemplateList(
        templates=[TemplateOut.model_validate(r) for r in rows],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.post("", response_model=TemplateOut, status_code=status.HTTP_201_CREATED, summary="Create")
async def create_template(
    body: TemplateCreate, principal: ManageInstances, session: SessionDep
) -> TemplateOut:
    repository = TemplateRepository(session)
    if await repository.name_taken(principal.organization_id, body.name):
        raise Conflict(f"A template named '{body.name}' already exists.")
    template = Template(organization_id=principal.organization_id, **body.model_dump())
    _check_limits(template)
    await repository.add(template)
    await audit.record(session, principal, "template.create", "template", template.id)
    return TemplateOut.model_validate(template)


@router.get("/{template_id}", response_model=TemplateOut, summary="Get a template")
async def get_template(template: TemplateDep) -> TemplateOut:
    return TemplateOut.model_validate(template)


@router.put("/{template_id}", response_model=TemplateOut, summary="Update a template")
async def update_template(
    template: TemplateDep, body: TemplateUpdate, principal: ManageInstances, session: SessionDep
) -> TemplateOut:
    changes = body.changes()
    if "name" in changes and await TemplateRepository(session).name_taken(
        principal.organization_id, changes["name"], exclude=template.id
    ):
        raise Conflict(f"A template named '{changes['name']}' already exists.")
    for field, value in changes.items():
        setattr(template, field, value)
    _check_limits(template)
    await session.flush()
    await audit.record(
        session, principal, "template.update", "template", template.id, {"fields": sorted(changes)}
    )
    return TemplateOut.model_validate(template)


@router.delete("/{template_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete")
async def delete_template(
    template: TemplateDep, principal: ManageInstances, session: SessionDep
) -> Response:
    await audit.record(session, principal, "template.delete", "template", template.id)
    await TemplateRepository(session).delete(template)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
