from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, func, select

from ocore.core.repository import TenantRepository
from ocore.environments.models import Environment
from ocore.instances.models import Domain, Instance


class EnvironmentRepository(TenantRepository[Environment]):
    model = Environment
    noun = "environment"

    def with_instance(self, organization_id: uuid.UUID) -> Select[Any]:
        """Environments with their instance (or None) and the instance's primary domain."""
        primary = (
            select(Domain.domain)
            .where(Domain.instance_id == Instance.id, Domain.is_primary.is_(True))
            .limit(1)
            .scalar_subquery()
        )
        return (
            select(Environment, Instance, primary)
            .outerjoin(Instance, Instance.id == Environment.instance_id)
            .where(Environment.organization_id == organization_id)
        )

    async def instance_in_use(self, instance_id: uuid.UUID) -> bool:
        statement = select(func.count()).where(Environment.instance_id == instance_id)
        return bool(await self.session.scalar(statement))

    async def has_production(self, project_id: uuid.UUID) -> bool:
        statement = select(func.count()).where(
            Environment.project_id == project_id, Environment.environment_type == "production"
        )
        return bool(await self.session.scalar(statement))
