"""Database operations on an Odoo host, against the real PostgreSQL, over SSH and locally.

The helpers here are shared with the other ``test_database_*`` modules.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from ocore.core.errors import CommandFailed, Conflict, InvalidInput
from ocore.hosts import HostConnection, LocalHost
from ocore.hosts.base import DEFAULT_TIMEOUT, CommandResult
from ocore.hosts.database import (
    PgServer,
    check_database_name,
    clone_database,
    copy_database_between,
    copy_filestore,
    create_database,
    database_exists,
    database_size,
    drop_database,
    drop_snapshot,
    list_connections,
    open_sql,
    quote_ident,
    remove_filestore,
    restore_snapshot,
    run_sql,
    snapshot_database,
    staging_name,
)
from ocore.hosts.database_core import pg_command

_URL = make_url(
    os.environ.get(
        "OCORE_TEST_DATABASE_URL",
        "postgresql+asyncpg://ocore_test:ocore_test@127.0.0.1:5432/postgres",
    )
)
PG = PgServer(
    host=_URL.host or "127.0.0.1",
    port=_URL.port or 5432,
    user=_URL.username or "ocore_test",
    password=_URL.password or "",
)

Names = Callable[[str], str]


async def connect(database: str, **kwargs: Any) -> asyncpg.Connection:
    """A direct connection, independent of the code under test."""
    return await asyncpg.connect(
        host=PG.host, port=PG.port, user=PG.user, password=PG.password, database=database, **kwargs
    )


@asynccontextmanager
async def database_names() -> AsyncIterator[Names]:
    """Unique database names, dropped (with their staging copies) on the way out."""
    made: list[str] = []

    def name(label: str) -> str:
        made.append(f"dbt_{label}_{uuid.uuid4().hex[:10]}")
        return made[-1]

    yield name
    admin = await connect(PG.maintenance_db)
    try:
        for db in made:
            for each in (db, staging_name(db)):
                await admin.execute(f'DROP DATABASE IF EXISTS "{each}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def names() -> AsyncIterator[Names]:
    async with database_names() as name:
        yield name


async def fill(database: str, *, rows: int = 120_000) -> None:
    """An Odoo-shaped little database: a few tables, indexes, one large-ish table."""
    conn = await connect(database)
    try:
        await conn.execute(
            f"""
            CREATE TABLE res_partner (
                id serial PRIMARY KEY, name varchar NOT NULL, email varchar,
                active boolean DEFAULT true, write_date timestamp
            );
            INSERT INTO res_partner (name, email, write_date)
                SELECT 'Partner ' || i, 'p' || i || '@example.com',
                       timestamp '2024-01-01' + i * interval '1 minute'
                FROM generate_series(1, 2000) i;
            CREATE TABLE mail_message (
                id bigserial PRIMARY KEY, res_id integer REFERENCES res_partner(id),
                model varchar, body text, date timestamp
            );
            INSERT INTO mail_message (res_id, model, body, date)
                SELECT 1 + i % 2000, 'res.partner', repeat(md5(i::text), 4),
                       timestamp '2024-01-01' + i * interval '1 second'
                FROM generate_series(1, {int(rows)}) i;
            CREATE INDEX mail_message_res_id ON mail_message (res_id);
            CREATE TABLE ir_config_parameter (
                id serial PRIMARY KEY, key varchar UNIQUE, value text
            );
            INSERT INTO ir_config_parameter (key, value) VALUES ('database.uuid', 'abc');
            """
        )
    finally:
        await conn.close()


async def fingerprint(database: str) -> dict[str, tuple[int, str]]:
    """Row count and a checksum of every row, per table, plus the sequences' positions."""
    conn = await connect(database)
    try:
        result: dict[str, tuple[int, str]] = {}
        for table in ("res_partner", "mail_message", "ir_config_parameter"):
            row = await conn.fetchrow(
                f"SELECT count(*), coalesce(md5(string_agg(md5(t::text), '' ORDER BY id)), '') "
                f"FROM {table} t"
            )
            result[table] = (row[0], row[1])
        seq = await conn.fetchval("SELECT last_value FROM mail_message_id_seq")
        result["mail_message_id_seq"] = (seq, "")
        return result
    finally:
        await conn.close()


class RecordingHost:
    """A real host that also notes every command, tunnel and file transfer it is asked for."""

    def __init__(self, inner: HostConnection) -> None:
        self.inner = inner
        self.calls: list[object] = []

    async def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        check: bool = True,
        stdin: bytes | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> CommandResult:
        self.calls.append(tuple(argv))
        return await self.inner.run(
            argv, timeout=timeout, check=check, stdin=stdin, env=env, cwd=cwd
        )

    def stream(self, argv: Sequence[str], **kwargs: Any) -> Any:
        self.calls.append(tuple(argv))
        return self.inner.stream(argv, **kwargs)

    async def write_file(self, path: str, data: bytes, *, mode: int = 0o600) -> None:
        self.calls.append(("write_file", path))
        await self.inner.write_file(path, data, mode=mode)

    async def read_file(self, path: str) -> bytes:
        self.calls.append(("read_file", path))
        return await self.inner.read_file(path)

    async def upload(self, local: Path, remote: str, *, mode: int = 0o600) -> None:
        self.calls.append(("upload", remote))
        await self.inner.upload(local, remote, mode=mode)

    async def download(self, remote: str, local: Path, *, mode: int = 0o600) -> None:
        self.calls.append(("download", remote))
        await self.inner.download(remote, local, mode=mode)

    def open_tunnel(self, remote_host: str, remote_port: int) -> AbstractAsyncContextManager[int]:
        self.calls.append(("open_tunnel", remote_host, remote_port))
        return self.inner.open_tunnel(remote_host, remote_port)


def test_pg_server_keeps_the_password_out_of_repr_and_arguments() -> None:
    server = PgServer("127.0.0.1", 5432, "odoo", "s3cret-pass")
    assert "s3cret-pass" not in repr(server)
    assert server.env() == {
        "PGHOST": "127.0.0.1",
        "PGPORT": "5432",
        "PGUSER": "odoo",
        "PGPASSWORD": "s3cret-pass",
        "PGCONNECT_TIMEOUT": "15",
    }
    assert "PGPASSWORD" not in PgServer("/var/run/postgresql", 5432, "odoo").env()
    with pytest.raises(InvalidInput):
        PgServer("127.0.0.1", 0, "odoo")
    with pytest.raises(InvalidInput):
        PgServer("-h", 5432, "odoo")


BAD_NAMES = ["x; DROP DATABASE y", "-flag", "Prod", "a" * 64, "", "1db", "a-b", 'x"y', "db\n"]


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_name_validation(bad: str) -> None:
    with pytest.raises(InvalidInput):
        check_database_name(bad)
    with pytest.raises(InvalidInput):
        quote_ident(bad)
    assert check_database_name("a" * 63) == "a" * 63
    assert quote_ident("odoo_17") == '"odoo_17"'


@pytest.mark.parametrize("bad", ["x; DROP DATABASE y", "-flag", "Prod", "a" * 64])
async def test_invalid_names_are_refused_before_anything_runs(bad: str, tmp_path: Path) -> None:
    host = RecordingHost(LocalHost())
    ok = "dbt_never_created"
    calls: list[Callable[[], Any]] = [
        lambda: database_exists(host, PG, bad),
        lambda: create_database(host, PG, bad),
        lambda: create_database(host, PG, ok, template=bad),
        lambda: create_database(host, PG, ok, owner=bad),
        lambda: drop_database(host, PG, bad),
        lambda: list_connections(host, PG, bad),
        lambda: database_size(host, PG, bad),
        lambda: clone_database(host, PG, bad, ok),
        lambda: clone_database(host, PG, ok, bad),
        lambda: snapshot_database(host, PG, bad, ok),
        lambda: snapshot_database(host, PG, ok, bad),
        lambda: restore_snapshot(host, PG, bad, ok),
        lambda: restore_snapshot(host, PG, ok, bad),
        lambda: drop_snapshot(host, PG, bad),
        lambda: copy_database_between(host, PG, bad, host, PG, ok),
        lambda: copy_database_between(host, PG, ok, host, PG, bad),
        lambda: copy_filestore(host, str(tmp_path), bad, ok),
        lambda: copy_filestore(host, str(tmp_path), ok, bad),
        lambda: remove_filestore(host, str(tmp_path), bad),
        lambda: run_sql(host, PG, bad, "SELECT 1"),
    ]
    for call in calls:
        with pytest.raises(InvalidInput):
            await call()
    with pytest.raises(InvalidInput):
        async with open_sql(host, PG, bad):
            pass
    assert host.calls == []


async def test_other_invalid_arguments_are_refused(names: Names) -> None:
    host = RecordingHost(LocalHost())
    a, b = names("a"), names("b")
    with pytest.raises(InvalidInput):
        await clone_database(host, PG, a, a)
    with pytest.raises(InvalidInput):
        await clone_database(host, PG, a, b, jobs=0)
    with pytest.raises(InvalidInput):
        await clone_database(host, PG, a, b, method="fast")
    with pytest.raises(InvalidInput):
        await copy_filestore(host, "relative/dir", a, b)
    with pytest.raises(InvalidInput):
        await remove_filestore(host, "/", a)
    assert host.calls == []


async def test_create_exists_drop(host: HostConnection, names: Names) -> None:
    db, copy = names("db"), names("copy")
    assert not await database_exists(host, PG, db)
    assert await create_database(host, PG, db)
    assert await database_exists(host, PG, db)
    with pytest.raises(Conflict):
        await create_database(host, PG, db)
    assert not await create_database(host, PG, db, exist_ok=True)

    conn = await connect(db)
    try:
        # Made the way Odoo's database manager makes one.
        encoding, collate = await conn.fetchrow(
            "SELECT pg_encoding_to_char(encoding), datcollate FROM pg_database "
            "WHERE datname = current_database()"
        )
        assert (encoding, collate) == ("UTF8", "C")
        await conn.execute("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('x')")
    finally:
        await conn.close()
    await create_database(host, PG, copy, template=db, owner=PG.user)
    assert await run_sql(host, PG, copy, "SELECT v FROM kept") == [("x",)]

    await drop_database(host, PG, db)
    assert not await database_exists(host, PG, db)
    # Jobs are retried: dropping what is already gone is fine.
    await drop_database(host, PG, db)


async def test_drop_ends_open_sessions(host: HostConnection, names: Names) -> None:
    db = names("busy")
    await create_database(host, PG, db)
    conn = await connect(db, server_settings={"application_name": "odoo-worker"})
    try:
        sessions = await list_connections(host, PG, db)
        assert [s.application for s in sessions] == ["odoo-worker"]
        assert sessions[0].pid == conn.get_server_pid()
        assert sessions[0].user == PG.user
        await drop_database(host, PG, db)
        assert not await database_exists(host, PG, db)
    finally:
        conn.terminate()


async def test_a_failing_command_says_why_without_the_password(
    host: HostConnection, names: Names
) -> None:
    target = names("target")
    await create_database(host, PG, target)
    await run_sql(host, PG, target, "CREATE TABLE kept AS SELECT 42 AS answer")
    missing = names("nosnap")
    with pytest.raises(CommandFailed) as caught:
        await restore_snapshot(host, PG, missing, target)
    error = caught.value
    message = str(error)
    assert message.startswith(f"restoring snapshot {missing} failed: psql exited with status 3")
    assert f'template database "{missing}" does not exist' in message
    assert "LOCATION" not in message
    everything = " ".join([message, error.output, repr(error), repr(error.extra)])
    assert PG.password
    assert PG.password not in everything
    # The copy is made before the target is touched: a bad snapshot loses nothing.
    assert await run_sql(host, PG, target, "SELECT answer FROM kept") == [(42,)]
    assert not await database_exists(host, PG, staging_name(target))


async def test_disk_full_gets_a_clear_message(host: HostConnection, names: Names) -> None:
    db = names("full")
    await create_database(host, PG, db)
    await run_sql(
        host, PG, db, "CREATE TABLE t AS SELECT md5(i::text) AS v FROM generate_series(1, 50000) i"
    )
    # /dev/full answers every write with ENOSPC, as a full disk does.
    argv = ["pg_dump", "-Fc", "--no-sync", "-f", "/dev/full", "-d", db]
    with pytest.raises(CommandFailed) as caught:
        await pg_command(host, PG, argv, action=f"dumping database {db}")
    assert str(caught.value).startswith(
        f"dumping database {db} failed: the host ran out of disk space "
        "(pg_dump: No space left on device)."
    )
