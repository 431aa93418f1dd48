"""Odoo's filestore (``<data_dir>/filestore/<db>``): copied along with its database."""

from __future__ import annotations

import posixpath
from collections.abc import Sequence

from ocore.core.errors import CommandFailed, CommandTimeout, InvalidInput
from ocore.hosts.base import DEFAULT_TIMEOUT, HostConnection
from ocore.hosts.database_core import LONG_TIMEOUT, check_database_name, failure


def filestore_path(data_dir: str, database: str) -> str:
    """Where Odoo keeps the attachments of ``database`` under its ``data_dir``."""
    if not isinstance(data_dir, str) or not data_dir.startswith("/") or "\0" in data_dir:
        raise InvalidInput(f"the data directory must be an absolute path, got {data_dir!r}")
    root = posixpath.normpath(data_dir)
    if root == "/":
        raise InvalidInput("the data directory cannot be /")
    return f"{root}/filestore/{check_database_name(database)}"


async def copy_filestore(
    host: HostConnection,
    data_dir: str,
    source_db: str,
    target_db: str,
    *,
    timeout: float | None = LONG_TIMEOUT,
) -> bool:
    """Make the target's filestore a copy of the source's; False if the source has none.

    A database Odoo has just created has no filestore yet, so a missing one
    is not an error: the target then ends up without one as well. The copy
    is made beside the target and renamed into place, so Odoo never sees a
    half-copied filestore, and a retry starts by clearing the leftovers.
    ``--reflink=auto`` makes the copy nearly free on btrfs/XFS.
    """
    source = filestore_path(data_dir, source_db)
    target = filestore_path(data_dir, target_db)
    if source == target:
        raise InvalidInput(f"cannot copy the filestore of {source_db} onto itself")
    root = posixpath.dirname(target)
    staging = f"{root}/.{target_db}.ocore-tmp"
    previous = f"{root}/.{target_db}.ocore-old"
    action = f"copying the filestore of {source_db} to {target_db}"
    await _run(host, ["rm", "-rf", "--", staging, previous], action, timeout)
    found = await host.run(["test", "-d", source], check=False)
    if found.exit_status != 0:
        await _run(host, ["rm", "-rf", "--", target], action, timeout)
        return False
    await _run(host, ["cp", "-a", "--reflink=auto", "--", source, staging], action, timeout)
    # Moved aside rather than deleted first: deleting a large tree takes a
    # while, and Odoo would find no attachments during it. No target yet is fine.
    await host.run(["mv", "-T", "--", target, previous], check=False)
    await _run(host, ["mv", "-T", "--", staging, target], action, timeout)
    await _run(host, ["rm", "-rf", "--", previous], action, timeout)
    return True


async def remove_filestore(
    host: HostConnection, data_dir: str, database: str, *, timeout: float | None = LONG_TIMEOUT
) -> None:
    """Remove a database's filestore; one that is not there is fine."""
    path = filestore_path(data_dir, database)
    await _run(host, ["rm", "-rf", "--", path], f"removing the filestore of {database}", timeout)


async def _run(
    host: HostConnection, argv: Sequence[str], action: str, timeout: float | None = DEFAULT_TIMEOUT
) -> None:
    try:
        await host.run(argv, timeout=timeout)
    except CommandFailed as exc:
        raise failure(action, argv[0], exc) from None
    except CommandTimeout:
        raise CommandTimeout(f"{action} did not finish within {timeout or 0:g}s") from None
