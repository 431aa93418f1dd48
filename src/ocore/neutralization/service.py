"""Neutralization profiles, the items of an environment, and asking for a neutralization run."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ocore.core.auth import Principal
from ocore.core.errors import Conflict, InvalidInput, NotFound
from ocore.core.pagination import PageParams, paginate
from ocore.environments.models import Environment
from ocore.jobs import engine
from ocore.jobs.models import Job
from ocore.neutralization.models import NeutralizationItem, NeutralizationProfile
from ocore.neutralization.rules import CATEGORIES, DANGEROUS_CATEGORIES
from ocore.neutralization.schemas import CategoryCounts, ProfileUpdate, Summary
from ocore.neutralization.target import refuse_production
from ocore.orgs import audit

if TYPE_CHECKING:
    from ocore.jobs.runtime import JobSystem

JOB_KIND = "neutralization.run"


async def get_or_create_profile(
    session: AsyncSession, organization_id: uuid.UUID, project_id: uuid.UUID
) -> NeutralizationProfile:
    """The project's profile; created with everything neutralized when missing."""
    statement = select(NeutralizationProfile).where(
        NeutralizationProfile.organization_id == organization_id,
        NeutralizationProfile.project_id == project_id,
    )
    profile = (await session.execute(statement)).scalar_one_or_none()
    if profile is not None:
        return profile
    profile = NeutralizationProfile(organization_id=organization_id, project_id=project_id)
    try:
        async with session.begin_nested():
            session.add(profile)
    except IntegrityError:
        # Two first reads at once: the other one created it.
        return (await session.execute(statement)).scalar_one()
    return profile


async def update_profile(
    session: AsyncSession, principal: Principal, project_id: uuid.UUID, body: ProfileUpdate
) -> NeutralizationProfile:
    profile = await get_or_create_profile(session, principal.organization_id, project_id)
    changes = body.changes()
    for field, value in changes.items():
        setattr(profile, field, value)
    await session.flush()
    await audit.record(session, principal, "neutralization.profile", "project", project_id, changes)
    return profile


# Items of one environment (the router has loaded the environment scoped by organization).


def _items_of(environment: Environment) -> Select[Any]:
    return select(NeutralizationItem).where(
        NeutralizationItem.environment_id == environment.id,
        NeutralizationItem.organization_id == environment.organization_id,
    )


def _ordered(statement: Select[Any]) -> Select[Any]:
    item = NeutralizationItem
    return statement.order_by(item.category, item.odoo_model, item.odoo_record_id)


async def list_items(
    session: AsyncSession, environment: Environment, page: PageParams, category: str | None
) -> tuple[list[NeutralizationItem], int]:
    statement = _items_of(environment)
    if category is not None:
        statement = statement.where(NeutralizationItem.category == category)
    return await paginate(session, _ordered(statement), page)


async def category_items(
    session: AsyncSession, environment: Environment, category: str
) -> list[NeutralizationItem]:
    statement = _items_of(environment).where(NeutralizationItem.category == category)
    return list((await session.scalars(_ordered(statement))).all())


async def get_item(
    session: AsyncSession, environment: Environment, item_id: uuid.UUID
) -> NeutralizationItem:
    statement = _items_of(environment).where(NeutralizationItem.id == item_id)
    item: NeutralizationItem | None = (await session.execute(statement)).scalar_one_or_none()
    if item is None:
        raise NotFound(f"Neutralization item {item_id} not found.")
    return item


async def summary(session: AsyncSession, environment: Environment) -> Summary:
    statement = (
        select(
            NeutralizationItem.category,
            func.count(),
            func.count().filter(NeutralizationItem.is_enabled.is_(True)),
        )
        .where(
            NeutralizationItem.environment_id == environment.id,
            NeutralizationItem.organization_id == environment.organization_id,
        )
        .group_by(NeutralizationItem.category)
    )
    # Every category is listed, so a client sees the same keys before and after a run.
    counts = {name: CategoryCounts(enabled_items=0, total_items=0) for name in CATEGORIES}
    for category, total, enabled in (await session.execute(statement)).all():
        counts[category] = CategoryCounts(enabled_items=enabled, total_items=total)
    return Summary(
        environment_id=environment.id,
        is_neutralized=environment.is_neutralized,
        categories=counts,
        enabled_items=sum(c.enabled_items for c in counts.values()),
        total_items=sum(c.total_items for c in counts.values()),
    )


async def dangerous_items(
    session: AsyncSession, environment: Environment
) -> list[NeutralizationItem]:
    statement = _items_of(environment).where(
        NeutralizationItem.is_enabled.is_(True),
        NeutralizationItem.category.in_(DANGEROUS_CATEGORIES),
    )
    return list((await session.scalars(_ordered(statement))).all())


def lock_key(environment: Environment) -> str:
    """One database-changing job per environment at a time (clone, restore, neutralize)."""
    return f"environment:{environment.id}"


async def request_neutralization(
    session: AsyncSession,
    jobs: JobSystem,
    principal: Principal,
    environment: Environment,
    confirm_text: str,
) -> Job:
    refuse_production(environment)
    if environment.status != "ready":
        raise Conflict(
            f"Environment {environment.name} is {environment.status}; "
            "only a ready environment can be neutralized."
        )
    if environment.instance_id is None:
        raise Conflict(f"Environment {environment.name} has no instance, so no database.")
    # The name, exactly: neutralizing switches off crons, mail and payments of a live copy.
    if confirm_text != environment.name:
        raise InvalidInput(
            f"confirmText must be the environment's name ({environment.name!r}) to confirm."
        )
    job = await engine.enqueue(
        session,
        jobs.queue,
        jobs.database,
        kind=JOB_KIND,
        target_type="environment",
        target_id=environment.id,
        organization_id=environment.organization_id,
        lock_key=lock_key(environment),
    )
    changes = {"jobId": str(job.id)}
    await audit.record(
        session, principal, "neutralization.run", "environment", environment.id, changes
    )
    return job
