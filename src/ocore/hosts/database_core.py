"""The PostgreSQL client side of an Odoo host: names, the server, psql and its errors.

Every statement runs as ``psql`` (or ``pg_dump``/``pg_restore``) on the host
through its ``HostConnection``, so the host's PostgreSQL is reached exactly
as Odoo reaches it, whether that is a loopback port, another machine or a
unix socket directory. Identifiers are validated before they reach a
command; values travel as psql variables (``-v name=value``, used as
``:'name'``), which psql quotes itself.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ocore.core.errors import CommandFailed, CommandTimeout, Conflict, HostError, InvalidInput
from ocore.hosts import _command as cmd
from ocore.hosts.base import DEFAULT_TIMEOUT, CommandResult, HostConnection

_log = logging.getLogger(__name__)

# Odoo's own database names are free-form, but ours reach command lines and
# DDL: lower case, a letter first (so never an option), within NAMEDATALEN.
_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
_SQLSTATE = re.compile(r"ERROR:\s+([0-9A-Z]{5}):")
_PSQL_PREFIX = re.compile(r"^psql:<stdin>:\d+:\s*")
_TEMP_DIR = re.compile(r"/[^\n]*/ocore-pg\.[a-z][a-z0-9_]{0,62}\.[a-z]+\.[A-Za-z0-9]{10}")
_TEMP_ROLE = re.compile(r"[a-z]{1,16}")
# Only directories of the running user; find neither follows nor matches symlinks.
_STALE_TEMP_DIRS = (
    'dir=${1:-${TMPDIR:-/tmp}}; find "$dir" -mindepth 1 -maxdepth 1 -type d -user "$(id -u)" '
    '-name "ocore-pg.$2.*" -exec rm -rf -- {} +'
)
_DISK_FULL = "No space left on device"
_ERROR_LINES = 6

# Long enough for a dump or restore of a large production database; a hung
# command (waiting on a lock) still ends some day and the job can report it.
LONG_TIMEOUT = 6 * 3600.0

SQLSTATE_DUPLICATE_DATABASE = "42P04"
SQLSTATE_OBJECT_IN_USE = "55006"

# The sessions on database :'db' that keep it from being a template; autovacuum
# is left out because CREATE DATABASE ends it by itself.
OTHER_SESSIONS = (
    "FROM pg_stat_activity WHERE datname = :'db' AND pid <> pg_backend_pid() "
    "AND backend_type IS DISTINCT FROM 'autovacuum worker'"
)


def check_database_name(name: str, what: str = "database name") -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInput(
            f"invalid {what} {name!r}: use 1 to 63 lower-case letters, digits and "
            "underscores, starting with a letter"
        )
    return name


def quote_ident(name: str) -> str:
    """``"name"`` for DDL that cannot take parameters; only ever a validated name."""
    return '"' + check_database_name(name, "identifier") + '"'


@dataclass(frozen=True)
class PgServer:
    """The PostgreSQL of an Odoo host, as seen from that host.

    ``host`` is what Odoo's ``db_host`` would be: a name, an address or a
    unix socket directory. The password stays out of ``repr`` and is only
    ever handed to commands through their environment.
    """

    host: str
    port: int
    user: str
    password: str = field(default="", repr=False)
    # Where psql connects for statements about other databases (CREATE, DROP).
    maintenance_db: str = "postgres"

    def __post_init__(self) -> None:
        if not self.host or "\0" in self.host or self.host.startswith("-"):
            raise InvalidInput(f"invalid PostgreSQL host {self.host!r}")
        if isinstance(self.port, bool) or not isinstance(self.port, int):
            raise InvalidInput(f"invalid PostgreSQL port {self.port!r}")
        if not 0 < self.port < 65536:
            raise InvalidInput(f"invalid PostgreSQL port {self.port!r}")
        if not self.user or "\0" in self.user or self.user.startswith("-"):
            raise InvalidInput(f"invalid PostgreSQL user {self.user!r}")
        if "\0" in self.password:
            raise InvalidInput("the PostgreSQL password must not contain NUL bytes")
        check_database_name(self.maintenance_db, "maintenance database name")

    def env(self) -> dict[str, str]:
        """Connection settings for psql/pg_dump/pg_restore; the database is always an argument."""
        env = {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGCONNECT_TIMEOUT": "15",
        }
        if self.password:
            env["PGPASSWORD"] = self.password
        return env


@dataclass(frozen=True)
class PgConnection:
    """One session connected to a database (fields of other roles' sessions may be None)."""

    pid: int
    user: str | None
    application: str | None
    client: str | None
    state: str | None
    since: datetime | None


@dataclass(frozen=True)
class DbLocale:
    """What a copy made from ``template0`` must repeat to sort and compare like its source."""

    encoding: str
    collate: str
    ctype: str


def scrub(text: str, pg: PgServer | None) -> str:
    # Tools never print the password; this only guards against one that someday does.
    # Very short passwords are left alone: masking them would shred the message.
    if pg is not None and len(pg.password) >= 4:
        return text.replace(pg.password, "***")
    return text


def sqlstate(error: CommandFailed) -> str | None:
    """The SQLSTATE of the statement that failed (psql runs with VERBOSITY=verbose)."""
    found = _SQLSTATE.search(error.output)
    return found.group(1) if found else None


def _error_tail(output: str) -> str:
    lines = []
    for raw in output.splitlines():
        line = _PSQL_PREFIX.sub("", raw.strip())
        # Verbose mode names the server's C function; noise to whoever reads the job.
        if line and not line.startswith("LOCATION:"):
            lines.append(line)
    return "\n".join(lines[-_ERROR_LINES:])


def failure(
    action: str, program: str, error: CommandFailed, pg: PgServer | None = None
) -> CommandFailed:
    """A ``CommandFailed`` that says what ocore was doing, which tool failed and why."""
    output = scrub(error.output, pg)
    tail = _error_tail(output)
    if _DISK_FULL in output:
        detail = (
            f"{action} failed: the host ran out of disk space ({program}: {_DISK_FULL}). "
            "Free space on the host (PostgreSQL's data directory, Odoo's data directory "
            "and the temporary directory) and retry."
        )
    else:
        status = error.exit_status
        if status is not None and status < 0:
            how = f"was killed by signal {-status}"
        else:
            how = f"exited with status {status}"
        detail = f"{action} failed: {program} {how}" + (f":\n{tail}" if tail else "")
    return CommandFailed(detail, exit_status=error.exit_status, output=output)


async def pg_command(
    host: HostConnection,
    pg: PgServer,
    argv: Sequence[str],
    *,
    action: str,
    stdin: bytes | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
) -> CommandResult:
    """Run a PostgreSQL client tool with the server's credentials in its environment."""
    try:
        return await host.run(argv, env=pg.env(), stdin=stdin, timeout=timeout)
    except CommandFailed as exc:
        # ``from None``: the original carries the same output, unscrubbed.
        raise failure(action, argv[0], exc, pg) from None
    except CommandTimeout:
        raise CommandTimeout(
            f"{action} did not finish within {timeout or 0:g}s; {argv[0]} was killed"
        ) from None


async def psql(
    host: HostConnection,
    pg: PgServer,
    script: str,
    *,
    action: str,
    variables: Mapping[str, str] | None = None,
    database: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
) -> str:
    """Run a script (statements one by one, outside any transaction); returns unaligned output.

    Read from stdin rather than ``-c`` so psql sends each statement on its
    own (``CREATE``/``DROP DATABASE`` refuse to share an implicit
    transaction) and so ``:'var'`` interpolation applies.
    """
    argv = ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose"]
    for name, value in (variables or {}).items():
        argv += ["-v", f"{name}={value}"]
    argv += ["-d", check_database_name(database or pg.maintenance_db), "-f", "-"]
    # Notices ("does not exist, skipping") would crowd the real error out of a message.
    script = "SET client_min_messages = warning;\n" + script
    result = await pg_command(host, pg, argv, action=action, stdin=script.encode(), timeout=timeout)
    return result.stdout


async def database_exists(host: HostConnection, pg: PgServer, name: str) -> bool:
    check_database_name(name)
    out = await psql(
        host,
        pg,
        "SELECT count(*) FROM pg_database WHERE datname = :'db';",
        variables={"db": name},
        action=f"checking whether database {name} exists",
    )
    return out.strip() == "1"


async def create_database(
    host: HostConnection,
    pg: PgServer,
    name: str,
    *,
    template: str | None = None,
    owner: str | None = None,
    exist_ok: bool = False,
) -> bool:
    """Create ``name``; returns False when it existed and ``exist_ok`` allowed that.

    Without a template the database is made the way Odoo's database manager
    makes one: from ``template0``, UTF8, ``LC_COLLATE 'C'``.
    """
    parts = [f"CREATE DATABASE {quote_ident(name)}"]
    if owner is not None:
        parts.append(f"OWNER {quote_ident(owner)}")
    if template is None:
        parts.append("TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C'")
    else:
        parts.append(f"TEMPLATE {quote_ident(template)}")
    try:
        await psql(host, pg, " ".join(parts) + ";", action=f"creating database {name}")
    except CommandFailed as exc:
        if sqlstate(exc) != SQLSTATE_DUPLICATE_DATABASE:
            raise
        if not exist_ok:
            raise Conflict(f"database {name} already exists") from None
        return False
    return True


async def drop_database(
    host: HostConnection, pg: PgServer, name: str, *, timeout: float | None = DEFAULT_TIMEOUT
) -> None:
    """Drop ``name``, ending its sessions first; a database that is not there is fine."""
    # WITH (FORCE) needs PostgreSQL 13+; it ends the sessions and drops in one step,
    # with no window for a reconnecting Odoo worker to slip in between.
    await psql(
        host,
        pg,
        f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE);",
        action=f"dropping database {name}",
        timeout=timeout,
    )


async def list_connections(host: HostConnection, pg: PgServer, name: str) -> list[PgConnection]:
    """The sessions on ``name``: while there are any, it cannot be copied by template."""
    check_database_name(name)
    out = await psql(
        host,
        pg,
        f"""
        SELECT coalesce(json_agg(json_build_object(
            'pid', pid, 'user', usename, 'application', application_name,
            'client', host(client_addr), 'state', state, 'since', backend_start
        ) ORDER BY pid), '[]')
        {OTHER_SESSIONS};
        """,
        variables={"db": name},
        action=f"listing the sessions of database {name}",
    )
    rows: list[dict[str, Any]] = json.loads(out)
    return [
        PgConnection(
            pid=int(row["pid"]),
            user=row["user"],
            application=row["application"],
            client=row["client"],
            state=row["state"],
            since=datetime.fromisoformat(row["since"]) if row["since"] else None,
        )
        for row in rows
    ]


async def database_size(host: HostConnection, pg: PgServer, name: str) -> int:
    check_database_name(name)
    out = await psql(
        host,
        pg,
        "SELECT pg_database_size(:'db');",
        variables={"db": name},
        action=f"measuring database {name}",
    )
    return int(out.strip())


async def database_locale(host: HostConnection, pg: PgServer, name: str) -> DbLocale:
    check_database_name(name)
    out = await psql(
        host,
        pg,
        """
        SELECT json_build_object('encoding', pg_encoding_to_char(encoding),
                                 'collate', datcollate, 'ctype', datctype)
        FROM pg_database WHERE datname = :'db';
        """,
        variables={"db": name},
        action=f"reading the encoding of database {name}",
    )
    if not out.strip():
        raise CommandFailed(
            f"reading the encoding of database {name} failed: database {name} does not exist",
            exit_status=None,
        )
    row = json.loads(out)
    return DbLocale(encoding=row["encoding"], collate=row["collate"], ctype=row["ctype"])


async def create_empty_like(
    host: HostConnection, pg: PgServer, name: str, locale: DbLocale
) -> None:
    """(Re)create ``name`` empty, to restore a dump of a database with ``locale`` into."""
    await psql(
        host,
        pg,
        f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE);\n"
        f"CREATE DATABASE {quote_ident(name)} TEMPLATE template0 "
        "ENCODING :'enc' LC_COLLATE :'coll' LC_CTYPE :'ctype';",
        variables={"enc": locale.encoding, "coll": locale.collate, "ctype": locale.ctype},
        action=f"creating database {name}",
    )


async def remove_stale_temp_dirs(host: HostConnection, parent: str | None, *, copy_of: str) -> None:
    """Remove the temporary directories an earlier attempt at the same copy left.

    A worker killed mid-dump never ran its clean-up, and a dump can be as
    large as the database. ``copy_of`` is fixed per target (``staging_name``),
    and one job at a time copies to a target, so no live copy is touched.
    """
    where = cmd.check_path(parent, "temporary directory") if parent else ""
    await host.run(
        ["sh", "-c", _STALE_TEMP_DIRS, "ocore-stale-dirs", where, check_database_name(copy_of)],
        timeout=600,
    )


@asynccontextmanager
async def host_temp_dir(
    host: HostConnection, parent: str | None, *, copy_of: str, role: str
) -> AsyncIterator[str]:
    """A private (0700) directory on the host, removed afterwards whatever happens.

    ``parent`` lets a caller put large dumps on a volume with room for them;
    by default it is the host's ``$TMPDIR`` or ``/tmp``. The name carries the
    database being made (``copy_of``) and the directory's ``role`` in that
    copy, for ``remove_stale_temp_dirs``.
    """
    where = f"--tmpdir={cmd.check_path(parent, 'temporary directory')}" if parent else "--tmpdir"
    if not _TEMP_ROLE.fullmatch(role):
        raise ValueError(f"invalid temporary directory role {role!r}")
    name = f"ocore-pg.{check_database_name(copy_of)}.{role}."
    result = await host.run(["mktemp", "-d", where, name + "XXXXXXXXXX"])
    path = result.stdout.strip()
    # It is about to be handed to ``rm -rf``: be sure it is what mktemp was asked for.
    if not _TEMP_DIR.fullmatch(path) or f"/{name}" not in path:
        raise HostError(f"mktemp on the host returned an unexpected path {path!r}")
    try:
        yield path
    finally:
        await remove_tree(host, path)


async def remove_tree(host: HostConnection, path: str) -> None:
    """Best effort: a failed clean-up is logged, never allowed to hide the real outcome."""
    try:
        await host.run(["rm", "-rf", "--", cmd.check_path(path)], timeout=600)
    except HostError as exc:
        _log.warning("could not remove %s on the host: %s", path, exc)
