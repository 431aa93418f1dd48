"""Clones, snapshots and copies between servers, with the data compared row by row."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from ocore.core.errors import CommandFailed
from ocore.hosts import HostConnection, LocalHost, SSHPool
from ocore.hosts.base import HostTarget
from ocore.hosts.database import (
    clone_database,
    copy_database_between,
    create_database,
    database_exists,
    drop_snapshot,
    restore_snapshot,
    run_sql,
    snapshot_database,
    staging_name,
)
from tests.hosts.test_database import (
    PG,
    Names,
    connect,
    database_names,
    fill,
    fingerprint,
)


@pytest.fixture
async def names() -> AsyncIterator[Names]:
    async with database_names() as name:
        yield name


async def test_clone_of_an_idle_database_is_a_template_copy(
    host: HostConnection, names: Names
) -> None:
    source, target = names("src"), names("dst")
    await create_database(host, PG, source)
    await fill(source)
    result = await clone_database(host, PG, source, target)
    assert result.method == "template"
    assert result.seconds > 0
    assert await fingerprint(target) == await fingerprint(source)
    assert not await database_exists(host, PG, staging_name(target))


async def test_clone_of_a_busy_source_dumps_and_leaves_it_serving(
    host: HostConnection, names: Names, tmp_path: Path
) -> None:
    source, target = names("prod"), names("staging")
    await create_database(host, PG, source)
    await fill(source)
    expected = await fingerprint(source)
    production = await connect(source)
    try:
        pid = production.get_server_pid()
        result = await clone_database(host, PG, source, target, jobs=3, tmp_dir=str(tmp_path))
        assert result.method == "dump"
        # The same session, still there and still able to write.
        assert production.get_server_pid() == pid
        await production.execute("INSERT INTO ir_config_parameter (key, value) VALUES ('a', 'b')")
        assert await production.fetchval("SELECT count(*) FROM ir_config_parameter") == 2
    finally:
        await production.close()
    assert await fingerprint(target) == expected
    # The dump directory went away with the job.
    assert os.listdir(tmp_path) == []


async def test_a_retried_clone_removes_the_dump_a_dead_attempt_left(
    host: HostConnection, names: Names, tmp_path: Path
) -> None:
    source, target = names("prod"), names("staging")
    await create_database(host, PG, source)
    await fill(source, rows=100)
    # What a worker killed mid-dump leaves: its clean-up never ran.
    left = tmp_path / f"ocore-pg.{staging_name(target)}.dump.Abc123XyZ0"
    (left / "dump").mkdir(parents=True)
    (left / "dump" / "toc.dat").write_bytes(b"x" * 1000)
    # Not this copy's, or not a directory of ours: kept.
    other = tmp_path / f"ocore-pg.{staging_name(names('other'))}.dump.Abc123XyZ0"
    other.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep").write_text("kept")
    (tmp_path / f"ocore-pg.{staging_name(target)}.dump.Symlink000").symlink_to(elsewhere)

    result = await clone_database(host, PG, source, target, method="dump", tmp_dir=str(tmp_path))
    assert result.method == "dump"
    assert sorted(os.listdir(tmp_path)) == sorted(
        [other.name, "elsewhere", f"ocore-pg.{staging_name(target)}.dump.Symlink000"]
    )
    assert (elsewhere / "keep").read_text() == "kept"


async def test_clone_forced_to_dump(names: Names) -> None:
    host = LocalHost()
    source, target = names("src"), names("dst")
    await create_database(host, PG, source)
    await fill(source, rows=5000)
    result = await clone_database(host, PG, source, target, method="dump", jobs=1)
    assert result.method == "dump"
    assert await fingerprint(target) == await fingerprint(source)


async def test_template_only_clone_refuses_a_busy_source(names: Names) -> None:
    host = LocalHost()
    source, target = names("src"), names("dst")
    await create_database(host, PG, source)
    production = await connect(source)
    try:
        with pytest.raises(CommandFailed) as caught:
            await clone_database(host, PG, source, target, method="template")
        assert "is being accessed by other users" in str(caught.value)
        assert await production.fetchval("SELECT 1") == 1
    finally:
        await production.close()
    assert not await database_exists(host, PG, target)
    assert not await database_exists(host, PG, staging_name(target))


@pytest.mark.parametrize("method", ["auto", "dump"])
async def test_clone_redone_after_a_half_done_attempt(
    host: HostConnection, names: Names, method: str
) -> None:
    source, target = names("src"), names("dst")
    await create_database(host, PG, source)
    await fill(source, rows=5000)
    # What a crashed attempt leaves: a partial staging copy, and an old target.
    for leftover in (staging_name(target), target):
        await create_database(host, PG, leftover)
        await run_sql(host, PG, leftover, "CREATE TABLE junk AS SELECT 1 AS x")
    result = await clone_database(host, PG, source, target, method=method)
    assert result.method == ("template" if method == "auto" else "dump")
    assert await fingerprint(target) == await fingerprint(source)
    assert await run_sql(host, PG, target, "SELECT to_regclass('junk') IS NULL") == [(True,)]
    assert not await database_exists(host, PG, staging_name(target))
    # And once more, over the finished target, which is replaced by a fresh copy.
    await run_sql(host, PG, source, "DELETE FROM ir_config_parameter")
    await clone_database(host, PG, source, target, method=method)
    assert await fingerprint(target) == await fingerprint(source)


@pytest.mark.parametrize("busy", [False, True], ids=["idle", "busy"])
async def test_snapshot_then_restore_brings_the_old_data_back(
    host: HostConnection, names: Names, busy: bool
) -> None:
    db, snap = names("db"), names("snap")
    await create_database(host, PG, db)
    await fill(db, rows=20_000)
    before = await fingerprint(db)
    session = await connect(db) if busy else None
    try:
        snapshot = await snapshot_database(host, PG, db, snap)
    finally:
        if session is not None:
            await session.close()
    assert snapshot.name == snap
    assert snapshot.method == ("dump" if busy else "template")
    assert snapshot.size_bytes > 2_000_000
    # Snapshots take no sessions, so nothing can keep one from being a template.
    with pytest.raises(asyncpg.PostgresError, match="not currently accepting connections"):
        await connect(snap)

    await run_sql(host, PG, db, "DELETE FROM mail_message WHERE id % 2 = 0")
    await run_sql(host, PG, db, "UPDATE res_partner SET name = 'changed'")
    assert await fingerprint(db) != before

    odoo = await connect(db)
    try:
        result = await restore_snapshot(host, PG, snap, db)
        assert result.method == "template"
        # The restore ended the sessions on the database it replaced.
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
            await odoo.fetchval("SELECT 1")
    finally:
        odoo.terminate()
    assert await fingerprint(db) == before
    # The restored database takes connections again; the snapshot stays for next time.
    assert await database_exists(host, PG, snap)
    await restore_snapshot(host, PG, snap, db)

    await drop_snapshot(host, PG, snap)
    assert not await database_exists(host, PG, snap)
    await drop_snapshot(host, PG, snap)


async def test_copy_between_servers(
    pool: SSHPool, ssh_target: HostTarget, names: Names, tmp_path: Path
) -> None:
    # Two hosts (one over SSH, one local) and two names on the one test server
    # stand in for two servers: the dump still goes host → here → host as files.
    source_host, target_host = pool.connection(ssh_target), LocalHost()
    source, target = names("prod"), names("copy")
    await create_database(source_host, PG, source)
    await fill(source, rows=20_000)
    await run_sql(source_host, PG, source, "GRANT SELECT ON res_partner TO PUBLIC")
    await create_database(target_host, PG, target)
    await run_sql(target_host, PG, target, "CREATE TABLE junk AS SELECT 1 AS x")
    dirs = {name: tmp_path / name for name in ("source", "target", "local")}
    for path in dirs.values():
        path.mkdir()
    busy = await connect(source)
    try:
        result = await copy_database_between(
            source_host,
            PG,
            source,
            target_host,
            PG,
            target,
            source_tmp_dir=str(dirs["source"]),
            target_tmp_dir=str(dirs["target"]),
            local_tmp_dir=dirs["local"],
        )
        assert await busy.fetchval("SELECT count(*) FROM res_partner") == 2000
    finally:
        await busy.close()
    assert result.dump_bytes > 100_000
    assert await fingerprint(target) == await fingerprint(source)
    assert await run_sql(target_host, PG, target, "SELECT to_regclass('junk') IS NULL") == [(True,)]
    assert all(os.listdir(path) == [] for path in dirs.values())
    assert not await database_exists(target_host, PG, staging_name(target))
