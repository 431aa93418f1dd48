"""A mixed read/write load on 1 and 2 API replicas, and list latency at 100 vs 10,000 rows.

    PYTHONPATH=. python bench/load.py [--duration 60] [--clients 200] [--replicas 1,2]
                                      [--warmup 5] [--rows 100,10000] [--list-rounds 100]

On a throwaway database (ocore's schema) and a private redis-server, it seeds
two organizations with bulk inserts, one per ``--rows`` size, each with that
many projects, servers, instances (one primary domain each), environments (all
in the first project), deployments (all of the first project) and jobs, then
``VACUUM ANALYZE`` (as autovacuum would have by then). Each replica is
``python -m ocore.cli serve`` (one uvicorn process, ocore's default INFO logs,
to /dev/null) on a port of its own, all on that database and Redis.

* **List scaling**: on one replica, ``_apiload.py`` (a process of its own)
  sends every list endpoint's first page (default page size) as each
  organization's owner, one request at a time, in a shuffled order each round,
  ``--list-rounds`` rounds; p50/p99 per endpoint and size, and large/small
  (goal: within 2x).
* **Mixed load**: for each replica count, ``--clients`` closed-loop clients
  (no think time) spread round-robin over the replicas, as the larger
  organization's owner, 40% list pages, 40% detail reads, 20% writes (create,
  rename, describe an environment, delete), ``--warmup`` s then ``--duration``
  s measured: errors (goal 0), requests/s, p50/p99 per class, the CPU the
  replicas, PostgreSQL and the generator used, and the machine's busy share.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _harness import (
    bench_settings,
    cpu_seconds,
    free_port,
    machine,
    ocore_database,
    ocore_env,
    percentile,
    private_redis,
    report,
    spawn,
    stop_processes,
    wait_for_port,
)
from sqlalchemy import insert, make_url, text

from ocore.core.crypto import SecretBox
from ocore.core.db import Database
from ocore.deployments.models import Deployment
from ocore.environments.models import Environment
from ocore.instances.models import Domain, Instance
from ocore.jobs.models import Job
from ocore.orgs import service as orgs
from ocore.projects.models import Project
from ocore.servers.models import Server
from ocore.settings import Settings

CLIENT = str(Path(__file__).resolve().parent / "_apiload.py")
WEIGHTS = {"list": 40, "detail": 40, "write": 20}
CLASSES = ("list", "detail", "write")


# -- seeding ----------------------------------------------------------------------------


def ids(n: int) -> list[uuid.UUID]:
    return [uuid.uuid4() for _ in range(n)]


async def seed(database: Database, settings: Settings, rows: int) -> dict[str, Any]:
    """An organization with ``rows`` of each listed kind; its owner's token and the ids."""
    box = SecretBox(settings.effective_secret_key)
    secret = box.encrypt(uuid.uuid4().hex)  # one ciphertext for all: only listed, never used
    start = datetime.now(UTC) - timedelta(seconds=rows)
    at = [start + timedelta(seconds=i) for i in range(rows)]
    servers, projects, instances, environments, deployments, jobs = (ids(rows) for _ in range(6))
    async with database.sessionmaker() as session:
        organization, owner = await orgs.create_organization(
            session, name=f"Load {rows} {uuid.uuid4().hex[:6]}", owner_email="owner@load.test"
        )
        token = (await orgs.issue_token(session, settings, owner, name="load")).token
        org = organization.id
        tables: list[tuple[Any, list[dict[str, Any]]]] = [
            (Server, [{"id": servers[i], "organization_id": org, "name": f"host-{i:05d}",
                       "host": f"10.0.{i // 250}.{i % 250 + 1}", "username": "odoo",
                       "runtime": "native", "status": "online", "created_at": at[i]}
                      for i in range(rows)]),
            (Project, [{"id": projects[i], "organization_id": org, "name": f"project-{i:05d}",
                        "repository_url": f"git@git.example.com:shop/p{i}.git",
                        "git_provider": "ssh", "odoo_version": "17.0",
                        "webhook_secret_encrypted": secret, "created_at": at[i]}
                       for i in range(rows)]),
            (Instance, [{"id": instances[i], "organization_id": org, "server_id": servers[i],
                         "project_id": projects[0], "name": f"Shop {i:05d}",
                         "slug": f"shop-{i:05d}", "status": "running", "odoo_version": "17.0",
                         "database_name": f"shop_{i:05d}", "created_at": at[i]}
                        for i in range(rows)]),
            (Domain, [{"organization_id": org, "instance_id": instances[i],
                       "domain": f"shop-{i:05d}.{org.hex[:8]}.example.com", "is_primary": True}
                      for i in range(rows)]),
            (Environment, [{"id": environments[i], "organization_id": org,
                            "project_id": projects[0], "instance_id": instances[i],
                            "name": f"env-{i:05d}", "branch": f"feature-{i:05d}",
                            "environment_type": "production" if i == 0 else "development",
                            "created_at": at[i]}
                           for i in range(rows)]),
            (Deployment, [{"id": deployments[i], "organization_id": org,
                           "project_id": projects[0], "instance_id": instances[i],
                           "environment_id": environments[i], "status": "succeeded",
                           "branch": f"feature-{i:05d}", "commit_sha": f"{i:040x}",
                           "created_at": at[i], "started_at": at[i], "completed_at": at[i],
                           "duration_ms": 1000} for i in range(rows)]),
            (Job, [{"id": jobs[i], "organization_id": org, "kind": "diagnostics.noop",
                    "target_type": "diagnostics", "status": "succeeded", "attempt": 1,
                    "created_at": at[i], "started_at": at[i], "finished_at": at[i]}
                   for i in range(rows)]),
        ]  # fmt: skip
        for model, values in tables:
            for first in range(0, rows, 2000):
                await session.execute(insert(model), values[first : first + 2000])
        await session.commit()
    return {
        "rows": rows,
        "token": token,
        "project": str(projects[0]),
        "environments": [str(e) for e in environments],
        "details": [
            ["/api/projects/{}", [str(i) for i in projects]],
            ["/api/servers/{}", [str(i) for i in servers]],
            ["/api/instances/{}", [str(i) for i in instances]],
            ["/api/environments/{}", [str(i) for i in environments]],
            ["/api/jobs/{}", [str(i) for i in jobs]],
            [f"/api/projects/{projects[0]}/deployments/{{}}", [str(i) for i in deployments]],
        ],
    }


def list_paths(org: dict[str, Any]) -> dict[str, str]:
    """Every list endpoint's first page, as ``GET /api/...`` (by template) to its path."""
    project = org["project"]
    return {
        "/api/projects": "/api/projects",
        "/api/servers": "/api/servers",
        "/api/instances": "/api/instances",
        "/api/environments": "/api/environments",
        "/api/jobs": "/api/jobs",
        "/api/projects/{id}/environments": f"/api/projects/{project}/environments",
        "/api/projects/{id}/deployments": f"/api/projects/{project}/deployments",
    }


# -- replicas and the generator ----------------------------------------------------------


def start_replicas(
    settings: Settings, count: int
) -> tuple[list[subprocess.Popen[bytes]], list[int]]:
    ports = [free_port() for _ in range(count)]
    env = ocore_env(settings, OCORE_LOG_LEVEL="INFO")  # ocore's default: an access log line each
    processes = []
    for port in ports:
        argv = [sys.executable, "-m", "ocore.cli", "serve", "--port", str(port)]
        processes += spawn(argv, env)
    for port in ports:
        wait_for_port(port, 60)
    return processes, ports


def generate(spec: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(  # noqa: S603 - this benchmark's own generator
        [sys.executable, CLIENT], input=json.dumps(spec), capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"the load generator failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def backends_cpu(database: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving ``database`` (by process title)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if f" {database} ".encode() in stat.read_bytes():
                found[int(stat.parent.name)] = cpu_seconds(int(stat.parent.name))
        except (OSError, IndexError):
            continue  # gone meanwhile
    return found


def busy_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine so far, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def quantiles(values: list[float]) -> str:
    return f"{percentile(values, 50):7.1f} {percentile(values, 99):7.1f}"


def list_scaling(settings: Settings, orgs_: list[dict[str, Any]], rounds: int) -> None:
    small, large = orgs_[0], orgs_[-1]
    processes, ports = start_replicas(settings, 1)
    try:
        targets = [
            {"endpoint": endpoint, "size": org["rows"], "token": org["token"], "path": path}
            for org in (small, large)
            for endpoint, path in list_paths(org).items()
        ]
        # One connection: each request's latency is its own cost, not a queue behind others'.
        spec = {"mode": "lists", "port": ports[0], "concurrency": 1, "rounds": rounds}
        result = generate({**spec, "targets": targets})
    finally:
        stop_processes(processes)
    lat = result["latencies"]
    print(f"\nList endpoints, first page: {rounds} requests per size, one at a time, 1 replica")
    print(f"{'endpoint':<34} {'rows':>6} {'p50 ms':>7} {'p99 ms':>7}   large/small p50, p99")
    worst = 0.0
    for endpoint in list_paths(small):
        a, b = lat[f"{endpoint}|{small['rows']}"], lat[f"{endpoint}|{large['rows']}"]
        r50 = percentile(b, 50) / percentile(a, 50)
        r99 = percentile(b, 99) / percentile(a, 99)
        worst = max(worst, r50)
        print(f"{endpoint:<34} {small['rows']:>6} {quantiles(a)}")
        print(f"{'':<34} {large['rows']:>6} {quantiles(b)}   {r50:.2f}x, {r99:.2f}x")
        figure = f"list {endpoint} p50, {large['rows']:,} vs {small['rows']} rows"
        report(figure, percentile(b, 50), percentile(a, 50), "ms", "goal: within 2x")
    print(f"errors: {sum(result['errors'].values())} {dict(result['errors'])}")
    print(f"worst large/small p50: {worst:.2f}x (goal: within 2x)")


def mixed(
    settings: Settings, org: dict[str, Any], replicas: int, args: argparse.Namespace
) -> dict[str, Any]:
    processes, ports = start_replicas(settings, replicas)
    try:
        spec = {
            "mode": "mixed", "run": uuid.uuid4().hex[:6], "ports": ports, "token": org["token"],
            "clients": args.clients, "warmup": args.warmup, "duration": args.duration,
            "weights": WEIGHTS,
            "lists": list(list_paths(org).values()), "details": org["details"],
            "environments": org["environments"][1 : args.clients + 1],
        }  # fmt: skip
        generator = subprocess.Popen(  # noqa: S603 - this benchmark's own generator
            [sys.executable, CLIENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert generator.stdin is not None
        generator.stdin.write(json.dumps(spec))
        generator.stdin.close()
        # CPU over the measured window only (the generator's clock starts within ~0.1 s).
        time.sleep(args.warmup)
        name = make_url(settings.effective_database_url).database or ""
        cpu, machine_before = sum(cpu_seconds(p.pid) for p in processes), busy_ticks()
        pg_before = backends_cpu(name)
        time.sleep(args.duration)
        cpu = sum(cpu_seconds(p.pid) for p in processes) - cpu
        pg = sum(t - pg_before.get(pid, 0.0) for pid, t in backends_cpu(name).items())
        busy, total = (a - b for a, b in zip(busy_ticks(), machine_before, strict=True))
        assert generator.stdout is not None
        out = generator.stdout.read()
        generator.wait()
        if generator.returncode != 0:
            raise RuntimeError("the load generator failed")
        result: dict[str, Any] = json.loads(out)
    finally:
        stop_processes(processes)
    result.update(replicas=replicas, replica_cpu=cpu, pg_cpu=pg, busy=busy / total)
    return result


def print_mixed(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(
        f"\nMixed load: {args.clients} closed-loop clients, {args.duration:g} s measured after "
        f"{args.warmup:g} s warm-up; {WEIGHTS['list']}% list, {WEIGHTS['detail']}% detail, "
        f"{WEIGHTS['write']}% write"
    )
    header = f"{'replicas':>8} {'requests':>8} {'errors':>6} {'req/s':>7}"
    header += "".join(f" {c + ' p50':>11} {'p99':>7}" for c in CLASSES)
    header += f" {'CPU: replicas':>13} {'PostgreSQL':>10} {'generator':>9} {'machine busy':>12}"
    print(header)
    for r in results:
        line = f"{r['replicas']:>8} {r['requests']:>8} {sum(r['errors'].values()):>6}"
        line += f" {rps(r):>7.0f}"
        line += "".join(f" {quantiles(r['latencies'].get(c, [])):>19}" for c in CLASSES)
        line += f" {r['replica_cpu']:>11.1f} s {r['pg_cpu']:>8.1f} s {r['cpu']:>7.1f} s"
        line += f" {r['busy']:>12.0%}"
        print(line)
        for message, count in r["errors"].items():
            print(f"    error: {message} x{count}")
    base = results[0]
    for r in results[1:]:
        ratio = rps(r) / rps(base)
        print(f"throughput, {r['replicas']} replicas vs {base['replicas']}: {ratio:.2f}x")
    # For bench/run.py: the last replica count, against the first as the reference.
    last = results[-1]
    vs = f"{last['replicas']} replicas vs {base['replicas']}" if last is not base else "1 replica"
    ref = base if last is not base else None
    for r in results:
        figure = f"load: errors, {r['replicas']} replica(s), {args.clients} clients"
        report(figure, sum(r["errors"].values()), None, "", "goal 0")
    report(f"load: throughput, {vs}", rps(last), rps(ref) if ref else None, "req/s")
    for c in CLASSES:
        for q in (50, 99):
            value = percentile(last["latencies"].get(c, []), q)
            reference = percentile(ref["latencies"].get(c, []), q) if ref else None
            report(f"load: {c} p{q}, {vs}", value, reference, "ms")


def rps(result: dict[str, Any]) -> float:
    return float(result["requests"] / result["seconds"])


async def prepare(settings: Settings, sizes: list[int]) -> list[dict[str, Any]]:
    database = Database(settings.effective_database_url)
    try:
        seeded = []
        for rows in sizes:
            started = time.monotonic()
            seeded.append(await seed(database, settings, rows))
            seconds = time.monotonic() - started
            print(f"seeded {rows} rows of each kind in {seconds:.1f} s", flush=True)
        # As autovacuum would have by then: planner statistics and the visibility map.
        async with database.engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text("VACUUM ANALYZE"))
        return seeded
    finally:
        await database.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=5, help="unmeasured seconds first")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--replicas", default="1,2", help="replica counts, in order")
    parser.add_argument("--rows", default="100,10000", help="rows of each kind: small,large")
    parser.add_argument("--list-rounds", type=int, default=100, help="requests per list and size")
    args = parser.parse_args()
    sizes = [int(n) for n in args.rows.split(",")]

    print(f"machine: {machine()}", flush=True)
    with private_redis() as redis, tempfile.TemporaryDirectory(prefix="ocore-bench-") as data:

        async def database() -> None:
            async with ocore_database() as url:
                settings = bench_settings(url, redis.url, Path(data))
                seeded = await prepare(settings, sizes)
                # The rest runs in threads: subprocesses and sleeps, the database kept.
                await asyncio.to_thread(measure, settings, seeded, args)

        asyncio.run(database())
    return 0


def measure(settings: Settings, seeded: list[dict[str, Any]], args: argparse.Namespace) -> None:
    if args.list_rounds:
        list_scaling(settings, seeded, args.list_rounds)
    results = [mixed(settings, seeded[-1], int(n), args) for n in args.replicas.split(",") if n]
    if results:
        print_mixed(results, args)


if __name__ == "__main__":
    sys.exit(main())
