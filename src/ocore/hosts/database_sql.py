"""Parameterized SQL on an instance's database, through a tunnel from the host."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from ocore.core.errors import HostError
from ocore.hosts.base import HostConnection
from ocore.hosts.database_core import PgServer, check_database_name, scrub

_CLOSE_TIMEOUT = 10.0


@asynccontextmanager
async def open_sql(
    host: HostConnection,
    pg: PgServer,
    dbname: str,
    *,
    connect_timeout: float = 30.0,
    command_timeout: float | None = 300.0,
) -> AsyncIterator[Any]:
    """An asyncpg connection to ``dbname``, reached through ``host``.

    The server is reached as the host sees it (``pg.host``/``pg.port``,
    which needs a TCP address, not a socket directory), so a PostgreSQL
    bound to the host's loopback works without being exposed. Queries take
    ``$1``-style parameters; errors of the statements themselves are
    asyncpg's own ``PostgresError`` subclasses, carrying the SQLSTATE.
    """
    name = check_database_name(dbname)
    async with host.open_tunnel(pg.host, pg.port) as port:
        try:
            conn = await asyncpg.connect(
                host="127.0.0.1",
                port=port,
                user=pg.user,
                password=pg.password,
                database=name,
                timeout=connect_timeout,
                command_timeout=command_timeout,
            )
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            where = f"{pg.user}@{pg.host}:{pg.port}"
            raise HostError(
                f"cannot connect to database {name} as {where} (seen from the host): "
                f"{scrub(str(exc), pg)}"
            ) from None
        try:
            yield conn
        finally:
            try:
                await asyncio.wait_for(conn.close(), _CLOSE_TIMEOUT)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                # The tunnel may already be gone; never let closing hide the real outcome.
                with contextlib.suppress(Exception):
                    conn.terminate()


async def run_sql(
    host: HostConnection, pg: PgServer, dbname: str, query: str, *args: object
) -> list[Any]:
    """Run one parameterized query and return its rows (``asyncpg.Record``)."""
    async with open_sql(host, pg, dbname) as conn:
        rows: list[Any] = await conn.fetch(query, *args)
        return rows
