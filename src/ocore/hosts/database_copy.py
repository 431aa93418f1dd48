"""Copies of whole databases on one server: clones and snapshots.

Every copy is built under a staging name derived from the target and only
renamed to the target once complete. So a target is either its old self or
a full copy, never half of one; a retried job finds at most a leftover
staging database, which it drops and rebuilds. An existing target is
replaced: callers decide beforehand whether it may be (production is never
a clone target).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Literal

from ocore.core.errors import CommandFailed, HostError, InvalidInput
from ocore.hosts.base import HostConnection
from ocore.hosts.database_core import (
    LONG_TIMEOUT,
    OTHER_SESSIONS,
    SQLSTATE_OBJECT_IN_USE,
    PgServer,
    check_database_name,
    create_empty_like,
    database_locale,
    database_size,
    drop_database,
    host_temp_dir,
    pg_command,
    psql,
    quote_ident,
    remove_stale_temp_dirs,
    sqlstate,
)

_log = logging.getLogger(__name__)

CloneMethod = Literal["template", "dump"]
_METHODS = ("auto", "template", "dump")
_MAX_JOBS = 32


@dataclass(frozen=True)
class CloneResult:
    method: CloneMethod
    seconds: float


@dataclass(frozen=True)
class Snapshot:
    name: str
    size_bytes: int
    method: CloneMethod
    seconds: float


def staging_name(target: str) -> str:
    """Where a copy of ``target`` is built; fixed per target so a retry finds the leftover."""
    digest = hashlib.sha256(check_database_name(target).encode()).hexdigest()[:20]
    return f"ocore_tmp_{digest}"


def check_jobs(jobs: int) -> int:
    if isinstance(jobs, bool) or not isinstance(jobs, int) or not 1 <= jobs <= _MAX_JOBS:
        raise InvalidInput(f"jobs must be an integer from 1 to {_MAX_JOBS}, got {jobs!r}")
    return jobs


async def clone_database(
    host: HostConnection,
    pg: PgServer,
    source: str,
    target: str,
    *,
    jobs: int = 2,
    method: str = "auto",
    tmp_dir: str | None = None,
    timeout: float | None = LONG_TIMEOUT,
) -> CloneResult:
    """Make ``target`` a copy of ``source`` on the same server, replacing any ``target``.

    ``auto`` copies by ``CREATE DATABASE … TEMPLATE`` when nobody is
    connected to the source (fast and exact) and by ``pg_dump -Fd -j`` /
    ``pg_restore -j`` otherwise: a production source keeps serving, its
    sessions are never ended. ``template`` fails on a busy source; ``dump``
    always dumps. ``tmp_dir`` is where the dump goes on the host.
    """
    return await _clone(
        host, pg, source, target, jobs=jobs, method=method, tmp_dir=tmp_dir, timeout=timeout
    )


async def snapshot_database(
    host: HostConnection,
    pg: PgServer,
    database: str,
    snapshot: str,
    *,
    jobs: int = 2,
    tmp_dir: str | None = None,
    timeout: float | None = LONG_TIMEOUT,
) -> Snapshot:
    """Copy ``database`` to the database ``snapshot`` (replacing an older one of that name).

    Snapshots refuse connections (``ALLOW_CONNECTIONS false``): nothing can
    make them busy, so a restore is always a template copy, and Odoo's
    database list (which skips such databases) never offers them.
    """
    result = await _clone(
        host,
        pg,
        database,
        snapshot,
        jobs=jobs,
        method="auto",
        tmp_dir=tmp_dir,
        timeout=timeout,
        allow_connections=False,
    )
    size = await database_size(host, pg, snapshot)
    return Snapshot(name=snapshot, size_bytes=size, method=result.method, seconds=result.seconds)


async def restore_snapshot(
    host: HostConnection,
    pg: PgServer,
    snapshot: str,
    target: str,
    *,
    timeout: float | None = LONG_TIMEOUT,
) -> CloneResult:
    """Replace ``target`` by a copy of ``snapshot``; ``target``'s sessions are ended.

    The copy is complete before ``target`` is dropped, so a missing snapshot
    leaves ``target`` as it was.
    """
    return await _clone(
        host,
        pg,
        snapshot,
        target,
        jobs=1,
        method="template",
        timeout=timeout,
        action=f"restoring snapshot {snapshot}",
    )


async def drop_snapshot(host: HostConnection, pg: PgServer, snapshot: str) -> None:
    await drop_database(host, pg, snapshot)


async def _clone(
    host: HostConnection,
    pg: PgServer,
    source: str,
    target: str,
    *,
    jobs: int,
    method: str,
    tmp_dir: str | None = None,
    timeout: float | None,
    allow_connections: bool = True,
    action: str | None = None,
) -> CloneResult:
    check_database_name(source)
    check_database_name(target)
    check_jobs(jobs)
    if method not in _METHODS:
        raise InvalidInput(f"unknown clone method {method!r}; use one of {', '.join(_METHODS)}")
    if source == target:
        raise InvalidInput(f"cannot clone database {source} onto itself")
    started = time.monotonic()
    staging = staging_name(target)
    action = action or f"copying database {source}"
    await remove_stale_temp_dirs(host, tmp_dir, copy_of=staging)
    try:
        if method != "dump" and await _template_clone(
            host,
            pg,
            source,
            staging,
            target,
            fallback=method == "auto",
            allow_connections=allow_connections,
            action=action,
            timeout=timeout,
        ):
            return CloneResult(method="template", seconds=time.monotonic() - started)
        await _dump_restore(host, pg, source, staging, jobs=jobs, tmp_dir=tmp_dir, timeout=timeout)
        await install_copy(host, pg, staging, target, allow_connections=allow_connections)
    except BaseException:
        await discard_copy(host, pg, staging)
        raise
    return CloneResult(method="dump", seconds=time.monotonic() - started)


async def discard_copy(host: HostConnection, pg: PgServer, staging: str) -> None:
    # A retry would drop it anyway, but a job that is never retried must not
    # leave a database-sized leftover on the host's disk.
    try:
        await drop_database(host, pg, staging)
    except HostError as exc:
        _log.warning("could not drop the unfinished copy %s: %s", staging, exc)


async def _template_clone(
    host: HostConnection,
    pg: PgServer,
    source: str,
    staging: str,
    target: str,
    *,
    fallback: bool,
    allow_connections: bool,
    action: str,
    timeout: float | None,
) -> bool:
    """Copy by template and put the copy in place; False if the source was busy and
    ``fallback`` allows a dump instead.

    One psql run does it all (check, copy, swap): on a small database the
    round trips, not the copy, are what a clone costs.
    """
    copy = (
        f"DROP DATABASE IF EXISTS {quote_ident(staging)} WITH (FORCE);\n"
        f"CREATE DATABASE {quote_ident(staging)} TEMPLATE {quote_ident(source)};\n"
        + _install_script(staging, target, allow_connections=allow_connections)
        + "\n\\echo copied\n"
    )
    if fallback:
        # Checked first because a template copy of a busy source fails only after
        # PostgreSQL has waited 5 s for the source's sessions to go away.
        copy = (
            f"SELECT NOT EXISTS (SELECT 1 {OTHER_SESSIONS}) AS idle \\gset\n"
            f"\\if :idle\n{copy}\\else\n\\echo busy\n\\endif\n"
        )
    try:
        out = await psql(host, pg, copy, variables={"db": source}, action=action, timeout=timeout)
    except CommandFailed as exc:
        if fallback and sqlstate(exc) == SQLSTATE_OBJECT_IN_USE:
            # Someone connected between the check and the copy.
            return False
        raise
    return out.strip() == "copied"


async def _dump_restore(
    host: HostConnection,
    pg: PgServer,
    source: str,
    staging: str,
    *,
    jobs: int,
    tmp_dir: str | None,
    timeout: float | None,
) -> None:
    async def make_staging() -> None:
        await create_empty_like(host, pg, staging, await database_locale(host, pg, source))

    async with host_temp_dir(host, tmp_dir, copy_of=staging, role="dump") as tmp:
        dump = f"{tmp}/dump"
        # The empty database is made while the dump runs: free time off every clone.
        await _together(
            pg_command(
                host,
                pg,
                # --no-sync: the dump is read back at once and then deleted.
                ["pg_dump", "-Fd", "-j", str(jobs), "--no-sync", "-f", dump, "-d", source],
                action=f"dumping database {source}",
                timeout=timeout,
            ),
            make_staging(),
        )
        await restore_dump(host, pg, dump, staging, jobs=jobs, timeout=timeout, privileges=True)


async def _together(*steps: Awaitable[object]) -> None:
    """Run steps at once; the first error is raised as it is (not in an ExceptionGroup,
    as a TaskGroup would) once the other steps are cancelled and finished."""
    tasks = [asyncio.ensure_future(step) for step in steps]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def restore_dump(
    host: HostConnection,
    pg: PgServer,
    dump: str,
    database: str,
    *,
    jobs: int,
    timeout: float | None,
    privileges: bool,
) -> None:
    # --no-owner: everything belongs to the role ocore connects as, which is the
    # role Odoo uses; --exit-on-error: a partial restore must not become a target.
    argv = ["pg_restore", "-j", str(jobs), "--no-owner", "--exit-on-error"]
    if not privileges:
        # Another server need not have the source's roles to grant to.
        argv.append("--no-privileges")
    argv += ["-d", database, dump]
    await pg_command(host, pg, argv, action=f"restoring into database {database}", timeout=timeout)


def _install_script(staging: str, target: str, *, allow_connections: bool) -> str:
    lines = []
    if not allow_connections:
        lines.append(f"ALTER DATABASE {quote_ident(staging)} ALLOW_CONNECTIONS false;")
    lines.append(f"DROP DATABASE IF EXISTS {quote_ident(target)} WITH (FORCE);")
    lines.append(f"ALTER DATABASE {quote_ident(staging)} RENAME TO {quote_ident(target)};")
    return "\n".join(lines)


async def install_copy(
    host: HostConnection, pg: PgServer, staging: str, target: str, *, allow_connections: bool
) -> None:
    """Swap the finished copy in: the target is gone only for the instant between two statements."""
    script = _install_script(staging, target, allow_connections=allow_connections)
    await psql(host, pg, script, action=f"putting the copy in place as {target}")


__all__ = [
    "CloneMethod",
    "CloneResult",
    "Snapshot",
    "clone_database",
    "drop_snapshot",
    "restore_snapshot",
    "snapshot_database",
    "staging_name",
]
