"""Tests of the odoo-bin stand-in (tests/fixtures/odoo_standin) against real Postgres."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.odoo_standin.harness import (
    STANDIN,
    OdooCheckout,
    SmtpCatcher,
    assert_odoo_log_format,
    free_port,
    odoo_env,
    wait_http,
)

APPS = "base,mail,payment_stripe,payment_adyen,delivery_fedex,iap,website,auth_oauth"
VERSIONS = ("16.0", "17.0", "18.0")


def psql(sql: str, db: str = "postgres") -> str:
    cmd = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-v", "ON_ERROR_STOP=1"]
    out = subprocess.run([*cmd, "-AtXqc", sql], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def rows(sql: str, db: str) -> list[list[str]]:
    return [line.split("|") for line in psql(sql, db).splitlines()]


def columns(db: str, table: str) -> set[str]:
    sql = f"SELECT column_name FROM information_schema.columns WHERE table_name = '{table}'"
    return set(psql(sql, db).split())


@pytest.fixture(scope="module")
def role() -> Iterator[str]:
    """A CREATEDB role for the stand-in: like Odoo, it refuses to run as ``postgres``."""
    name = f"standin_{uuid.uuid4().hex[:10]}"
    psql(f"CREATE ROLE {name} LOGIN CREATEDB")
    yield name
    owned = (
        "SELECT datname FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba"
        f" AND r.rolname = '{name}'"
    )
    for db in psql(owned).splitlines():
        psql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    psql(f"DROP ROLE {name}")


@pytest.fixture
def make_odoo(tmp_path: Path, role: str) -> Callable[[str], OdooCheckout]:
    def make(version: str = "17.0") -> OdooCheckout:
        return OdooCheckout(tmp_path / f"odoo-{version}-{uuid.uuid4().hex[:6]}", version, role)

    return make


@pytest.fixture
def dbname() -> Iterator[Callable[[], str]]:
    created: list[str] = []

    def make() -> str:
        created.append(f"standin_test_{uuid.uuid4().hex[:10]}")
        return created[-1]

    yield make
    for name in created:
        psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def serving() -> Iterator[Callable[[OdooCheckout], tuple[subprocess.Popen[str], str]]]:
    """Start a serving stand-in on a free port; always reaped at the end."""
    procs: list[subprocess.Popen[str]] = []

    def start(odoo: OdooCheckout, *args: str) -> tuple[subprocess.Popen[str], str]:
        port = free_port()
        procs.append(odoo.start("--http-port", str(port), *args))
        return procs[-1], f"http://127.0.0.1:{port}"

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_version_comes_from_the_checkout(make_odoo: Callable[[str], OdooCheckout]) -> None:
    for version in VERSIONS:
        odoo = make_odoo(version)
        for cmd in ([str(odoo.bin)], [sys.executable, str(odoo.bin)]):
            out = subprocess.run([*cmd, "--version"], capture_output=True, text=True, env=odoo.env)
            assert out.stdout.strip() == f"Odoo Server {version}"
    env = {**odoo_env(), "STANDIN_ODOO_VERSION": "18.0"}
    out = subprocess.run([str(STANDIN), "--version"], capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "Odoo Server 18.0"


@pytest.mark.parametrize("version", VERSIONS)
def test_install_creates_the_version_schema(
    make_odoo: Callable[[str], OdooCheckout], dbname: Callable[[], str], version: str
) -> None:
    odoo, db = make_odoo(version), dbname()
    res = odoo.run(
        "-d", db, "-i", f"{APPS},nope", "--stop-after-init", "--logfile", str(odoo.logfile)
    )
    assert res.returncode == 0, res.stderr + odoo.log()
    log = odoo.log()
    assert_odoo_log_format(log)
    assert f"INFO ? odoo: Odoo version {version} \n" in log
    assert re.search(rf"INFO {db} odoo.modules.loading: loading \d+ modules\.\.\.", log)
    assert re.search(rf"INFO {db} odoo.modules.loading: Loading module mail \(\d+/\d+\)", log)
    assert re.search(
        rf"INFO {db} odoo.modules.loading: Module mail loaded in [\d.]+s, \d+ queries", log
    )
    assert re.search(rf"INFO {db} odoo.modules.loading: \d+ modules loaded in [\d.]+s, ", log)
    assert f"INFO {db} odoo.modules.loading: Modules loaded." in log
    assert f"INFO {db} odoo.modules.registry: Registry loaded in" in log
    assert f"WARNING {db} odoo.modules.loading: invalid module names, ignored: nope" in log

    cron = columns(db, "ir_cron")
    assert {"cron_name", "ir_actions_server_id", "nextcall", "interval_type", "priority"} <= cron
    assert ("numbercall" in cron) == ("doall" in cron) == (version != "18.0")
    assert ("failure_count" in cron) == (version == "18.0")
    assert ("webhook_url" in columns(db, "ir_act_server")) == (version != "16.0")
    name_type = (
        "SELECT data_type FROM information_schema.columns"
        " WHERE table_name = '{}' AND column_name = 'name'"
    )
    assert psql(name_type.format("ir_act_server"), db) == "jsonb"
    assert psql(name_type.format("payment_provider"), db) == "jsonb"
    installed = dict(
        rows("SELECT name, latest_version FROM ir_module_module WHERE state = 'installed'", db)
    )
    assert installed["base"] == f"{version}.1.3"
    assert {"web", "mail", "payment", "payment_stripe", "delivery", "website"} <= set(installed)
    assert psql("SELECT state FROM ir_module_module WHERE name = 'social'", db) == "uninstalled"
    autovacuum = (
        "SELECT count(*) FROM ir_model_data WHERE module = 'base' AND name = 'autovacuum_job'"
    )
    assert psql(autovacuum + " AND model = 'ir.cron'", db) == "1"
    assert psql("SELECT count(*) FROM ir_mail_server WHERE active", db) == "2"
    assert {r[0] for r in rows("SELECT state FROM payment_provider", db)} == {
        "enabled",
        "test",
        "disabled",
    }
    carriers = {r[0] for r in rows("SELECT delivery_type FROM delivery_carrier", db)}
    assert carriers == {"fixed", "base_on_rule", "fedex"}
    assert psql("SELECT count(*) FROM iap_account", db) == "2"
    assert psql("SELECT to_regclass('social_account')", db) == ""
    cron_names = rows(
        "SELECT a.name->>'en_US', c.cron_name FROM ir_cron c"
        " JOIN ir_act_server a ON a.id = c.ir_actions_server_id",
        db,
    )
    assert ["Base: Auto-vacuum internal data"] * 2 in cron_names
    # -i on an existing database installs what is new and updates the rest
    again = odoo.run("-d", db, "-i", "mail,social_facebook", "--stop-after-init")
    assert again.returncode == 0, again.stderr
    assert (
        psql("SELECT count(*) FROM social_account WHERE facebook_access_token IS NOT NULL", db)
        == "1"
    )
    assert psql("SELECT count(*) FROM ir_mail_server", db) == "2"


def test_neutralize_does_what_odoo_does(
    make_odoo: Callable[[str], OdooCheckout], dbname: Callable[[], str]
) -> None:
    for version in VERSIONS:
        odoo, db = make_odoo(version), dbname()
        assert odoo.run("-d", db, "-i", APPS, "--stop-after-init").returncode == 0
        dry = odoo.run("neutralize", "-d", db, "--stdout")
        assert dry.returncode == 0, dry.stderr
        assert dry.stdout.startswith("BEGIN;\n")
        assert dry.stdout.endswith("\nCOMMIT;\n")
        assert "UPDATE fetchmail_server" in dry.stdout
        assert ("webhook_url" in dry.stdout) == (version != "16.0")
        assert psql("SELECT count(*) FROM ir_cron WHERE NOT active", db) == "0"  # only printed
        res = odoo.run("neutralize", "-d", db, "--logfile", str(odoo.logfile))
        assert res.returncode == 0, res.stderr
        assert_odoo_log_format(odoo.log())
        assert f"INFO ? odoo.cli.neutralize: Starting {db} database neutralization" in odoo.log()
        assert "INFO ? odoo.modules.neutralize: Neutralization finished" in odoo.log()

        active = (
            "SELECT d.name FROM ir_cron c JOIN ir_model_data d"
            " ON d.res_id = c.id AND d.model = 'ir.cron' WHERE c.active"
        )
        assert rows(active, db) == [["autovacuum_job"]]
        servers = "SELECT smtp_host, smtp_port, smtp_encryption FROM ir_mail_server WHERE active"
        assert rows(servers, db) == [["invalid", "1025", "none"]]
        assert psql("SELECT count(*) FROM fetchmail_server WHERE active", db) == "0"
        assert psql("SELECT count(mail_server_id) FROM mail_template", db) == "0"
        providers = dict(rows("SELECT code, state FROM payment_provider WHERE code <> 'none'", db))
        assert providers == {"stripe": "disabled", "adyen": "test"}
        keys = (
            "SELECT count(*) FROM payment_provider"
            " WHERE stripe_secret_key IS NOT NULL OR adyen_api_key IS NOT NULL"
        )
        assert psql(keys, db) == "0"
        carriers = dict(rows("SELECT delivery_type, active FROM delivery_carrier", db))
        assert carriers == {
            "fedex": "f",
            "base_on_rule": "f" if version == "16.0" else "t",
            "fixed": "f" if version == "16.0" else "t",
        }
        assert psql("SELECT count(*) FROM delivery_carrier WHERE prod_environment", db) == "0"
        tokens = psql("SELECT account_token FROM iap_account", db).split()
        endpoint = psql("SELECT value FROM ir_config_parameter WHERE key = 'iap.endpoint'", db)
        assert all(t.endswith("+disabled") for t in tokens) == (version != "16.0")
        assert (endpoint == "https://iap-sandbox.odoo.com") == (version == "16.0")
        website = rows("SELECT coalesce(domain, ''), cdn_activated FROM website", db)
        assert website == [["", "t" if version == "16.0" else "f"]]
        assert psql("SELECT count(*) FROM auth_oauth_provider WHERE enabled", db) == "0"
        if version != "16.0":  # no webhooks before 17.0
            hooks = psql("SELECT webhook_url FROM ir_act_server WHERE state = 'webhook'", db)
            assert hooks == "neutralization - disable webhook"
        flag = "SELECT value FROM ir_config_parameter WHERE key = 'database.is_neutralized'"
        assert psql(flag, db) == "true"
        assert psql("SELECT active FROM ir_ui_view WHERE key = 'web.neutralize_banner'", db) == "t"


def test_neutralize_is_all_or_nothing(
    make_odoo: Callable[[str], OdooCheckout], dbname: Callable[[], str]
) -> None:
    odoo, db = make_odoo("17.0"), dbname()
    assert odoo.run("-d", db, "-i", "base,mail", "--stop-after-init").returncode == 0
    psql("DROP TABLE mail_template", db)
    res = odoo.run("neutralize", "-d", db)
    assert res.returncode == 1
    assert (
        "CRITICAL ? odoo.cli.neutralize: An error occurred during the neutralization." in res.stderr
    )
    assert psql("SELECT count(*) FROM ir_cron WHERE NOT active", db) == "0"
    assert psql("SELECT count(*) FROM ir_mail_server", db) == "2"
    missing = odoo.run("neutralize")
    assert missing.returncode == 1
    assert 'Neutralize command needs a database name. Use "-d" argument' in missing.stderr


def test_failing_module_load_exits_and_leaves_nothing(
    make_odoo: Callable[[str], OdooCheckout], dbname: Callable[[], str]
) -> None:
    odoo, db = make_odoo("17.0"), dbname()
    odoo.addon("good_mod", version="2.1")
    odoo.addon("bad_mod", depends=["good_mod"], data=["views/bad.xml"], standin_fail="load")
    res = odoo.run(
        "-d", db, "-i", "good_mod,bad_mod", "--stop-after-init", "--logfile", str(odoo.logfile)
    )
    assert res.returncode == 255  # Odoo's preload_registries returns -1
    log = odoo.log()
    assert_odoo_log_format(log)
    assert f"ERROR {db} odoo.modules.registry: Failed to load registry" in log
    assert (
        f"CRITICAL {db} odoo.service.server: Failed to initialize database `{db}`.\n"
        "Traceback (most recent call last):\n" in log
    )
    assert "odoo.tools.convert.ParseError: while parsing" in log
    states = dict(rows("SELECT name, state FROM ir_module_module WHERE name LIKE '%_mod'", db))
    assert states == {"good_mod": "installed", "bad_mod": "uninstalled"}
    assert psql("SELECT to_regclass('bad_mod_record')", db) == ""
    assert psql("SELECT count(*) FROM ir_model_data WHERE module = 'bad_mod'", db) == "0"
    assert (
        psql("SELECT latest_version FROM ir_module_module WHERE name = 'good_mod'", db)
        == "17.0.2.1"
    )


def test_module_tests_and_update(
    make_odoo: Callable[[str], OdooCheckout], dbname: Callable[[], str]
) -> None:
    odoo, db = make_odoo("17.0"), dbname()
    odoo.addon("sale_custom", standin_tests=4)
    port = str(free_port())  # --test-enable starts the HTTP server, like Odoo
    ok = odoo.run("-d", db, "-i", "sale_custom", "--test-enable", "--stop-after-init", "-p", port)
    assert ok.returncode == 0, ok.stderr
    assert (
        f"INFO {db} odoo.tests.result: 0 failed, 0 error(s) of 4 tests when loading database '{db}'"
        in ok.stderr
    )
    odoo.addon(
        "sale_custom", version="1.1", standin_tests=4, standin_fail="test", standin_warn=True
    )
    args = (
        "-d",
        db,
        "-u",
        "sale_custom",
        "--stop-after-init",
        "-p",
        port,
        "--logfile",
        str(odoo.logfile),
    )
    res = odoo.run(*args, "--test-enable")
    assert res.returncode == 1
    log = odoo.log()
    assert_odoo_log_format(log)
    assert (
        f"ERROR {db} odoo.tests.result: 1 failed, 0 error(s) of 4 tests"
        f" when loading database '{db}'" in log
    )
    assert (
        f"ERROR {db} odoo.modules.loading: At least one test failed when loading the modules."
        in log
    )
    assert f"INFO {db} odoo.modules.loading: Loading module sale_custom (" in log
    assert (
        f"WARNING {db} odoo.modules.loading: The models ['sale_custom.record'] have no access"
        " rules in module sale_custom, consider adding some, like:\nid," in log
    )
    assert (
        psql("SELECT latest_version FROM ir_module_module WHERE name = 'sale_custom'", db)
        == "17.0.1.1"
    )
    assert odoo.run(*args).returncode == 0  # without --test-enable the failing test does not run


def test_postgres_user_is_refused(make_odoo: Callable[[str], OdooCheckout]) -> None:
    res = make_odoo("17.0").run("-r", "postgres", "--stop-after-init")
    assert res.returncode == 1
    assert "Using the database user 'postgres' is a security risk, aborting." in res.stderr


def test_serving_health_login_mail_and_sigterm(
    make_odoo: Callable[[str], OdooCheckout],
    dbname: Callable[[], str],
    serving: Callable[..., tuple[subprocess.Popen[str], str]],
) -> None:
    odoo, db = make_odoo("18.0"), dbname()
    assert odoo.run("-d", db, "-i", "base,mail", "--stop-after-init").returncode == 0
    assert odoo.run("neutralize", "-d", db).returncode == 0
    catcher = SmtpCatcher()  # a control plane points the dummy server at its mail catcher
    psql(
        f"UPDATE ir_mail_server SET smtp_host = '127.0.0.1', smtp_port = {catcher.port}"
        " WHERE smtp_host = 'invalid'",
        db,
    )
    pidfile = odoo.root / "odoo.pid"
    odoo.write_conf(logfile=odoo.logfile, db_name=db)
    proc, url = serving(odoo, "--pidfile", str(pidfile))
    try:
        wait_http(url + "/web/health", proc)
        assert pidfile.read_text() == str(proc.pid)
        health = httpx.get(url + "/web/health")
        assert (health.status_code, health.json()) == (200, {"status": "pass"})
        assert health.headers["content-type"] == "application/json"
        db_status = httpx.get(url + "/web/health?db_server_status=1").json()
        assert db_status == {"status": "pass", "db_server_status": True}
        with httpx.Client(base_url=url) as client:
            assert client.get("/").headers["location"] == "/odoo"
            assert client.get("/odoo").headers["location"] == "/web/login?redirect=%2Fodoo"
            page = client.get("/web/login")
            assert page.status_code == 200
            assert "<form" in page.text
            assert db in page.text
            assert "Database neutralized for testing" in page.text
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
            form = {"login": "admin", "password": "nope", "csrf_token": token}
            assert "Wrong login/password" in client.post("/web/login", data=form).text
            good = client.post("/web/login", data={**form, "password": "admin"})
            assert (good.status_code, good.headers["location"]) == (303, "/odoo")
            cookie = good.headers["set-cookie"]
            assert cookie.startswith("session_id=")
            assert "; HttpOnly" in cookie
            assert "; Path=/" in cookie
            assert client.get("/odoo").status_code == 200
        assert httpx.post(url + "/web/login", data={"login": "admin"}).status_code == 400  # no CSRF
        assert "<html" in httpx.get(url + "/web/database/manager").text
        assert httpx.get(url + "/web/webclient/version_info").status_code == 400  # type=json route
        rpc = httpx.post(url + "/web/webclient/version_info", json={"jsonrpc": "2.0", "params": {}})
        assert rpc.json()["result"]["server_version"] == "18.0"
        css = httpx.get(url + "/web/assets/1/abc/web.assets_frontend.min.css")
        assert css.headers["content-type"].startswith("text/css")
        sent = httpx.post(
            url + "/standin/send-mail",
            json={"to": "x@example.com", "subject": "Hello", "body": "Hi"},
        )
        assert sent.status_code == 200, sent.text
        assert sent.json()["server"]["name"] == "neutralization - disable emails"
        assert b"Subject: Hello" in catcher.messages[0]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        catcher.close()
    assert not pidfile.exists()
    log = odoo.log()
    assert_odoo_log_format(log)
    assert "INFO ? odoo: Odoo version 18.0" in log
    assert re.search(
        r"INFO \? odoo.service.server: HTTP service \(werkzeug\) running on \S+:\d+", log
    )
    assert re.search(
        rf'INFO {db} werkzeug: 127.0.0.1 - - \[.+\] "GET /web/login HTTP/1.1" 200 -', log
    )
    assert "INFO ? odoo.service.server: Initiating shutdown" in log


def test_start_delay_and_failing_health(
    make_odoo: Callable[[str], OdooCheckout],
    serving: Callable[..., tuple[subprocess.Popen[str], str]],
) -> None:
    odoo = make_odoo("16.0")
    odoo.data_dir.mkdir(parents=True)
    knobs = odoo.data_dir / "standin.json"
    knobs.write_text(json.dumps({"start_delay": 1.5, "health": "fail"}))
    proc, url = serving(odoo)
    assert wait_http(url + "/web/health", proc) >= 1.0
    health = httpx.get(url + "/web/health")
    assert (health.status_code, health.json()) == (500, {"status": "fail"})
    knobs.write_text("{}")
    assert httpx.get(url + "/web/health?db_server_status=1").json() == {"status": "pass"}  # 16.0
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 0


def test_dbfilter_picks_the_database_from_the_host(
    make_odoo: Callable[[str], OdooCheckout],
    dbname: Callable[[], str],
    serving: Callable[..., tuple[subprocess.Popen[str], str]],
) -> None:
    odoo, first, second = make_odoo("17.0"), dbname(), dbname()
    for db in (first, second):
        assert odoo.run("-d", db, "--stop-after-init").returncode == 0  # creates + inits base
    odoo.write_conf(dbfilter="^%d$", list_db=False)
    proc, url = serving(odoo)
    wait_http(url + "/web/health", proc)
    for db in (first, second):
        page = httpx.get(url + "/web/login", headers={"Host": f"{db}.example.com"})
        assert f'name="db" value="{db}"' in page.text
    nodb = httpx.get(url + "/web/login", headers={"Host": "unknown.example.com"})
    assert nodb.headers["location"] == "/web/database/selector"
    manager = httpx.get(url + "/web/database/manager").text
    assert "The database manager has been disabled by the administrator" in manager
    assert first not in manager
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0


def test_health_reports_postgres_down(
    make_odoo: Callable[[str], OdooCheckout],
    serving: Callable[..., tuple[subprocess.Popen[str], str]],
) -> None:
    odoo = make_odoo("17.0")
    odoo.write_conf(db_port=free_port())  # nothing listens there
    proc, url = serving(odoo)
    wait_http(url + "/web/health", proc)
    assert httpx.get(url + "/web/health").json() == {"status": "pass"}
    down = httpx.get(url + "/web/health?db_server_status=1")
    assert (down.status_code, down.json()) == (500, {"status": "fail", "db_server_status": False})
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
