"""Waivers: an admin accepts a failed gate that the project does not require."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ocore.core.auth import Principal
from ocore.core.db import utcnow
from ocore.core.errors import Conflict, InvalidInput, NotFound
from ocore.deployments.models import Deployment, DeploymentEvidence
from ocore.deployments.schemas import WaiverRequest
from ocore.orgs import audit
from ocore.orgs.models import User


async def waive_gate(
    session: AsyncSession, principal: Principal, deployment: Deployment, body: WaiverRequest
) -> DeploymentEvidence:
    evidence = (
        await session.execute(
            select(DeploymentEvidence).where(
                DeploymentEvidence.deployment_id == deployment.id,
                DeploymentEvidence.gate_key == body.gate_key,
            )
        )
    ).scalar_one_or_none()
    if evidence is None:
        raise NotFound(f"The deployment has no '{body.gate_key}' gate.")
    if evidence.status == "passed":
        raise Conflict("That gate passed; there is nothing to waive.")
    if evidence.required:
        raise Conflict("That gate is required by the project's test gates; it cannot be waived.")
    if evidence.waiver is not None:
        raise Conflict("That gate is already waived.")
    if body.expires_at is not None and body.expires_at <= utcnow():
        raise InvalidInput("expiresAt must be in the future.")
    actor = await session.scalar(select(User.email).where(User.id == principal.user_id))
    evidence.waiver = {
        "id": str(uuid.uuid4()),
        "actor": actor or str(principal.user_id),
        "reason": body.reason,
        "scope": body.scope,
        "confirmation": f"waived by {actor}",
        "expiresAt": body.expires_at.isoformat() if body.expires_at else None,
        "auditStatus": "recorded",
    }
    evidence.outcome = "waived"
    others = (
        await session.scalars(
            select(DeploymentEvidence).where(
                DeploymentEvidence.deployment_id == deployment.id,
                DeploymentEvidence.id != evidence.id,
            )
        )
    ).all()
    if deployment.success_verdict and all(e.status == "passed" or e.waiver for e in others):
        deployment.success_verdict = {
            **deployment.success_verdict,
            "status": "passed",
            "label": "Passed (waived)",
            "clean": False,
            "waived": True,
            "reason": f"{evidence.name} waived: {body.reason}",
        }
    await session.flush()
    await audit.record(
        session,
        principal,
        "deployment.waive",
        "deployment",
        deployment.id,
        {"gate": body.gate_key, "reason": body.reason, "expiresAt": evidence.waiver["expiresAt"]},
    )
    return evidence
