"""The control plane's own time per deploy, and whether a deploy drops any request.

    PYTHONPATH=. python bench/deploy.py [--deploys 4] [--rate 50] [--test-tags /shop_custom]

Builds what the deployment tests use, outside pytest: a private sshd playing
the Odoo host, a private nginx as its reverse proxy, the odoo-bin stand-in
installed as Odoo 17.0 under a throwaway base directory, a real git
repository (bare origin + working clone) with one custom module, and ocore
served over real HTTP by uvicorn in this process (the embedded default's
in-process jobs, on a throwaway PostgreSQL database). Through the API it
registers the host, a project (with ``--test-tags``, so deploys run the
tests step) and a staging instance, then deploys ``--deploys`` times, each a
new commit bumping the module's version (so every deploy updates the module).

Per deploy it reports the wall time from ``POST /deploy`` to the ``complete``
event on the deployment's SSE stream, the job's own duration
(``durationMs``: started to completed), the durations of the steps that run
Odoo ("update modules", "run tests") and the rest: ocore's overhead
(fetching, snapshot, build, health wait, switch, bookkeeping, queueing).

Meanwhile a load generator (``_httpload.py``, another process, so it neither
steals this event loop nor is slowed by it) sends ``--rate`` requests a second, open loop,
through nginx with ``Host: <slug>.localhost``, alternating ``/web/health``
and ``/web/login``. A request fails on a status outside 2xx/3xx, a
connection error or a 10 s timeout. Goal: no failure during any deploy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uvicorn
from _harness import (
    bench_settings,
    free_port,
    machine,
    ocore_database,
    stop_processes,
)
from _harness import report as report_row
from tests.fixtures.gitrepo import GitRepo
from tests.fixtures.nginx import Nginx, running_nginx
from tests.fixtures.odoo_runtime import install_odoo, kill_leftovers
from tests.fixtures.sshd import Sshd, running_sshd

from ocore.app import create_app
from ocore.core.db import Database
from ocore.core.uow import commit
from ocore.deployments.build import snapshot_name
from ocore.instances.service import database_name
from ocore.orgs import service as orgs
from ocore.settings import Settings

LOADGEN = Path(__file__).resolve().parent / "_httpload.py"
PG = "postgresql://ocore_test:ocore_test@127.0.0.1:5432/postgres"
DB = {"dbHost": "127.0.0.1", "dbPort": 5432, "dbUser": "ocore_test", "dbPassword": "ocore_test"}
ODOO_STEPS = ("update modules", "run tests")

# -- the control plane and the host ----------------------------------------------------


def manifest(version: str) -> str:
    data = {"name": "Shop custom", "version": version, "depends": ["base"]}
    return repr(data) + "\n"


async def api_ok(response: httpx.Response, status: int) -> dict[str, Any]:
    if response.status_code != status:
        raise RuntimeError(f"{response.request.method} {response.request.url}: {response.text}")
    data: dict[str, Any] = response.json()
    return data


async def wait_for_job(api: httpx.AsyncClient, headers: dict[str, str], job_id: str) -> None:
    deadline = time.monotonic() + 300
    while True:
        job = (await api.get(f"/api/jobs/{job_id}", headers=headers)).json()
        if job["status"] == "succeeded":
            return
        if job["status"] in ("failed", "cancelled") or time.monotonic() > deadline:
            raise RuntimeError(f"job {job_id} {job['status']}: {job.get('error')}")
        await asyncio.sleep(0.2)


async def follow(api: httpx.AsyncClient, headers: dict[str, str], path: str) -> dict[str, Any]:
    """Read the deployment's SSE stream until its ``complete`` event; returns that event's data."""
    event: dict[str, str] = {}
    async with api.stream("GET", path, headers=headers, timeout=600) as response:
        async for line in response.aiter_lines():
            if line == "":
                if event.get("event") == "complete":
                    data: dict[str, Any] = json.loads(event["data"])
                    return data
                event = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                event[name] = value.removeprefix(" ")
    raise RuntimeError("the log stream ended without a complete event")


async def provision(
    api: httpx.AsyncClient,
    headers: dict[str, str],
    sshd: Sshd,
    nginx: Nginx,
    base_dir: Path,
    repo: GitRepo,
    test_tags: str | None,
) -> dict[str, Any]:
    """The host, a project on the repository and a running staging instance of it."""
    server = await api_ok(
        await api.post(
            "/api/servers",
            json={
                "name": "bench-host",
                "host": sshd.host,
                "port": sshd.port,
                "username": sshd.username,
                "privateKey": sshd.client_private_key,
                "baseDir": str(base_dir),
                "nginxSitesDir": str(nginx.sites),
                "nginxCommand": nginx.command(),
                "nginxListen": f"{nginx.host}:{nginx.port}",
                **DB,
            },
            headers=headers,
        ),
        201,
    )
    project = await api_ok(
        await api.post(
            "/api/projects",
            json={
                "name": "shop",
                "repositoryUrl": repo.url,
                "odooVersion": "17.0",
                **({"testTags": test_tags} if test_tags else {}),
            },
            headers=headers,
        ),
        201,
    )
    slug = f"shop-{uuid.uuid4().hex[:6]}"
    instance = await api_ok(
        await api.post(
            "/api/instances",
            json={
                "name": "Shop",
                "slug": slug,
                "serverId": server["id"],
                "projectId": project["id"],
                "environmentType": "staging",
                "branch": "main",
            },
            headers=headers,
        ),
        202,
    )
    jobs = (await api.get(f"/api/jobs?targetId={instance['id']}", headers=headers)).json()
    await wait_for_job(api, headers, jobs["jobs"][0]["id"])
    return {"project": project, "instance": instance, "slug": slug}


async def serve(settings: Settings) -> tuple[str, uvicorn.Server, asyncio.Task[None]]:
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task
            raise RuntimeError("uvicorn stopped while starting")
        await asyncio.sleep(0.05)
    return f"http://127.0.0.1:{port}", server, task


async def owner_token(settings: Settings, url: str) -> str:
    database = Database(url)
    try:
        async with database.sessionmaker() as session:
            _, owner = await orgs.create_organization(
                session, name=f"Bench {uuid.uuid4().hex[:6]}", owner_email="owner@bench.test"
            )
            issued = await orgs.issue_token(session, settings, owner, name="bench")
            await commit(session)
            return issued.token
    finally:
        await database.dispose()


async def drop_databases(names: list[str]) -> None:
    connection = await asyncpg.connect(PG)
    try:
        for name in names:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


# -- the benchmark ---------------------------------------------------------------------


async def deploy_once(
    api: httpx.AsyncClient, headers: dict[str, str], env: dict[str, Any], repo: GitRepo, n: int
) -> dict[str, Any]:
    sha = repo.commit(
        {"shop_custom/__manifest__.py": manifest(f"17.0.1.{n}.0")}, f"Release {n}", push="main"
    )
    project_id = env["project"]["id"]
    posted = time.time()
    deployment = await api_ok(
        await api.post(
            f"/api/projects/{project_id}/deploy",
            json={"instanceId": env["instance"]["id"], "commitSha": sha},
            headers=headers,
        ),
        202,
    )
    path = f"/api/projects/{project_id}/deployments/{deployment['id']}"
    outcome = await follow(api, headers, f"{path}/logs")
    completed = time.time()
    done = (await api.get(path, headers=headers)).json()
    steps = {s["name"]: (s["durationMs"] or 0) / 1000 for s in done["steps"]}
    return {
        "id": deployment["id"],
        "status": outcome.get("status"),
        "error": outcome.get("errorMessage"),
        "posted": posted,
        "completed": completed,
        "wall": completed - posted,
        "job": (done["durationMs"] or 0) / 1000,
        "odoo": sum(steps.get(name, 0.0) for name in ODOO_STEPS),
        "steps": steps,
    }


def read_load(path: Path) -> list[tuple[float, float, str, str]]:
    rows = []
    for line in path.read_text().splitlines():
        sent, took, url_path, outcome = line.split()
        rows.append((float(sent), float(took), url_path, outcome))
    return rows


def failed(outcome: str) -> bool:
    return not (outcome.isdigit() and 200 <= int(outcome) < 400)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deploys", type=int, default=4)
    parser.add_argument("--rate", type=float, default=50, help="requests per second")
    parser.add_argument(
        "--test-tags", default="/shop_custom", help="the project's test tags ('' for none)"
    )
    args = parser.parse_args()

    print(f"machine: {machine()}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="ocore-bench-deploy-"))
    base_dir = work / "odoo-host"
    install_odoo(base_dir, "17.0")
    repo = GitRepo.create(work)
    repo.commit({"shop_custom/__manifest__.py": manifest("17.0.1.0.0")}, "Add shop_custom")
    load_file = work / "load.txt"
    results: list[dict[str, Any]] = []
    databases: list[str] = []
    with running_sshd() as sshd, running_nginx() as nginx:
        async with ocore_database() as url:
            settings = bench_settings(url, None, work / "ocore-data")
            token = await owner_token(settings, url)
            headers = {"Authorization": f"Bearer {token}"}
            base, server, serving = await serve(settings)
            load: list[subprocess.Popen[bytes]] = []
            try:
                async with httpx.AsyncClient(base_url=base, timeout=60) as api:
                    started = time.monotonic()
                    env = await provision(
                        api, headers, sshd, nginx, base_dir, repo, args.test_tags or None
                    )
                    databases.append(database_name(env["slug"]))
                    took = time.monotonic() - started
                    print(f"instance {env['slug']} provisioned in {took:.1f}s", flush=True)
                    host = f"{env['slug']}.localhost"
                    load = [
                        await asyncio.to_thread(spawn_load, nginx.url, host, args.rate, load_file)
                    ]
                    await asyncio.sleep(3)  # the load runs against the live colour first
                    for n in range(1, args.deploys + 1):
                        result = await deploy_once(api, headers, env, repo, n)
                        databases.append(snapshot_name(uuid.UUID(result["id"])))
                        results.append(result)
                        print(
                            f"deploy {n}: {result['status']} in {result['wall']:.2f}s "
                            f"(job {result['job']:.2f}s, Odoo steps {result['odoo']:.2f}s)",
                            flush=True,
                        )
                        if result["status"] != "succeeded":
                            print(f"  error: {result['error']}", flush=True)
                        await asyncio.sleep(2)  # a quiet moment between deploys
            finally:
                await asyncio.to_thread(finish_load, load)
                server.should_exit = True
                await serving
                for instance_dir in (base_dir / "instances").glob("*"):
                    kill_leftovers(instance_dir)
                await drop_databases(databases)
    requests = read_load(load_file) if load_file.exists() else []
    shutil.rmtree(work, ignore_errors=True)
    report(results, requests, args)
    return 0


def spawn_load(url: str, host: str, rate: float, out: Path) -> subprocess.Popen[bytes]:
    """The load generator (``_httpload.py``), in a process of its own; waits for its "ready"."""
    process = subprocess.Popen(  # noqa: S603 - this venv's python, a script of ours
        [sys.executable, str(LOADGEN), url, host, str(rate), str(out)], stdout=subprocess.PIPE
    )
    assert process.stdout is not None
    if process.stdout.readline().strip() != b"ready":
        raise RuntimeError("the load generator did not start")
    return process


def finish_load(load: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM: it waits for its requests in flight, writes what it saw and exits."""
    stop_processes(load, timeout=30)


def report(
    results: list[dict[str, Any]], requests: list[tuple[float, float, str, str]], args: Any
) -> None:
    print(
        f"\n{len(results)} deploys (each bumps the module version: update modules"
        f"{' + run tests' if args.test_tags else ''}), seconds:\n"
    )
    names: list[str] = []
    for r in results:
        names += [name for name in r["steps"] if name not in names]
    header = (
        f"{'#':>2} {'status':<10} {'wall':>6} {'job':>6} {'Odoo':>6} {'ocore':>6} "
        f"{'ocore/job':>9} {'requests':>8} {'failed':>6}"
    )
    print(header)
    print("-" * len(header))
    for n, r in enumerate(results, 1):
        during = [q for q in requests if r["posted"] <= q[0] <= r["completed"]]
        bad = [q for q in during if failed(q[3])]
        r["requests"], r["failed"] = len(during), len(bad)
        print(
            f"{n:>2} {r['status']:<10} {r['wall']:>6.2f} {r['job']:>6.2f} {r['odoo']:>6.2f} "
            f"{r['wall'] - r['odoo']:>6.2f} {r['job'] - r['odoo']:>9.2f} "
            f"{len(during):>8} {len(bad):>6}"
        )
    if results:
        print(
            f"{'median':>13} {statistics.median(r['wall'] for r in results):>6.2f} "
            f"{statistics.median(r['job'] for r in results):>6.2f} "
            f"{statistics.median(r['odoo'] for r in results):>6.2f} "
            f"{statistics.median(r['wall'] - r['odoo'] for r in results):>6.2f} "
            f"{statistics.median(r['job'] - r['odoo'] for r in results):>9.2f}"
        )
    print(
        "\nwall: POST /deploy to the SSE 'complete' event; job: the deployment's durationMs; "
        "Odoo: 'update modules' + 'run tests'; ocore: wall - Odoo; ocore/job: job - Odoo"
    )
    print("\nsteps, median seconds:")
    for name in names:
        values = [r["steps"][name] for r in results if name in r["steps"]]
        print(f"  {name:<18} {statistics.median(values):>6.2f}")
    total_bad = [q for q in requests if failed(q[3])]
    latencies = sorted(q[1] for q in requests if not failed(q[3]))
    print(
        f"\nload: {len(requests)} requests through nginx in all "
        f"({args.rate:g}/s), {len(total_bad)} failed "
        f"({sum(r['failed'] for r in results)} during deploys); "
        f"p50 {latencies[len(latencies) // 2] * 1000 if latencies else float('nan'):.1f} ms, "
        f"max {latencies[-1] * 1000 if latencies else float('nan'):.1f} ms"
    )
    for what, count in Counter(f"{q[2]} {q[3]}" for q in total_bad).most_common():
        print(f"  failed: {what} x{count}")
    zero = all(r["failed"] == 0 for r in results) and all(
        r["status"] == "succeeded" for r in results
    )
    print(f"zero downtime: {'yes' if zero else 'NO'}")
    if results:
        ocore = statistics.median(r["wall"] - r["odoo"] for r in results)
        odoo = statistics.median(r["odoo"] for r in results)
        ok = sum(r["status"] == "succeeded" for r in results)
        figure = f"deploy: ocore's time per deploy, median of {len(results)}"
        note = f"reference: Odoo's update + tests; {ok} of {len(results)} succeeded"
        report_row(figure, ocore, odoo, "s", note)
    during = [sum(r.get(key, 0) for r in results) for key in ("failed", "requests")]
    figure = f"deploy: requests failed during the deploys ({args.rate:g}/s)"
    report_row(figure, f"{during[0]} of {during[1]}", None, "", "goal 0")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
