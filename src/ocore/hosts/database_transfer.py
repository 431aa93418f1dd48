"""Copies of a database from one server to another."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from ocore.hosts.base import HostConnection
from ocore.hosts.database_copy import (
    check_jobs,
    discard_copy,
    install_copy,
    restore_dump,
    staging_name,
)
from ocore.hosts.database_core import (
    LONG_TIMEOUT,
    PgServer,
    check_database_name,
    create_empty_like,
    database_locale,
    host_temp_dir,
    pg_command,
    remove_stale_temp_dirs,
)
from ocore.hosts.local import LocalHost


@dataclass(frozen=True)
class TransferResult:
    seconds: float
    dump_bytes: int


async def copy_database_between(
    source_host: HostConnection,
    source_pg: PgServer,
    source_db: str,
    target_host: HostConnection,
    target_pg: PgServer,
    target_db: str,
    *,
    jobs: int = 2,
    source_tmp_dir: str | None = None,
    target_tmp_dir: str | None = None,
    local_tmp_dir: Path | None = None,
    timeout: float | None = LONG_TIMEOUT,
) -> TransferResult:
    """Copy a database to another server, replacing ``target_db`` there.

    The host interface has no pipe between two hosts, so the dump
    (``pg_dump -Fc``, compressed) travels source host → this machine →
    target host as files; every copy of it is deleted afterwards. Grants
    are left out: the target server need not have the source's roles.
    """
    check_database_name(source_db)
    check_database_name(target_db)
    check_jobs(jobs)
    started = time.monotonic()
    staging = staging_name(target_db)
    locale = await database_locale(source_host, source_pg, source_db)
    this_machine = LocalHost()
    local_parent = str(local_tmp_dir) if local_tmp_dir is not None else None
    for host, parent in (
        (this_machine, local_parent),
        (source_host, source_tmp_dir),
        (target_host, target_tmp_dir),
    ):
        await remove_stale_temp_dirs(host, parent, copy_of=staging)
    async with host_temp_dir(this_machine, local_parent, copy_of=staging, role="via") as via:
        local_dump = Path(via) / "db.dump"
        # Each copy of the dump goes as soon as the next one exists: three full
        # copies at once may not fit anywhere.
        async with host_temp_dir(
            source_host, source_tmp_dir, copy_of=staging, role="from"
        ) as src_tmp:
            src_dump = f"{src_tmp}/db.dump"
            await pg_command(
                source_host,
                source_pg,
                ["pg_dump", "-Fc", "--no-sync", "-f", src_dump, "-d", source_db],
                action=f"dumping database {source_db}",
                timeout=timeout,
            )
            await source_host.download(src_dump, local_dump)
        size = (await asyncio.to_thread(local_dump.stat)).st_size
        try:
            async with host_temp_dir(
                target_host, target_tmp_dir, copy_of=staging, role="to"
            ) as dst_tmp:
                dst_dump = f"{dst_tmp}/db.dump"
                await target_host.upload(local_dump, dst_dump)
                await asyncio.to_thread(local_dump.unlink)
                await create_empty_like(target_host, target_pg, staging, locale)
                await restore_dump(
                    target_host,
                    target_pg,
                    dst_dump,
                    staging,
                    jobs=jobs,
                    timeout=timeout,
                    privileges=False,
                )
            await install_copy(target_host, target_pg, staging, target_db, allow_connections=True)
        except BaseException:
            await discard_copy(target_host, target_pg, staging)
            raise
    return TransferResult(seconds=time.monotonic() - started, dump_bytes=size)
