"""odoo.conf rendering and odoo-bin argv: per version, validated, accepted by the stand-in."""

from __future__ import annotations

import configparser
import dataclasses
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ocore.core.errors import InvalidInput
from ocore.hosts.odoo import OdooConfig, odoo_command, render_odoo_conf
from tests.fixtures.odoo_runtime import (
    DB_HOST,
    DB_PASSWORD,
    DB_PORT,
    DB_USER,
    database_name,
    drop_database,
)
from tests.fixtures.odoo_standin.harness import (
    LOG_LINE,
    assert_odoo_log_format,
    free_port,
    make_checkout,
    wait_http,
)

VERSIONS = ("16.0", "17.0", "18.0")


def make_config(**changes: Any) -> OdooConfig:
    base: dict[str, Any] = {
        "version": "17.0",
        "admin_passwd": "s3cret-master",
        "db_user": DB_USER,
        "db_password": DB_PASSWORD,
        "db_host": DB_HOST,
        "db_port": DB_PORT,
    }
    return OdooConfig(**{**base, **changes})


def parse(text: str) -> dict[str, str]:
    parser = configparser.RawConfigParser()
    parser.read_string(text)
    assert parser.sections() == ["options"]
    return dict(parser.items("options"))


@pytest.mark.parametrize("version", VERSIONS)
def test_render_uses_gevent_port_never_longpolling_port(version: str) -> None:
    text = render_odoo_conf(make_config(version=version, http_port=9069, gevent_port=9072))
    options = parse(text)
    assert options["http_port"] == "9069"
    assert options["gevent_port"] == "9072"
    assert "longpolling_port" not in text


def test_render_all_options() -> None:
    config = make_config(
        db_name="acme",
        dbfilter="^%d$",
        addons_path=["/srv/odoo/addons", "/srv/custom"],
        data_dir="/srv/data",
        workers=4,
        limit_memory_soft=1024**3,
        limit_memory_hard=2 * 1024**3,
        limit_time_cpu=600,
        limit_time_real=1200,
        max_cron_threads=1,
        log_level="warn",
        logfile="/srv/log/odoo.log",
        pidfile="/srv/run/odoo.pid",
        smtp_server="127.0.0.1",
        smtp_port=1025,
    )
    options = parse(render_odoo_conf(config))
    assert options == {
        "admin_passwd": "s3cret-master",
        "db_host": DB_HOST,
        "db_port": str(DB_PORT),
        "db_user": DB_USER,
        "db_password": DB_PASSWORD,
        "db_name": "acme",
        "dbfilter": "^%d$",
        "list_db": "False",
        "addons_path": "/srv/odoo/addons,/srv/custom",
        "data_dir": "/srv/data",
        "http_interface": "127.0.0.1",
        "http_port": "8069",
        "gevent_port": "8072",
        "proxy_mode": "True",
        "workers": "4",
        "max_cron_threads": "1",
        "limit_memory_soft": str(1024**3),
        "limit_memory_hard": str(2 * 1024**3),
        "limit_time_cpu": "600",
        "limit_time_real": "1200",
        "log_level": "warn",
        "logfile": "/srv/log/odoo.log",
        "pidfile": "/srv/run/odoo.pid",
        "smtp_server": "127.0.0.1",
        "smtp_port": "1025",
    }


def test_defaults_and_secrets() -> None:
    config = make_config(db_password=None, db_host=None, db_port=None)
    options = parse(render_odoo_conf(config))
    # False, not an empty string: Odoo then leaves authentication to libpq.
    assert options["db_password"] == "False"
    assert "db_host" not in options
    assert options["proxy_mode"] == "True"
    assert options["list_db"] == "False"
    assert "s3cret-master" not in repr(config)
    assert "pw-hidden" not in repr(dataclasses.replace(config, db_password="pw-hidden"))


INJECTION = "x\n[options]\nadmin_passwd = owned"
HOSTILE: list[tuple[str, object]] = [
    ("admin_passwd", INJECTION),
    ("admin_passwd", "pass\rlist_db = True"),
    ("admin_passwd", "a\u2028b"),
    ("admin_passwd", "a\x85b"),
    ("admin_passwd", " leading-space"),
    ("admin_passwd", "False"),
    ("admin_passwd", ""),
    ("db_password", INJECTION),
    ("db_password", "x\x00y"),
    ("db_user", "postgres"),
    ("db_user", "bob\nlist_db = True"),
    ("db_host", "db.example.com\n[options]"),
    ("db_host", "relative/socket"),
    ("db_name", "acme\n[options]"),
    ("db_name", "-acme"),
    ("db_name", "a,b"),
    ("dbfilter", "^%d$\nlist_db = True"),
    ("dbfilter", "^(unclosed$"),
    ("dbfilter", "^a b$"),
    ("addons_path", ["/srv/addons\n[options]"]),
    ("addons_path", ["/srv/a,/srv/b"]),
    ("addons_path", ["relative/addons"]),
    ("data_dir", "/srv/data\nadmin_passwd = owned"),
    ("logfile", "odoo.log"),
    ("pidfile", "/run/odoo.pid\n"),
    ("smtp_server", "mail\n[options]"),
    ("smtp_server", "mail server"),
    ("http_interface", "0.0.0.0\nworkers = 99"),
    ("http_port", 0),
    ("http_port", 70000),
    ("http_port", True),
    ("http_port", "8069"),
    ("gevent_port", 8069),
    ("workers", -1),
    ("limit_memory_hard", 1024**3),
    ("log_level", "verbose"),
    ("version", "15.0"),
    ("proxy_mode", "yes"),
]


@pytest.mark.parametrize(("field", "value"), HOSTILE)
def test_hostile_values_are_refused(field: str, value: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        make_config(**{field: value})
    assert caught.value.extra.get("field") == field


def test_render_revalidates_a_tampered_config() -> None:
    config = make_config()
    object.__setattr__(config, "admin_passwd", INJECTION)
    with pytest.raises(InvalidInput):
        render_odoo_conf(config)


def test_odoo_command() -> None:
    argv = odoo_command(
        "/opt/odoo/17.0",
        "/opt/odoo/17.0/venv/bin/python",
        "/srv/blue/odoo.conf",
        database="acme",
        install=["sale", "stock"],
        update=["all"],
        stop_after_init=True,
        test_tags="-at_install,/sale_custom:TestOrder.test_confirm,post_install",
        http_port=9100,
    )
    assert argv == [
        "/opt/odoo/17.0/venv/bin/python",
        "/opt/odoo/17.0/odoo-bin",
        "-c",
        "/srv/blue/odoo.conf",
        "-d",
        "acme",
        "-i",
        "sale,stock",
        "-u",
        "all",
        "--test-enable",
        "--test-tags=-at_install,/sale_custom:TestOrder.test_confirm,post_install",
        "--stop-after-init",
        "--http-port=9100",
    ]
    plain = odoo_command("/o", "/o/venv/bin/python", "/c.conf", database="acme")
    assert plain == ["/o/venv/bin/python", "/o/odoo-bin", "-c", "/c.conf", "-d", "acme"]


@pytest.mark.parametrize(
    "changes",
    [
        {"install": ["sale;rm"]},
        {"install": ["Sale"]},
        {"update": ["sale,stock"]},
        {"update": ["--dev=all"]},
        {"database": "-acme"},
        {"database": "acme\n"},
        {"test_tags": "at_install\n--dev=all"},
        {"test_tags": "at install"},
        {"test_tags": ",,"},
        {"test_tags": "/Sale"},
        {"http_port": 0},
    ],
)
def test_odoo_command_refuses_bad_names(changes: dict[str, Any]) -> None:
    kwargs: dict[str, Any] = {"database": "acme", **changes}
    with pytest.raises(InvalidInput):
        odoo_command("/o", "/o/venv/bin/python", "/c.conf", **kwargs)


@pytest.fixture
def odoo_db() -> Iterator[str]:
    # Not "database": the top-level conftest gives that name to ocore's own database.
    name = database_name("ocore_conf")
    yield name
    drop_database(name)


@pytest.mark.parametrize("version", VERSIONS)
def test_standin_serves_with_rendered_conf(tmp_path: Path, version: str, odoo_db: str) -> None:
    """The stand-in (Odoo's option parser and behaviour) runs from a file we rendered."""
    odoo_bin = make_checkout(tmp_path / "odoo", version)
    port = free_port()
    conf, log, pidfile = tmp_path / "odoo.conf", tmp_path / "odoo.log", tmp_path / "odoo.pid"
    config = make_config(
        version=version,
        db_name=odoo_db,
        data_dir=str(tmp_path / "data"),
        http_port=port,
        gevent_port=free_port(),
        logfile=str(log),
        pidfile=str(pidfile),
    )
    conf.write_text(render_odoo_conf(config))
    proc = subprocess.Popen(
        [sys.executable, str(odoo_bin), "-c", str(conf)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/web/health", proc)
        assert pidfile.read_text().strip() == str(proc.pid)
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=15)
    assert proc.returncode == 0, stderr
    text = log.read_text()
    assert_odoo_log_format(text)
    assert f"Odoo version {version}" in text
    assert "HTTP service (werkzeug) running on" in text
    assert f":{port}" in text
    assert "DeprecationWarning" not in text
    assert "longpolling" not in text.lower()
    assert not pidfile.exists()  # removed by a clean shutdown


def test_odoo_command_runs_the_standin(tmp_path: Path, odoo_db: str) -> None:
    checkout = tmp_path / "odoo"
    make_checkout(checkout, "17.0")
    addons = tmp_path / "addons"
    (addons / "acme_sale").mkdir(parents=True)
    manifest = {"name": "Acme", "version": "1.0", "depends": ["base"], "standin_tests": 2}
    (addons / "acme_sale" / "__manifest__.py").write_text(repr(manifest))
    conf, log = tmp_path / "odoo.conf", tmp_path / "odoo.log"
    config = make_config(
        addons_path=[str(addons)], data_dir=str(tmp_path / "data"), logfile=str(log)
    )
    conf.write_text(render_odoo_conf(config))
    argv = odoo_command(
        str(checkout),
        sys.executable,
        str(conf),
        database=odoo_db,
        install=["acme_sale"],
        stop_after_init=True,
        test_tags="/acme_sale",
        http_port=free_port(),
    )
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    text = log.read_text()
    assert "Loading module acme_sale" in text
    assert "0 failed, 0 error(s) of 2 tests" in text
    assert all(LOG_LINE.match(line) for line in text.splitlines() if line[:2] == "20")
