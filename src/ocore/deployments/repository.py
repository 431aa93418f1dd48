from __future__ import annotations

import uuid

from sqlalchemy import select

from ocore.core.repository import TenantRepository
from ocore.deployments.models import (
    Deployment,
    DeploymentEvidence,
    DeploymentFinding,
    DeploymentStep,
    Snapshot,
)


class DeploymentRepository(TenantRepository[Deployment]):
    model = Deployment
    noun = "deployment"

    async def steps(self, deployment_id: uuid.UUID) -> list[DeploymentStep]:
        statement = (
            select(DeploymentStep)
            .where(DeploymentStep.deployment_id == deployment_id)
            .order_by(DeploymentStep.sort_order)
        )
        return list((await self.session.scalars(statement)).all())

    async def details(
        self, ids: list[uuid.UUID]
    ) -> tuple[
        dict[uuid.UUID, list[DeploymentStep]],
        dict[uuid.UUID, list[DeploymentEvidence]],
        dict[uuid.UUID, list[DeploymentFinding]],
    ]:
        steps: dict[uuid.UUID, list[DeploymentStep]] = {i: [] for i in ids}
        evidence: dict[uuid.UUID, list[DeploymentEvidence]] = {i: [] for i in ids}
        findings: dict[uuid.UUID, list[DeploymentFinding]] = {i: [] for i in ids}
        if not ids:
            return steps, evidence, findings
        for step in await self.session.scalars(
            select(DeploymentStep)
            .where(DeploymentStep.deployment_id.in_(ids))
            .order_by(DeploymentStep.sort_order)
        ):
            steps[step.deployment_id].append(step)
        for row in await self.session.scalars(
            select(DeploymentEvidence).where(DeploymentEvidence.deployment_id.in_(ids))
        ):
            evidence[row.deployment_id].append(row)
        for finding in await self.session.scalars(
            select(DeploymentFinding).where(DeploymentFinding.deployment_id.in_(ids))
        ):
            findings[finding.deployment_id].append(finding)
        return steps, evidence, findings

    async def last_succeeded(self, instance_id: uuid.UUID) -> Deployment | None:
        statement = (
            select(Deployment)
            .where(Deployment.instance_id == instance_id, Deployment.status == "succeeded")
            .order_by(Deployment.completed_at.desc())
            .limit(1)
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def snapshot_after(self, deployment: Deployment) -> Snapshot | None:
        """The snapshot taken just before the deployment that followed ``deployment``."""
        statement = (
            select(Snapshot)
            .join(Deployment, Deployment.snapshot_id == Snapshot.id)
            .where(
                Deployment.instance_id == deployment.instance_id,
                Deployment.created_at > deployment.created_at,
                Deployment.trigger_type != "rollback",
                Snapshot.status == "ready",
            )
            .order_by(Deployment.created_at)
            .limit(1)
        )
        return (await self.session.execute(statement)).scalar_one_or_none()
