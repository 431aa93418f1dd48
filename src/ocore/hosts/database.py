"""Database operations on an Odoo host: create, clone, snapshot, copy, drop, SQL.

Everything goes through a ``HostConnection``, so it works the same over SSH
and on this machine, with commands built as argument lists and database
names validated before they reach one. The code lives in ``database_core``
(names, server, psql, create/drop), ``database_copy`` (clones and
snapshots), ``database_transfer`` (copies between servers),
``database_files`` (filestores) and ``database_sql`` (asyncpg through a
tunnel); this module is the API.

Needs PostgreSQL 13+ on the host (``DROP DATABASE … WITH (FORCE)``) and its
client tools (``psql``, ``pg_dump``, ``pg_restore``) in the PATH there.
"""

from __future__ import annotations

from ocore.hosts.database_copy import (
    CloneMethod,
    CloneResult,
    Snapshot,
    clone_database,
    drop_snapshot,
    restore_snapshot,
    snapshot_database,
    staging_name,
)
from ocore.hosts.database_core import (
    LONG_TIMEOUT,
    PgConnection,
    PgServer,
    check_database_name,
    create_database,
    database_exists,
    database_size,
    drop_database,
    list_connections,
    quote_ident,
)
from ocore.hosts.database_files import copy_filestore, filestore_path, remove_filestore
from ocore.hosts.database_sql import open_sql, run_sql
from ocore.hosts.database_transfer import TransferResult, copy_database_between

__all__ = [
    "LONG_TIMEOUT",
    "CloneMethod",
    "CloneResult",
    "PgConnection",
    "PgServer",
    "Snapshot",
    "TransferResult",
    "check_database_name",
    "clone_database",
    "copy_database_between",
    "copy_filestore",
    "create_database",
    "database_exists",
    "database_size",
    "drop_database",
    "drop_snapshot",
    "filestore_path",
    "list_connections",
    "open_sql",
    "quote_ident",
    "remove_filestore",
    "restore_snapshot",
    "run_sql",
    "snapshot_database",
    "staging_name",
]
