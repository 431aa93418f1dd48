from __future__ import annotations

import uuid

from sqlalchemy import func, select

from ocore.core.repository import TenantRepository
from ocore.instances.models import Instance
from ocore.servers.models import Server


class ServerRepository(TenantRepository[Server]):
    model = Server
    noun = "server"

    async def name_taken(
        self, organization_id: uuid.UUID, name: str, exclude: uuid.UUID | None = None
    ) -> bool:
        statement = select(func.count()).where(
            Server.organization_id == organization_id, Server.name == name
        )
        if exclude is not None:
            statement = statement.where(Server.id != exclude)
        return bool(await self.session.scalar(statement))

    async def count_instances(self, server_id: uuid.UUID) -> int:
        statement = select(func.count()).where(Instance.server_id == server_id)
        return int(await self.session.scalar(statement) or 0)
