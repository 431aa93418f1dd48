"""Helpers of the fault tests: waiting, and looking at the host's processes and PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from tests.conftest import Tenant
from tests.fixtures.odoo_runtime import DB_HOST, DB_PASSWORD, DB_PORT, DB_USER
from tests.hosts.helpers import pid_gone


async def wait_until(check: Any, what: str, timeout: float = 60, interval: float = 0.1) -> Any:
    """Poll the coroutine function ``check`` until it returns something truthy; returns it."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(interval)


def host_processes(*arguments: str) -> set[int]:
    """Pids of the processes (the test host is this machine) whose arguments contain each of
    ``arguments`` (Debian's pg_wrapper execs ``/usr/lib/postgresql/<v>/bin/pg_dump``)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if all(any(argument in arg for arg in argv) for argument in arguments):
            found.add(int(entry.name))
    return found


async def gone(pids: set[int]) -> bool:
    """None of ``pids`` is running (for ``wait_until``; a zombie counts as gone)."""
    return all(pid_gone(pid) for pid in pids)


async def host_databases() -> set[str]:
    """Every database on the host's PostgreSQL (the machine's shared server: not only ours)."""
    connection = await connect("postgres")
    try:
        rows = await connection.fetch("SELECT datname FROM pg_database")
    finally:
        await connection.close()
    return {row["datname"] for row in rows}


async def connect(database: str) -> asyncpg.Connection:
    return await asyncpg.connect(
        host=DB_HOST, port=DB_PORT, user=DB_USER, password=DB_PASSWORD, database=database
    )


async def sessions(database: str, condition: str) -> int:
    """Sessions on ``database`` (of the host's PostgreSQL) matching a pg_stat_activity filter."""
    connection = await connect("postgres")
    try:
        return int(
            await connection.fetchval(
                f"SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND {condition}",
                database,
            )
        )
    finally:
        await connection.close()


async def installing(database: str) -> bool:
    """The stand-in Odoo is inside a module's install transaction (its slow-install knob).

    PostgreSQL's own clients (pg_dump, psql) name themselves; the stand-in does not.
    """
    condition = (
        "state = 'idle in transaction' AND application_name = ''"
        " AND xact_start < now() - interval '300 milliseconds'"
    )
    return await sessions(database, condition) > 0


async def installed(database: str, module: str) -> Any:
    """The module's state in a database (snapshots refuse connections until let in)."""
    admin = await connect("postgres")
    try:
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
    finally:
        await admin.close()
    connection = await connect(database)
    try:
        return await connection.fetchval(
            "SELECT state FROM ir_module_module WHERE name = $1", module
        )
    finally:
        await connection.close()


async def deployment_outcome(
    api: httpx.AsyncClient, tenant: Tenant, project_id: str, deployment_id: str
) -> dict[str, Any]:
    """The deployment once it has ended, with its steps."""
    path = f"/api/projects/{project_id}/deployments/{deployment_id}"

    async def ended() -> dict[str, Any] | None:
        deployment: dict[str, Any] = (await api.get(path, headers=tenant.headers)).json()
        return deployment if deployment["status"] in ("succeeded", "failed", "cancelled") else None

    result: dict[str, Any] = await wait_until(ended, f"deployment {deployment_id}", timeout=120)
    return result
