"""Neutralization profiles: which dangerous categories a project's copies have switched off."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ocore.core.auth import Principal
from ocore.neutralization.models import NeutralizationProfile
from ocore.neutralization.schemas import ProfileUpdate
from ocore.orgs import audit


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
