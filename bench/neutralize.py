"""Neutralizing a large Odoo 17 database over SSH: end-to-end time and SQL round trips.

    PYTHONPATH=. python bench/neutralize.py [--crons 2000] [--mail-servers 50]
                                            [--providers 200] [--carriers 200] [--repeat 5]

Builds what the neutralization tests use, outside pytest: a private sshd
playing the Odoo host and the odoo-bin stand-in's Odoo 17.0 database (the
modules of ``tests/neutralization/test_neutralize_17.py``, installed once by
``odoo-bin -i … --stop-after-init``). That database is then inflated with
asyncpg to ``--crons`` crons (active, each with its ``ir_act_server`` and
xmlid, so names come from the translated server action as in Odoo),
``--mail-servers`` active SMTP servers with credentials, ``--providers``
payment providers (enabled, live Stripe or Adyen keys) and ``--carriers``
FedEx carriers (``prod_environment``, live credentials). That is the golden
copy; every round neutralizes a fresh ``CREATE DATABASE … TEMPLATE`` of it.

ocore runs in this process (the embedded default: jobs in-process) on a
throwaway PostgreSQL database; the server is registered through the API with
the sshd's address and key, so the Odoo database is reached the way
production reaches it: SSH connection, tunnel to the host's PostgreSQL,
asyncpg through the tunnel. The instance row points at the working copy
(provisioning it through ocore would only add an nginx and minutes); the
project and the staging environment are made through the API.

A round: ``POST /api/environments/<id>/neutralization/neutralize``, then
the job is awaited. The SSH pool is closed before each round, so every
round pays the SSH handshake, and the items of the previous round are
deleted, so every round records all of them anew. Measured, in the bench
only (module attributes of ocore replaced by wrappers): the wall time from
the POST to the job seen succeeded (the goal's figure), the engine's own
time split in phases, the calls on the Odoo connection (each one SQL round
trip through the tunnel; BEGIN and COMMIT counted too) and the statements
ocore sent to its own database meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from _harness import bench_settings, machine, ocore_database
from _harness import report as report_row
from sqlalchemy import delete, event, update
from tests.fixtures.odoo_standin.harness import OdooCheckout
from tests.fixtures.sshd import Sshd, running_sshd

import ocore.neutralization.engine as engine
import ocore.neutralization.jobs as neutralization_jobs
from ocore.app import create_app
from ocore.core.uow import commit
from ocore.environments.models import Environment
from ocore.instances.models import Instance
from ocore.neutralization.models import NeutralizationItem
from ocore.orgs import service as orgs

PG = {"host": "127.0.0.1", "port": 5432, "user": "ocore_test", "password": "ocore_test"}
DB = {"dbHost": "127.0.0.1", "dbPort": 5432, "dbUser": "ocore_test", "dbPassword": "ocore_test"}
MODULES = [
    "mail",
    "payment_stripe",
    "payment_adyen",
    "delivery_fedex",
    "iap",
    "website",
    "auth_oauth",
    "social_facebook",
]
GOAL_SECONDS = 3.0

# -- the Odoo database ------------------------------------------------------------------


def build_standin(work: Path, name: str) -> None:
    """The stand-in's Odoo 17.0 database with the neutralization tests' modules."""
    odoo = OdooCheckout(work / "odoo-17.0", "17.0", PG["user"])
    odoo.write_conf(db_password=PG["password"])
    result = odoo.run("-d", name, "-i", ",".join(MODULES), "--stop-after-init", timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"odoo-bin -i failed ({result.returncode}):\n{result.stderr}")


INFLATE_CRONS = """
WITH actions AS (
    INSERT INTO ir_act_server (name, type, usage, state, binding_type, model_name, code,
                               create_uid, create_date, write_uid, write_date)
    SELECT jsonb_build_object('en_US', 'Shop: scheduled job ' || i,
                              'fr_FR', 'Boutique : tâche planifiée ' || i),
           'ir.actions.server', 'ir_cron', 'code', 'action', 'res.partner',
           'model._cron_shop_job_' || i || '()', 1, now(), 1, now()
    FROM generate_series(1, $1) i
    RETURNING id, name
), crons AS (
    INSERT INTO ir_cron (ir_actions_server_id, cron_name, user_id, active, interval_number,
                         interval_type, nextcall, priority, numbercall, doall,
                         create_uid, create_date, write_uid, write_date)
    SELECT id, name->>'en_US', 1, true, 1 + id % 12,
           (ARRAY['minutes', 'hours', 'days', 'weeks'])[1 + id % 4],
           now() + (id % 600) * interval '1 minute', 5, -1, false, 1, now(), 1, now()
    FROM actions
    RETURNING id
)
INSERT INTO ir_model_data (module, name, model, res_id, noupdate,
                           create_uid, create_date, write_uid, write_date)
SELECT 'shop_jobs', 'ir_cron_shop_job_' || id, 'ir.cron', id, true, 1, now(), 1, now() FROM crons
"""

INFLATE_MAIL_SERVERS = """
INSERT INTO ir_mail_server (name, from_filter, smtp_host, smtp_port, smtp_authentication,
                            smtp_user, smtp_pass, smtp_encryption, smtp_debug, sequence,
                            active, create_uid, create_date, write_uid, write_date)
SELECT 'Relay ' || i, 'shop' || i || '.example.com', 'smtp' || i || '.example.com', 587,
       'login', 'odoo@shop' || i || '.example.com', 'prod-smtp-' || md5(i::text), 'starttls',
       false, 30 + i, true, 1, now(), 1, now()
FROM generate_series(1, $1) i
"""

INFLATE_PROVIDERS = """
INSERT INTO payment_provider (name, sequence, code, state, company_id, is_published,
                              stripe_secret_key, stripe_publishable_key, stripe_webhook_secret,
                              adyen_merchant_account, adyen_api_key, adyen_client_key,
                              adyen_hmac_key, adyen_api_url_prefix,
                              create_uid, create_date, write_uid, write_date)
SELECT jsonb_build_object('en_US', initcap(code) || ' ' || i), 100 + i, code, 'enabled',
       1 + i % 3, true,
       CASE WHEN code = 'stripe' THEN 'sk_live_' || md5(i::text) END,
       CASE WHEN code = 'stripe' THEN 'pk_live_' || md5((-i)::text) END,
       CASE WHEN code = 'stripe' THEN 'whsec_' || md5((i * 7)::text) END,
       CASE WHEN code = 'adyen' THEN 'Shop' || i || 'ECOM' END,
       CASE WHEN code = 'adyen' THEN 'AQE' || md5(i::text) || md5((-i)::text) END,
       CASE WHEN code = 'adyen' THEN 'live_' || left(md5(i::text), 16) END,
       CASE WHEN code = 'adyen' THEN upper(md5((i * 3)::text)) END,
       CASE WHEN code = 'adyen' THEN left(md5(i::text), 16) || '-Shop' || i END,
       1, now(), 1, now()
FROM generate_series(1, $1) i,
     LATERAL (SELECT CASE WHEN i % 2 = 0 THEN 'stripe' ELSE 'adyen' END AS code) c
"""

INFLATE_CARRIERS = """
INSERT INTO delivery_carrier (name, sequence, delivery_type, integration_level,
                              prod_environment, debug_logging, company_id, active,
                              fedex_developer_key, fedex_developer_password,
                              fedex_account_number, fedex_meter_number,
                              create_uid, create_date, write_uid, write_date)
SELECT jsonb_build_object('en_US', 'FedEx ' || i), 100 + i, 'fedex', 'rate_and_ship', true,
       false, 1 + i % 3, true, 'fdx-key-' || md5(i::text), 'fdx-pass-' || md5((-i)::text),
       (510000000 + i)::text, (119000000 + i)::text, 1, now(), 1, now()
FROM generate_series(1, $1) i
"""


async def inflate(name: str, args: argparse.Namespace) -> dict[str, int]:
    """Add rows until each table holds the asked number; returns the final counts."""
    conn = await asyncpg.connect(**PG, database=name)
    try:
        async with conn.transaction():
            for table, target, sql in (
                ("ir_cron", args.crons, INFLATE_CRONS),
                ("ir_mail_server", args.mail_servers, INFLATE_MAIL_SERVERS),
                ("payment_provider", args.providers, INFLATE_PROVIDERS),
                ("delivery_carrier", args.carriers, INFLATE_CARRIERS),
            ):
                have = await conn.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608
                if target > have:
                    await conn.execute(sql, target - have)
        await conn.execute("VACUUM ANALYZE")
        counts = {
            "crons (active)": "SELECT count(*) FROM ir_cron WHERE active",
            "crons": "SELECT count(*) FROM ir_cron",
            "mail servers (active)": "SELECT count(*) FROM ir_mail_server WHERE active",
            "payment providers (enabled)": (
                "SELECT count(*) FROM payment_provider WHERE state = 'enabled'"
            ),
            "payment providers": "SELECT count(*) FROM payment_provider",
            "carriers (production)": "SELECT count(*) FROM delivery_carrier WHERE prod_environment",
            "carriers": "SELECT count(*) FROM delivery_carrier",
        }
        return {label: int(await conn.fetchval(sql)) for label, sql in counts.items()}
    finally:
        await conn.close()


async def admin(sql: str) -> None:
    conn = await asyncpg.connect(**PG, database="postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def still_live(name: str) -> dict[str, int]:
    """What neutralizing should have switched off, read directly (not through ocore)."""
    conn = await asyncpg.connect(**PG, database=name)
    try:
        return {
            "active crons": await conn.fetchval(
                "SELECT count(*) FROM ir_cron WHERE active AND id NOT IN (SELECT res_id FROM"
                " ir_model_data WHERE model = 'ir.cron' AND name = 'autovacuum_job')"
            ),
            "active real mail servers": await conn.fetchval(
                "SELECT count(*) FROM ir_mail_server WHERE active AND smtp_host <> 'invalid'"
            ),
            "enabled providers": await conn.fetchval(
                "SELECT count(*) FROM payment_provider WHERE state = 'enabled'"
                " OR stripe_secret_key IS NOT NULL OR adyen_api_key IS NOT NULL"
            ),
            "production carriers": await conn.fetchval(
                "SELECT count(*) FROM delivery_carrier WHERE prod_environment"
            ),
        }
    finally:
        await conn.close()


# -- measuring inside ocore (this process only) -------------------------------------------

COUNTED = ("fetch", "fetchrow", "fetchval", "execute", "executemany")


class CountingConnection:
    """The engine's asyncpg connection, counting each call that is a round trip."""

    def __init__(self, conn: Any, calls: Counter[str]) -> None:
        self._conn = conn
        self._calls = calls

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._conn, name)
        if name in COUNTED:

            async def counted(*args: Any, **kwargs: Any) -> Any:
                self._calls[name] += 1
                return await attr(*args, **kwargs)

            return counted
        if name == "transaction":
            self._calls["BEGIN/COMMIT"] += 2
        return attr


class Probe:
    """Times and counts of one neutralization, filled by the wrappers below."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.marks: dict[str, float] = {}
        self.odoo_calls: Counter[str] = Counter()
        self.ocore_statements = 0
        self.counting = False
        self.done = asyncio.Event()

    def mark(self, name: str) -> None:
        self.marks[name] = time.perf_counter()


def install_probe(probe: Probe, app: Any) -> None:
    """Wrap the engine's entry point, its connection and its store step; count ocore's SQL."""
    run_engine = neutralization_jobs.neutralize_environment
    connect = engine.connect
    store = engine._store_originals

    async def timed_engine(*args: Any, **kwargs: Any) -> Any:
        probe.mark("engine start")
        probe.counting = True
        try:
            return await run_engine(*args, **kwargs)
        finally:
            probe.counting = False
            probe.mark("engine end")
            probe.done.set()

    @contextlib.asynccontextmanager
    async def counted_connect(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        async with connect(*args, **kwargs) as conn:
            probe.mark("connected")
            yield CountingConnection(conn, probe.odoo_calls)
        probe.mark("odoo committed")  # the transaction ends before the connection closes

    async def timed_store(*args: Any, **kwargs: Any) -> None:
        probe.mark("store start")
        await store(*args, **kwargs)
        probe.mark("store end")

    neutralization_jobs.neutralize_environment = timed_engine  # type: ignore[assignment]
    engine.connect = counted_connect  # type: ignore[assignment]
    engine._store_originals = timed_store  # type: ignore[assignment]

    def count(*_: Any) -> None:
        if probe.counting:
            probe.ocore_statements += 1

    event.listen(app.state.database.engine.sync_engine, "before_cursor_execute", count)


# -- ocore ------------------------------------------------------------------------------


async def ok(response: httpx.Response, status: int) -> dict[str, Any]:
    if response.status_code != status:
        raise RuntimeError(f"{response.request.method} {response.request.url}: {response.text}")
    data: dict[str, Any] = response.json()
    return data


async def set_up(
    app: Any, api: httpx.AsyncClient, sshd: Sshd, work: Path, database_name: str
) -> tuple[dict[str, str], dict[str, Any]]:
    """A tenant, the SSH server, an instance row on it, a project and a staging environment."""
    settings, database = app.state.settings, app.state.database
    async with database.sessionmaker() as session:
        organization, owner = await orgs.create_organization(
            session, name=f"Bench {uuid.uuid4().hex[:6]}", owner_email="owner@bench.test"
        )
        issued = await orgs.issue_token(session, settings, owner, name="bench")
        await commit(session)
    headers = {"Authorization": f"Bearer {issued.token}"}
    server = await ok(
        await api.post(
            "/api/servers",
            json={
                "name": "odoo-host",
                "host": sshd.host,
                "port": sshd.port,
                "username": sshd.username,
                "privateKey": sshd.client_private_key,
                "runtime": "native",
                "baseDir": str(work / "odoo-host"),
                **DB,
            },
            headers=headers,
        ),
        201,
    )
    async with database.sessionmaker() as session:
        instance = Instance(
            organization_id=organization.id,
            server_id=uuid.UUID(server["id"]),
            name="Shop 17",
            slug=f"shop17-{uuid.uuid4().hex[:6]}",
            status="running",
            odoo_version="17.0",
            database_name=database_name,
        )
        session.add(instance)
        await session.commit()
        instance_id = instance.id
    project = await ok(
        await api.post(
            "/api/projects",
            json={"name": "shop", "repositoryUrl": "/srv/shop.git", "odooVersion": "17.0"},
            headers=headers,
        ),
        201,
    )
    environment = await ok(
        await api.post(
            f"/api/projects/{project['id']}/environments",
            json={
                "instanceId": str(instance_id),
                "branch": "staging",
                "environmentType": "staging",
                "name": "Staging",
            },
            headers=headers,
        ),
        201,
    )
    return headers, environment


async def reset_round(app: Any, environment_id: uuid.UUID) -> None:
    """As before the first neutralization: no items, not neutralized, no SSH connection."""
    async with app.state.database.sessionmaker() as session:
        await session.execute(
            delete(NeutralizationItem).where(NeutralizationItem.environment_id == environment_id)
        )
        await session.execute(
            update(Environment)
            .where(Environment.id == environment_id)
            .values(is_neutralized=False, status_message=None)
        )
        await session.commit()
    await app.state.jobs.ssh_pool.close_all()


async def neutralize_once(
    api: httpx.AsyncClient, headers: dict[str, str], environment: dict[str, Any], probe: Probe
) -> dict[str, Any]:
    probe.reset()
    path = f"/api/environments/{environment['id']}/neutralization"
    posted = time.perf_counter()
    accepted = await ok(
        await api.post(f"{path}/neutralize", json={"confirmText": environment["name"]},
                       headers=headers),
        202,
    )  # fmt: skip
    # No polling while the engine runs: it would compete for this event loop.
    await asyncio.wait_for(probe.done.wait(), 600)
    while True:
        job = await ok(await api.get(f"/api/jobs/{accepted['jobId']}", headers=headers), 200)
        if job["status"] in ("succeeded", "failed", "cancelled"):
            break
        await asyncio.sleep(0.005)
    wall = time.perf_counter() - posted
    if job["status"] != "succeeded":
        raise RuntimeError(f"job {job['status']}: {job['error']}")
    m = probe.marks
    return {
        "wall": wall,
        "queued": m["engine start"] - posted,
        "engine": m["engine end"] - m["engine start"],
        "connect": m["connected"] - m["engine start"],
        "scan": m["store start"] - m["connected"],
        "store": m["store end"] - m["store start"],
        "update": m["odoo committed"] - m["store end"],
        "finish": m["engine end"] - m["odoo committed"],
        "after": wall - (m["engine end"] - posted),
        "odoo_calls": dict(probe.odoo_calls),
        "ocore_statements": probe.ocore_statements,
        "output": job["steps"][0]["output"] if job["steps"] else "",
    }


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crons", type=int, default=2000)
    parser.add_argument("--mail-servers", type=int, default=50)
    parser.add_argument("--providers", type=int, default=200)
    parser.add_argument("--carriers", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    print(f"machine: {machine()}", flush=True)
    tag = uuid.uuid4().hex[:8]
    golden, working = f"bench_neutral_golden_{tag}", f"bench_neutral_{tag}"
    work = Path(tempfile.mkdtemp(prefix="ocore-bench-neutralize-"))
    results: list[dict[str, Any]] = []
    try:
        started = time.perf_counter()
        await asyncio.to_thread(build_standin, work, golden)
        print(f"stand-in Odoo 17.0 database built in {time.perf_counter() - started:.1f}s")
        started = time.perf_counter()
        counts = await inflate(golden, args)
        print(f"inflated in {time.perf_counter() - started:.1f}s: "
              + ", ".join(f"{n} {label}" for label, n in counts.items()), flush=True)  # fmt: skip
        with running_sshd() as sshd:
            async with ocore_database() as url:
                settings = bench_settings(url, None, work / "ocore-data").model_copy(
                    update={"health_check_interval_seconds": 3600}
                )
                app = create_app(settings)
                probe = Probe()
                install_probe(probe, app)
                async with app.router.lifespan_context(app):
                    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
                    async with httpx.AsyncClient(
                        transport=transport, base_url="http://ocore.test", timeout=600
                    ) as api:
                        headers, environment = await set_up(app, api, sshd, work, working)
                        for n in range(1, args.repeat + 1):
                            await admin(f'DROP DATABASE IF EXISTS "{working}" WITH (FORCE)')
                            await admin(f'CREATE DATABASE "{working}" TEMPLATE "{golden}"')
                            await reset_round(app, uuid.UUID(environment["id"]))
                            result = await neutralize_once(api, headers, environment, probe)
                            result["left"] = await still_live(working)
                            results.append(result)
                            print(
                                f"round {n}: {result['wall']:.2f}s end to end (engine "
                                f"{result['engine']:.2f}s), "
                                f"{sum(result['odoo_calls'].values())} Odoo round trips, "
                                f"{result['ocore_statements']} ocore statements",
                                flush=True,
                            )
    finally:
        for name in (working, golden):
            await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(work, ignore_errors=True)
    report(results, args)
    return 0


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    if not results:
        return
    last = results[-1]
    print("\nneutralize step output (last round):")
    for line in last["output"].splitlines():
        print(f"  {line}")
    print(f"\nleft live after the last round: {last['left']}")

    def med(key: str) -> float:
        return statistics.median(r[key] for r in results)

    print(f"\n{len(results)} rounds, median seconds:\n")
    rows = [
        ("end to end (POST to job succeeded)", "wall"),
        ("  queued (POST to engine start)", "queued"),
        ("  engine", "engine"),
        ("    connect (ocore reads, SSH, tunnel, PG)", "connect"),
        ("    introspect + scan (locks rows)", "scan"),
        ("    store originals (ocore DB, sealed)", "store"),
        ("    updates + commit (Odoo DB)", "update"),
        ("    mark items neutralized (ocore DB)", "finish"),
        ("  job bookkeeping after the engine", "after"),
    ]
    for label, key in rows:
        print(f"{label:<44} {med(key):>7.3f}")
    calls: Counter[str] = Counter()
    for r in results:
        calls.update(r["odoo_calls"])
    per_round = {k: v // len(results) for k, v in sorted(calls.items())}
    print(
        f"\nOdoo database round trips per run: {sum(per_round.values())} "
        f"({', '.join(f'{k} {v}' for k, v in per_round.items())})"
    )
    print(
        "ocore database statements during the engine run (an executemany counts once): "
        f"{int(med('ocore_statements'))}"
    )
    wall = med("wall")
    goal = "within" if wall < GOAL_SECONDS else "OVER"
    print(
        f"\nend to end {wall:.2f}s for {args.crons} crons, {args.mail_servers} mail servers, "
        f"{args.providers} providers, {args.carriers} carriers: {goal} the "
        f"{GOAL_SECONDS:.0f} s goal ({wall / GOAL_SECONDS:.2f}x)"
    )
    others = args.mail_servers + args.providers + args.carriers
    figure = f"neutralize {args.crons} crons + {others} rows over SSH, median of {len(results)}"
    report_row(figure, wall, GOAL_SECONDS, "s", "reference: the goal")
    left = sum(last["left"].values())
    report_row("  records left live after neutralizing", left, None, "", "goal 0")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
