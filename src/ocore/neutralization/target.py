"""The Odoo database behind an environment, and the sealed original values of its records."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ocore.core.crypto import SecretBox
from ocore.core.errors import Conflict, NotFound
from ocore.environments.models import Environment
from ocore.hosts import SSHPool
from ocore.hosts.database import PgServer, open_sql
from ocore.instances.models import Instance
from ocore.neutralization.rules import Values
from ocore.servers.hosts import connect_server
from ocore.servers.models import Server

_STATE_VERSION = 1


@dataclass(frozen=True)
class Target:
    """What reaching an environment's database needs; loaded from rows, used after."""

    instance: Instance
    server: Server


def refuse_production(environment: Environment) -> None:
    # Neutralizing production would switch off a live business: never, whatever the caller.
    if environment.environment_type == "production":
        raise Conflict(
            f"Environment {environment.name} is production: its database is never neutralized "
            "and its records cannot be toggled."
        )


async def load_target(session: AsyncSession, environment: Environment) -> Target:
    if environment.instance_id is None:
        raise Conflict(f"Environment {environment.name} has no instance, so no database.")
    instance = await session.get(Instance, environment.instance_id)
    if instance is None:
        raise Conflict(f"The instance of environment {environment.name} no longer exists.")
    server = await session.get(Server, instance.server_id)
    if server is None:
        raise NotFound(f"The server of instance {instance.slug} no longer exists.")
    return Target(instance, server)


@asynccontextmanager
async def connect(
    target: Target,
    box: SecretBox,
    pool: SSHPool,
    *,
    connect_timeout: float = 30.0,
    command_timeout: float | None = 300.0,
) -> AsyncIterator[Any]:
    """An asyncpg connection to the instance's database, through the hosts layer."""
    server = target.server
    password = box.decrypt(server.db_password_encrypted) if server.db_password_encrypted else ""
    pg = PgServer(host=server.db_host, port=server.db_port, user=server.db_user, password=password)
    host = connect_server(server, box, pool)
    async with open_sql(
        host,
        pg,
        target.instance.database_name,
        connect_timeout=connect_timeout,
        command_timeout=command_timeout,
    ) as conn:
        yield conn


def seal(box: SecretBox, table: str, values: Values) -> str:
    """Original column values (provider keys among them), encrypted for the item row."""
    return box.encrypt(json.dumps({"v": _STATE_VERSION, "table": table, "values": values}))


def unseal(box: SecretBox, token: str | None) -> Values:
    if not token:
        return {}
    data = json.loads(box.decrypt(token))
    values: Values = data.get("values", {})
    return values
