"""Rows a test needs that are not what it tests (made through the ORM, not the API)."""

from __future__ import annotations

import uuid

from ocore.core.db import Database
from ocore.instances.models import Domain, Instance
from ocore.servers.models import Server
from tests.conftest import Tenant


async def make_instance(database: Database, tenant: Tenant, slug: str, status: str = "running"):
    async with database.sessionmaker() as session:
        server = Server(
            organization_id=tenant.organization_id,
            name=f"s-{slug}",
            host="localhost",
            username="root",
            is_local=True,
            runtime="native",
        )
        session.add(server)
        await session.flush()
        instance = Instance(
            organization_id=tenant.organization_id,
            server_id=server.id,
            name=slug.title(),
            slug=slug,
            status=status,
            odoo_version="17.0",
            database_name=slug.replace("-", "_"),
        )
        session.add(instance)
        await session.flush()
        session.add(
            Domain(
                organization_id=tenant.organization_id,
                instance_id=instance.id,
                domain=f"{slug}-{uuid.uuid4().hex[:6]}.example.com",
                is_primary=True,
            )
        )
        await session.commit()
        return instance
