"""Parameterized SQL on an instance database, through the host's tunnel."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ocore.core.errors import HostError
from ocore.hosts import HostConnection
from ocore.hosts.database import PgServer, create_database, open_sql, run_sql
from tests.hosts.test_database import PG, Names, database_names


@pytest.fixture
async def names() -> AsyncIterator[Names]:
    async with database_names() as name:
        yield name


HOSTILE = "'); DROP TABLE x; --"


async def test_parameters_are_stored_literally(host: HostConnection, names: Names) -> None:
    db = names("sql")
    await create_database(host, PG, db)
    await run_sql(host, PG, db, "CREATE TABLE x (id serial PRIMARY KEY, v text)")
    await run_sql(host, PG, db, "INSERT INTO x (v) VALUES ($1)", HOSTILE)
    assert await run_sql(host, PG, db, "SELECT v FROM x WHERE v = $1", HOSTILE) == [(HOSTILE,)]
    assert await run_sql(host, PG, db, "SELECT count(*) FROM x") == [(1,)]


async def test_open_sql_gives_a_connection(host: HostConnection, names: Names) -> None:
    db = names("sql")
    await create_database(host, PG, db)
    async with open_sql(host, PG, db) as conn:
        async with conn.transaction():
            await conn.execute("CREATE TABLE ir_cron (id serial, active boolean)")
            await conn.executemany(
                "INSERT INTO ir_cron (active) VALUES ($1)", [(True,), (False,), (True,)]
            )
        assert await conn.fetchval("SELECT current_database()") == db
        updated = await conn.execute("UPDATE ir_cron SET active = $1 WHERE active", False)
        assert updated == "UPDATE 2"


async def test_connecting_to_a_missing_database(host: HostConnection) -> None:
    server = PgServer(PG.host, PG.port, PG.user, "not-the-real-one-" + PG.password)
    with pytest.raises(HostError) as caught:
        async with open_sql(host, server, "dbt_missing_database"):
            pass
    message = str(caught.value)
    assert "cannot connect to database dbt_missing_database" in message
    assert server.password not in message
