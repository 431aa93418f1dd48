"""Secrets never leak: not into an API answer, a log line or a job's output.

One realistic run against a real host (the test sshd, nginx and the stand-in
Odoo 17.0) handles every kind of secret ocore keeps:

- a server's SSH private key, given encrypted with a passphrase, and the
  password of its PostgreSQL role;
- a project's git token and webhook secret;
- the admin password ocore generates for an instance (written to odoo.conf);
- payment and carrier keys that neutralization takes out of the Odoo database
  and keeps sealed (re-enabling one puts it back);
- a share link's password and a share link's token;
- ocore's own signing and encryption keys, and the bearer token of the caller.

Everything ocore writes (structlog JSON on stdout/stderr, stdlib logging at
DEBUG) is captured for the whole run, and afterwards every read route of the
API is called on every resource of the run, every job with its steps and event
stream, every deployment with its logs. No secret may appear anywhere, except
where it is shown once by design: the share token and the webhook secret in the
answer that created them. Nor may a secret sent in a body come back in any
answer, also not in the refusal of a malformed key.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import asyncssh
import httpx
import pytest

from ocore.app import create_app
from ocore.core.db import Database
from ocore.core.logging import configure_logging
from ocore.deployments.build import snapshot_name
from ocore.instances.models import Instance
from ocore.servers.models import Server
from ocore.settings import Settings
from tests.conftest import new_tenant, wait_for_job
from tests.fixtures.gitrepo import GitRepo
from tests.fixtures.nginx import Nginx
from tests.fixtures.odoo_runtime import (
    DB_HOST,
    DB_PASSWORD,
    DB_PORT,
    DB_USER,
    drop_database,
)
from tests.fixtures.ports import free_port_window
from tests.fixtures.sshd import Sshd
from tests.security.leaks import Recorder, Secrets, log_lines, pem_lines
from tests.security.routes import app_routes, fill_path

MANIFEST = "{'name': 'Shop custom', 'version': '17.0.1.0.0', 'depends': ['base']}\n"
MODULES = ["mail", "payment_stripe", "delivery_fedex"]
PORT_BLOCK = 8
# Routes read by hand below (public share pages, streams), that need a mail catcher, or
# nginx's share-gateway question (tests/shares/test_gateway.py: it only answers nginx).
SKIPPED_READS = ("/api/share/", "/api/s-proxy/", "/api/share-gateway/", "/mail", "/events", "/logs")


async def db_trusts_any_password() -> bool:
    """Whether the test PostgreSQL lets the role in with any password (trust on loopback)."""
    try:
        connection = await asyncpg.connect(
            host=DB_HOST,
            port=DB_PORT,
            user=DB_USER,
            database="postgres",
            password=f"wrong-{uuid.uuid4().hex}",
        )
    except asyncpg.InvalidPasswordError:
        return False
    await connection.close()
    return True


@dataclass
class Rig:
    """The host side of the run, and the Odoo databases it leaves to drop."""

    sshd: Sshd
    nginx: Nginx
    base_dir: Path
    tmp_path: Path
    databases: list[str]


async def test_no_secret_reaches_an_answer_a_log_or_a_job(
    settings: Settings,
    database: Database,
    sshd: Sshd,
    nginx: Nginx,
    base_dir: Path,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Every logger at DEBUG: a secret logged only at debug level leaks just the same.
    caplog.set_level(logging.DEBUG)
    low = free_port_window(PORT_BLOCK)
    run_settings = settings.model_copy(
        update={
            "redis_url": None,
            "reconcile_interval_seconds": 1,
            "instance_port_min": low,
            "instance_port_max": low + PORT_BLOCK - 1,
            "log_level": "DEBUG",
        }
    )
    secrets = Secrets()
    secrets.add("ocore secret key", run_settings.effective_secret_key)
    secrets.add("ocore jwt secret", run_settings.effective_jwt_secret)
    app = create_app(run_settings)
    app.state.database = database
    databases: list[str] = []
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://ocore.test", timeout=60
            ) as client:
                tenant = await new_tenant(database, run_settings, "Secrets")
                secrets.add("bearer token", tenant.owner.token)
                api = Recorder(client, tenant.headers)
                rig = Rig(sshd, nginx, base_dir, tmp_path, databases)
                ids = await run(api, app, database, secrets, rig)
                await read_everything(api, app, ids)
    finally:
        for name in databases:
            drop_database(name)
        # structlog's configuration is global: back to what the suite's app set.
        configure_logging(settings)
    assert set(secrets.values) >= {
        "private key", "key passphrase", "git token", "webhook secret", "admin password",
        "provider keys", "share password", "share token", "bearer token", "ocore secret key",
    }  # fmt: skip
    lines = log_lines(capfd.readouterr(), caplog.records)
    logs = "\n".join(lines)
    assert '"event": "request"' in logs, "the run's access log was not captured"
    assert "connected to" in logs, "the SSH pool's log was not captured"
    assert "Auth failed" in logs, "asyncssh's log was not captured"

    leaks = {
        name: [secrets.masked(line)[:300] for line in lines if name in secrets.found_in(line)][:3]
        for name in secrets.found_in(logs)
    }
    assert leaks == {}, f"secrets in the logs: {leaks}"
    for exchange in api.seen:
        found = [
            name
            for name in secrets.found_in(exchange.text)
            if secrets.shown_once_in.get(name) != exchange.label
            # A secret in the URL is the caller's own (a share page answers its token's visitor).
            and not any(v in exchange.url for v in secrets.values[name])
        ]
        assert found == [], f"{exchange.label} ({exchange.status}) shows {found}"
    # Each secret shown once was shown, in that one answer (and to those holding it already).
    for name, label in secrets.shown_once_in.items():
        showing = [
            e.label
            for e in api.seen
            if name in secrets.found_in(e.text)
            and not any(v in e.url for v in secrets.values[name])
        ]
        assert showing == [label], (name, showing)


async def run(
    api: Recorder, app: Any, database: Database, secrets: Secrets, rig: Rig
) -> dict[str, str]:
    """The run; returns the ids of what it made."""
    state = app.state
    sshd, nginx, base_dir = rig.sshd, rig.nginx, rig.base_dir
    tag = uuid.uuid4().hex[:8]
    ids: dict[str, str] = {}

    # --- a server: the SSH key arrives encrypted with a passphrase ------------------------
    passphrase = f"key passphrase {tag} $(id)"
    key = asyncssh.import_private_key(sshd.client_private_key)
    encrypted_key = key.export_private_key("openssh", passphrase=passphrase).decode()
    secrets.add("private key", *pem_lines(sshd.client_private_key), *pem_lines(encrypted_key))
    secrets.add("key passphrase", passphrase)
    db_password = f"db-pw-{tag}" if await db_trusts_any_password() else DB_PASSWORD
    if db_password != DB_PASSWORD:
        secrets.add("database password", db_password)
    server_body = {
        "host": sshd.host,
        "port": sshd.port,
        "username": sshd.username,
        "runtime": "native",
        "baseDir": str(base_dir),
        "nginxSitesDir": str(nginx.sites),
        "nginxCommand": nginx.command(),
        "nginxListen": f"{nginx.host}:{nginx.port}",
        "dbHost": DB_HOST,
        "dbPort": DB_PORT,
        "dbUser": DB_USER,
        "dbPassword": db_password,
    }
    server = await api.call(
        "POST",
        "/api/servers",
        json={
            **server_body,
            "name": f"host-{tag}",
            "privateKey": encrypted_key,
            "privateKeyPassphrase": passphrase,
        },
        expect=201,
    )
    ids["server"] = server.json()["id"]
    async with database.sessionmaker() as session:
        row = await session.get(Server, uuid.UUID(ids["server"]))
        assert row is not None
        assert row.private_key_encrypted is not None
        stored_key = state.secret_box.decrypt(row.private_key_encrypted)
    secrets.add("private key", *pem_lines(stored_key))
    check = await api.call("POST", f"/api/servers/{ids['server']}/check", expect=202)
    await api.job(check.json()["id"])

    # Keys that cannot be used: refused or failing, never quoted back.
    stranger = asyncssh.generate_private_key("ssh-ed25519").export_private_key().decode()
    body = pem_lines(stranger)
    broken = {
        "truncated": "\n".join(stranger.splitlines()[:-2]),
        "unknown type": stranger.replace("OPENSSH PRIVATE KEY", "FANCY PRIVATE KEY"),
        "bad base64": stranger.replace(body[1], body[1][::-1]),
        "wrong passphrase": encrypted_key,
    }
    secrets.add("unusable keys", *body)
    for what, text in broken.items():
        extra = {"privateKeyPassphrase": f"not the passphrase {tag}"} if "pass" in what else {}
        await api.call(
            "POST",
            "/api/servers",
            json={**server_body, "name": f"bad-{what}-{tag}", "privateKey": text, **extra},
            expect=422,
            label=f"server with a {what} key",
        )
    refused = await api.call(
        "POST",
        "/api/servers",
        json={**server_body, "name": f"stranger-{tag}", "privateKey": stranger},
        expect=201,
    )
    check = await api.call("POST", f"/api/servers/{refused.json()['id']}/check", expect=202)
    failed = await wait_for_job(api.client, api.headers, check.json()["id"], timeout=60)
    assert failed["status"] == "failed", failed

    # --- a project on a real repository, with a git token ---------------------------------
    repo = GitRepo.create(rig.tmp_path / "repo")
    repo.commit({"shop_custom/__manifest__.py": MANIFEST}, "first commit")
    git_token = f"ghp_{uuid.uuid4().hex}"
    secrets.add("git token", git_token)
    project = await api.call(
        "POST",
        "/api/projects",
        json={
            "name": f"shop-{tag}",
            "repositoryUrl": repo.url,
            "odooVersion": "17.0",
            "gitToken": git_token,
        },
        expect=201,
        label="project created",
    )
    ids["project"] = project.json()["id"]
    secrets.add("webhook secret", project.json()["webhookSecret"])
    secrets.shown_once_in["webhook secret"] = "project created"

    # --- an instance with an environment: ocore makes its admin password ------------------
    template = await api.call(
        "POST",
        "/api/templates",
        json={"name": f"t-{tag}", "odooVersion": "17.0", "modules": MODULES},
        expect=201,
    )
    ids["template"] = template.json()["id"]
    instance = await api.call(
        "POST",
        "/api/instances",
        json={
            "name": f"Shop {tag}",
            "slug": f"shop-{tag}",
            "serverId": ids["server"],
            "templateId": ids["template"],
            "projectId": ids["project"],
            "branch": "main",
            "environmentType": "staging",
        },
        expect=202,
    )
    ids["instance"] = instance.json()["id"]
    await api.job_of(ids["instance"], "instance.provision")
    async with database.sessionmaker() as session:
        row = await session.get(Instance, uuid.UUID(ids["instance"]))
        assert row is not None
        assert row.admin_password_encrypted is not None
        secrets.add("admin password", state.secret_box.decrypt(row.admin_password_encrypted))
        rig.databases.append(row.database_name)
        dsn = f"postgresql://{DB_USER}@{DB_HOST}:{DB_PORT}/{row.database_name}"
    # The needles are the real values: odoo.conf on the host holds them (mode 0600).
    confs = [p.read_text() for p in (base_dir / "instances" / f"shop-{tag}").glob("*/odoo.conf")]
    admin_password = secrets.values["admin password"][0]
    assert any(f"admin_passwd = {admin_password}" in conf for conf in confs)
    assert any(f"db_password = {db_password}" in conf for conf in confs)
    environments = (await api.call("GET", f"/api/projects/{ids['project']}/environments")).json()
    environment = environments[0]
    ids["environment"] = environment["id"]

    # --- neutralization: provider keys out of Odoo, sealed in ocore -----------------------
    odoo = await asyncpg.connect(dsn, password=DB_PASSWORD)
    try:
        stripe = await odoo.fetchrow(
            "SELECT stripe_secret_key, stripe_publishable_key, stripe_webhook_secret "
            "FROM payment_provider WHERE code = 'stripe'"
        )
        fedex = await odoo.fetchval(
            "SELECT fedex_developer_key FROM delivery_carrier WHERE delivery_type = 'fedex'"
        )
    finally:
        await odoo.close()
    assert stripe is not None
    assert fedex
    secrets.add("provider keys", *stripe.values(), fedex)
    neutralization = f"/api/environments/{ids['environment']}/neutralization"
    started = await api.call(
        "POST",
        f"{neutralization}/neutralize",
        json={"confirmText": environment["name"]},
        expect=202,
    )
    await api.job(started.json()["jobId"])
    items = (await api.call("GET", f"{neutralization}/items?limit=100")).json()["items"]
    provider = next(i for i in items if i["recordName"] == "Stripe")
    ids["neutralization_item"] = provider["id"]
    # Re-enabling unseals the keys and writes them back; disabling seals them again.
    for enable in (True, False):
        await api.call(
            "POST",
            f"{neutralization}/items/{provider['id']}/toggle",
            json={"enable": enable},
        )

    # --- a deploy of a new commit (the job runs git, psql and odoo-bin on the host) ------
    repo.commit({"shop_custom/README": tag}, "second commit")
    deployment = await api.call(
        "POST",
        f"/api/projects/{ids['project']}/deploy",
        json={"instanceId": ids["instance"], "branch": "main"},
        expect=202,
    )
    ids["deployment"] = deployment.json()["id"]
    rig.databases.append(snapshot_name(uuid.UUID(ids["deployment"])))
    await api.job_of(ids["deployment"], "deployment.build", timeout=300)

    # --- share links: a password one and a token one -------------------------------------
    share_password = f"  share pw {tag} 'x' $(id)  "
    secrets.add("share password", share_password, share_password.strip())
    shares = f"/api/environments/{ids['environment']}/share"
    locked = await api.call(
        "POST",
        shares,
        json={"shareType": "password", "password": share_password, "label": "client"},
        expect=201,
        label="password link created",
    )
    ids["share_link"] = locked.json()["id"]
    locked_url = httpx.URL(locked.json()["url"]).path
    open_link = await api.call(
        "POST", shares, json={"shareType": "token"}, expect=201, label="token link created"
    )
    open_url = httpx.URL(open_link.json()["url"]).path
    secrets.add("share token", open_url.rsplit("/", 1)[1])
    secrets.shown_once_in["share token"] = "token link created"
    secrets.add("password link token", locked_url.rsplit("/", 1)[1])
    secrets.shown_once_in["password link token"] = "password link created"

    # A stranger's browser: no bearer token, its own cookies.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://ocore.test") as browser:
        visitor = Recorder(browser, {}, api.seen)
        # Odoo answers "/" with a redirect to its web client, kept inside the share.
        await visitor.call("GET", open_url, expect=(200, 303))
        await visitor.call("GET", "/api/s-proxy/web/login", expect=200)
        await visitor.call("GET", locked_url, expect=200)  # the password form
        await visitor.call(
            "POST", f"{locked_url}/login", json={"password": "not it at all"}, expect=401
        )
        await visitor.call(
            "POST", f"{locked_url}/login", json={"password": share_password}, expect=303
        )
        await visitor.call("GET", locked_url, expect=(200, 303))
    rotated = await api.call(
        "POST", f"/api/projects/{ids['project']}/webhook-secret", label="webhook secret rotated"
    )
    secrets.add("rotated webhook secret", rotated.json()["webhookSecret"])
    secrets.shown_once_in["rotated webhook secret"] = "webhook secret rotated"
    return ids


async def read_everything(api: Recorder, app: Any, ids: dict[str, str]) -> None:
    """Every read route on every resource of the run, every job, every deployment's logs."""
    values = {
        "project_id": ids["project"],
        "server_id": ids["server"],
        "template_id": ids["template"],
        "deployment_id": ids["deployment"],
        "link_id": ids["share_link"],
        "env_id": ids["environment"],
        "item_id": ids["neutralization_item"],
    }
    jobs: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = (await api.call("GET", f"/api/jobs?limit=100&offset={offset}")).json()
        jobs += page["jobs"]
        offset += len(page["jobs"])
        if not page["jobs"] or offset >= page["total"]:
            break
    assert len(jobs) >= 5, [j["kind"] for j in jobs]
    outputs: list[str] = []
    for route in app_routes(app):
        if route.method != "GET" or any(part in route.path for part in SKIPPED_READS):
            continue
        if route.path in ("/api/openapi.json", "/api/docs", "/docs/oauth2-redirect"):
            continue
        params = dict(values)
        if "{id}" in route.path:
            params["id"] = ids["instance"] if "/instances/" in route.path else ids["environment"]
        if "{job_id}" in route.path:
            for job in jobs:
                detail = await api.call(
                    "GET", fill_path(route.path, {**params, "job_id": job["id"]})
                )
                outputs += [step["output"] for step in detail.json().get("steps", [])]
            continue
        query = ""
        if route.path.endswith("/commits-since"):
            first = (await api.call("GET", f"/api/projects/{ids['project']}/deployments")).json()
            query = f"?branch=main&since={first['deployments'][-1]['commitSha']}"
        await api.call("GET", fill_path(route.path, params) + query)
    # The job outputs were really read (git, psql and odoo-bin wrote plenty).
    assert sum(len(output) for output in outputs) > 1000, outputs
    for job in jobs:
        await api.stream(f"/api/jobs/{job['id']}/events", f"events of {job['kind']}")
    deployment = f"/api/projects/{ids['project']}/deployments/{ids['deployment']}"
    await api.stream(f"{deployment}/logs", "deployment logs")
    await api.call("GET", f"{deployment}/logs/download")
    await api.call("GET", f"{deployment}/logs/summary")
    for server in (await api.call("GET", "/api/servers")).json()["servers"]:
        await api.call("GET", f"/api/servers/{server['id']}")
    for listing in ("/api/jobs", "/api/instances", "/api/environments", "/api/projects"):
        await api.call("GET", f"{listing}?limit=100")
