from __future__ import annotations

import uuid

from sqlalchemy import func, select

from ocore.core.repository import TenantRepository
from ocore.instances.models import Domain, Instance, Template


class InstanceRepository(TenantRepository[Instance]):
    model = Instance
    noun = "instance"

    async def domains(self, instance_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Domain]]:
        found: dict[uuid.UUID, list[Domain]] = {i: [] for i in instance_ids}
        if not instance_ids:
            return found
        statement = (
            select(Domain)
            .where(Domain.instance_id.in_(instance_ids))
            .order_by(Domain.is_primary.desc(), Domain.domain)
        )
        for domain in (await self.session.scalars(statement)).all():
            found[domain.instance_id].append(domain)
        return found

    async def used_ports(self, server_id: uuid.UUID) -> set[int]:
        statement = select(Instance.http_port_host).where(
            Instance.server_id == server_id, Instance.http_port_host.is_not(None)
        )
        return {int(p) for p in (await self.session.scalars(statement)).all() if p is not None}

    async def slug_taken(self, server_id: uuid.UUID, slug: str) -> bool:
        statement = select(func.count()).where(
            Instance.server_id == server_id, Instance.slug == slug
        )
        return bool(await self.session.scalar(statement))


class TemplateRepository(TenantRepository[Template]):
    model = Template
    noun = "template"

    async def name_taken(
        self, organization_id: uuid.UUID, name: str, exclude: uuid.UUID | None = None
    ) -> bool:
        statement = select(func.count()).where(
            Template.organization_id == organization_id, Template.name == name
        )
        if exclude is not None:
            statement = statement.where(Template.id != exclude)
        return bool(await self.session.scalar(statement))
