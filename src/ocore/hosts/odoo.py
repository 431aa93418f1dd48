"""odoo.conf rendering and odoo-bin command lines (Odoo 16.0 - 18.0).

Every value that ends up in ``odoo.conf`` or on an ``odoo-bin`` command line
is validated first: values come from users (database names, passwords,
environment settings), and a newline in one of them would let it add options
of its own (``admin_passwd``, ``addons_path``...) to the file.
"""

from __future__ import annotations

import configparser
import ipaddress
import posixpath
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ocore.core.errors import InvalidInput

SUPPORTED_VERSIONS = ("16.0", "17.0", "18.0")
# odoo/tools/config.py: the choices of --log-level.
LOG_LEVELS = (
    "info",
    "debug_rpc",
    "warn",
    "test",
    "critical",
    "runbot",
    "debug_sql",
    "error",
    "debug",
    "debug_rpc_answer",
    "notset",
)
GIB = 1024**3

_MODULE = re.compile(r"[a-z0-9_]+")
# odoo.service.db: DB_NAME_RE, plus PostgreSQL's 63-byte identifier limit.
_DB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_DB_USER = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,62}")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*")
# One --test-tags item: [-][tag][/module][:class][.method] (odoo/tests/tag_selector.py).
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_TEST_TAG = re.compile(rf"[-+]?(\*|{_IDENT})?(/[a-z0-9_]+)?(:{_IDENT})?(\.{_IDENT})?")
# Odoo's config loader turns these strings into booleans/None: a password
# "False" would silently become "no password".
_RESERVED = frozenset({"True", "true", "False", "false", "None"})


def _invalid(name: str, message: str) -> InvalidInput:
    return InvalidInput(f"{name}: {message}", field=name)


def check_text(name: str, value: str, *, max_len: int = 1024) -> str:
    """A single-line value configparser reads back unchanged.

    Control characters (newlines above all) could start a new option or
    section; surrounding whitespace is stripped by configparser; the
    reserved words are turned into booleans by Odoo.
    """
    if not isinstance(value, str):
        raise _invalid(name, f"must be a string, got {type(value).__name__}")
    if not value:
        raise _invalid(name, "must not be empty")
    if len(value) > max_len:
        raise _invalid(name, f"longer than {max_len} characters")
    if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in value):
        raise _invalid(name, "must not contain newlines or control characters")
    if value != value.strip():
        raise _invalid(name, "must not start or end with whitespace")
    if value in _RESERVED:
        raise _invalid(name, f"{value!r} is read by Odoo as a boolean, not a string")
    return value


def check_path(name: str, value: str) -> str:
    check_text(name, value, max_len=4096)
    if not value.startswith("/"):
        raise _invalid(name, f"must be an absolute path, got {value!r}")
    return value


def check_int(name: str, value: int, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(name, f"must be an integer, got {value!r}")
    if not low <= value <= high:
        raise _invalid(name, f"must be between {low} and {high}, got {value}")
    return value


def check_host(name: str, value: str) -> str:
    """A hostname or IP address (db_host also accepts a socket directory)."""
    check_text(name, value, max_len=253)
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not _HOSTNAME.fullmatch(value):
            raise _invalid(name, f"not a hostname or IP address: {value!r}") from None
    return value


def check_module(name: str) -> str:
    if not isinstance(name, str) or not _MODULE.fullmatch(name):
        raise _invalid("module", f"invalid module name {name!r} (expected ^[a-z0-9_]+$)")
    return name


def check_db_name(value: str, name: str = "db_name") -> str:
    if not isinstance(value, str) or not _DB_NAME.fullmatch(value):
        raise _invalid(name, f"invalid database name {value!r}")
    return value


def check_test_tags(value: str) -> str:
    check_text("test_tags", value)
    items = value.split(",")
    for item in items:
        if not item or item in ("-", "+") or not _TEST_TAG.fullmatch(item):
            raise _invalid("test_tags", f"invalid test tag {item!r}")
    return value


@dataclass(frozen=True, kw_only=True)
class OdooConfig:
    """What one Odoo server process needs; ``render_odoo_conf`` turns it into the file.

    ``None`` leaves an option out, so Odoo's own default applies. Passwords
    are kept out of ``repr``. Validated on construction (and on
    ``dataclasses.replace``): an invalid value raises ``InvalidInput``.
    """

    version: str
    admin_passwd: str = field(repr=False)
    db_user: str
    db_password: str | None = field(default=None, repr=False)
    db_host: str | None = None
    db_port: int | None = None
    db_name: str | None = None
    dbfilter: str | None = None
    addons_path: Sequence[str] = ()
    data_dir: str | None = None
    # Loopback by default: behind the reverse proxy, Odoo must not be reachable directly.
    http_interface: str = "127.0.0.1"
    http_port: int = 8069
    gevent_port: int = 8072
    workers: int = 0
    limit_memory_soft: int = 2 * GIB
    limit_memory_hard: int = 2 * GIB + GIB // 2
    limit_time_cpu: int = 60
    limit_time_real: int = 120
    max_cron_threads: int = 2
    log_level: str = "info"
    logfile: str | None = None
    pidfile: str | None = None
    proxy_mode: bool = True
    list_db: bool = False
    smtp_server: str | None = None
    smtp_port: int | None = None

    def __post_init__(self) -> None:
        # Frozen: normalize the addons path to a tuple so the config stays hashable.
        object.__setattr__(self, "addons_path", tuple(self.addons_path))
        _validate(self)


def _validate(c: OdooConfig) -> None:
    if c.version not in SUPPORTED_VERSIONS:
        raise _invalid("version", f"unsupported Odoo version {c.version!r}")
    check_text("admin_passwd", c.admin_passwd)
    if not isinstance(c.db_user, str) or not _DB_USER.fullmatch(c.db_user):
        raise _invalid("db_user", f"invalid database role {c.db_user!r}")
    if c.db_user == "postgres":
        # Odoo refuses to start as the superuser; say so before anything runs.
        raise _invalid("db_user", "Odoo refuses to run as the 'postgres' superuser")
    if c.db_password is not None:
        check_text("db_password", c.db_password)
    if c.db_host is not None:
        if c.db_host.startswith("/"):
            check_path("db_host", c.db_host)
        else:
            check_host("db_host", c.db_host)
    if c.db_port is not None:
        check_int("db_port", c.db_port, 1, 65535)
    if c.db_name is not None:
        check_db_name(c.db_name)
    if c.dbfilter is not None:
        _check_dbfilter(c.dbfilter)
    for entry in c.addons_path:
        check_path("addons_path", entry)
        if "," in entry:
            raise _invalid("addons_path", f"{entry!r}: the path separator ',' is not allowed")
    for name in ("data_dir", "logfile", "pidfile"):
        value = getattr(c, name)
        if value is not None:
            check_path(name, value)
    if c.http_interface:
        try:
            ipaddress.ip_address(c.http_interface)
        except ValueError:
            raise _invalid("http_interface", f"not an IP address: {c.http_interface!r}") from None
    check_int("http_port", c.http_port, 1, 65535)
    check_int("gevent_port", c.gevent_port, 1, 65535)
    if c.http_port == c.gevent_port:
        raise _invalid("gevent_port", "must differ from http_port")
    check_int("workers", c.workers, 0, 1024)
    check_int("max_cron_threads", c.max_cron_threads, 0, 64)
    check_int("limit_memory_soft", c.limit_memory_soft, 64 * 1024**2, 1024 * GIB)
    check_int("limit_memory_hard", c.limit_memory_hard, 64 * 1024**2, 1024 * GIB)
    if c.limit_memory_hard < c.limit_memory_soft:
        raise _invalid("limit_memory_hard", "must not be below limit_memory_soft")
    check_int("limit_time_cpu", c.limit_time_cpu, 1, 7 * 86400)
    check_int("limit_time_real", c.limit_time_real, 1, 7 * 86400)
    if c.log_level not in LOG_LEVELS:
        raise _invalid("log_level", f"must be one of {', '.join(LOG_LEVELS)}")
    for name in ("proxy_mode", "list_db"):
        if not isinstance(getattr(c, name), bool):
            raise _invalid(name, "must be a boolean")
    if c.smtp_server is not None:
        check_host("smtp_server", c.smtp_server)
    if c.smtp_port is not None:
        check_int("smtp_port", c.smtp_port, 1, 65535)


def _check_dbfilter(value: str) -> None:
    check_text("dbfilter", value, max_len=255)
    if any(ch.isspace() for ch in value):
        raise _invalid("dbfilter", "must not contain whitespace")
    try:
        # Odoo substitutes %h (host) and %d (first label) before compiling.
        re.compile(value.replace("%h", "host").replace("%d", "domain"))
    except re.error as exc:
        raise _invalid("dbfilter", f"not a valid regular expression: {exc}") from None


def _options(c: OdooConfig) -> list[tuple[str, str]]:
    def flag(value: bool) -> str:
        return "True" if value else "False"

    opts: list[tuple[str, str | int | None]] = [
        ("admin_passwd", c.admin_passwd),
        ("db_host", c.db_host),
        ("db_port", c.db_port),
        ("db_user", c.db_user),
        # False, not empty: Odoo then lets libpq use .pgpass / peer authentication.
        ("db_password", c.db_password if c.db_password is not None else "False"),
        ("db_name", c.db_name),
        ("dbfilter", c.dbfilter),
        ("list_db", flag(c.list_db)),
        ("addons_path", ",".join(c.addons_path) or None),
        ("data_dir", c.data_dir),
        ("http_interface", c.http_interface or None),
        ("http_port", c.http_port),
        # gevent_port only: longpolling_port is a deprecated alias in 16/17 and unknown in 18.
        ("gevent_port", c.gevent_port),
        ("proxy_mode", flag(c.proxy_mode)),
        ("workers", c.workers),
        ("max_cron_threads", c.max_cron_threads),
        ("limit_memory_soft", c.limit_memory_soft),
        ("limit_memory_hard", c.limit_memory_hard),
        ("limit_time_cpu", c.limit_time_cpu),
        ("limit_time_real", c.limit_time_real),
        ("log_level", c.log_level),
        ("logfile", c.logfile),
        ("pidfile", c.pidfile),
        ("smtp_server", c.smtp_server),
        ("smtp_port", c.smtp_port),
    ]
    return [(key, str(value)) for key, value in opts if value is not None]


def render_odoo_conf(config: OdooConfig) -> str:
    """The ``[options]`` file for ``config``; holds passwords, so write it mode 0600."""
    # Validate again: a frozen dataclass can still be bypassed with object.__setattr__.
    _validate(config)
    options = _options(config)
    text = (
        f"# Written by ocore for Odoo {config.version}; changes here are overwritten.\n"
        "[options]\n" + "".join(f"{key} = {value}\n" for key, value in options)
    )
    _check_round_trip(text, options)
    return text


def _check_round_trip(text: str, options: list[tuple[str, str]]) -> None:
    """Belt and braces: Odoo's parser (RawConfigParser) must read back exactly what we meant."""
    parser = configparser.RawConfigParser(strict=True)
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        raise InvalidInput(f"odoo.conf would not parse: {exc}") from None
    if parser.sections() != ["options"] or parser.items("options") != options:
        raise InvalidInput("odoo.conf would not read back as written; refusing to render it")


def odoo_command(
    checkout: str,
    python: str,
    conf_path: str,
    *,
    database: str,
    install: Iterable[str] = (),
    update: Iterable[str] = (),
    stop_after_init: bool = False,
    test_enable: bool = False,
    test_tags: str | None = None,
    http_port: int | None = None,
) -> list[str]:
    """``python <checkout>/odoo-bin -c conf -d DB [-i ...] [-u ...] ...`` as an argument list.

    ``http_port`` overrides the conf's port, for a one-off run next to a
    serving process (``--test-enable`` starts HTTP even with
    ``--stop-after-init``).
    """
    check_path("checkout", checkout)
    check_path("python", python)
    check_path("conf_path", conf_path)
    check_db_name(database, "database")
    to_install = [check_module(m) for m in install]
    to_update = [check_module(m) for m in update]
    argv = [python, posixpath.join(checkout, "odoo-bin"), "-c", conf_path, "-d", database]
    if to_install:
        argv += ["-i", ",".join(to_install)]
    if to_update:
        argv += ["-u", ",".join(to_update)]
    if test_enable or test_tags is not None:
        argv.append("--test-enable")
    if test_tags is not None:
        # "=" form: a tag like "-at_install" must not be taken for an option.
        argv.append(f"--test-tags={check_test_tags(test_tags)}")
    if stop_after_init:
        argv.append("--stop-after-init")
    if http_port is not None:
        argv.append(f"--http-port={check_int('http_port', http_port, 1, 65535)}")
    return argv


__all__ = [
    "LOG_LEVELS",
    "SUPPORTED_VERSIONS",
    "OdooConfig",
    "check_db_name",
    "check_module",
    "check_test_tags",
    "odoo_command",
    "render_odoo_conf",
]
