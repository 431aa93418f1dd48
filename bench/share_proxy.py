"""A share link's proxy against the same requests made directly to the upstream.

    PYTHONPATH=. python bench/share_proxy.py [--requests 20000] [--concurrency 8]
                                             [--repeat 5] [--download-mb 200]
                                             [--slow-mbps 40] [--via-ssh]

Processes (the machine has 2 cores, so each party gets its own process and
none shares an event loop with another):

  * the upstream: this script with ``--upstream``, a small asyncio HTTP/1.1
    server (keep-alive) standing in for the environment's Odoo, as the share
    tests' recording upstream does: ``/`` a small page (what opening the
    link shows), ``/web/assets/bench.min.js`` a 100 KB
    asset (``application/javascript``, ``Content-Length``, Odoo's cache
    headers), ``/web/content/download`` a ``--download-mb`` body written in
    64 KB chunks as fast as the reader takes them;
  * ocore: ``python -m ocore.cli serve`` (uvicorn, one process, in-process
    jobs) on a throwaway PostgreSQL database, its RSS and CPU read from
    ``/proc/<pid>``;
  * two nginx (one worker each, OpenResty's Lua module) with the share
    gateway's config as ``ocore share-gateway nginx-config`` writes it, in
    front of that ocore: one as it comes (static files kept 60 s), one with
    ``--static-cache-seconds 0`` (every request passes through to the upstream);
  * this process: the clients, on plain asyncio sockets (HTTP/1.1, one
    keep-alive connection per concurrent client, no HTTP library), so a
    request costs the client little next to what it measures.

Rows are made as the share tests make them: an organization, a server and an
instance whose HTTP port is the upstream's; the project, the staging
environment and a token share link through the API. The link is opened once
(``GET /api/share/<token>``) for its ``ocore_share`` cookie. The server is
this machine (``is_local``, no tunnel) unless ``--via-ssh``: then it is
registered with a private sshd's address and key, and the proxy reaches the
upstream as it reaches a remote Odoo, through an SSH tunnel (the gateway
then hands every request to ocore: its tunnels live there).

Throughput: GETs of the asset with ``--concurrency`` connections, directly
(``GET /web/assets/bench.min.js`` on the upstream), through ocore alone and
through each gateway (``GET /api/s-proxy/web/assets/bench.min.js`` with the
cookie): ``--requests`` each, ocore alone a twentieth of that (it serves a
few hundred a second), in ``--repeat`` rounds whose order rotates, after a
warm-up of each, and each timed run right after a tenth as many untimed
requests on the same path; requests/s, p50/p99 latency, ocore's CPU per
request, and gateway/direct (goal: at least 60 %) as the median of the
rounds' own ratios (the two paths of a round run seconds apart; the
machine's speed drifts more than that between rounds).

Memory: the download is streamed through the proxy twice, once read as fast
as possible and once read at ``--slow-mbps`` (the upstream is faster than the
reader, so only back-pressure keeps ocore from buffering it); ocore's
``VmRSS`` is sampled every 20 ms before, during and after (goal: flat).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvloop
from _harness import (
    bench_settings,
    cpu_seconds,
    free_port,
    machine,
    ocore_database,
    ocore_env,
    percentile,
    report,
    spawn,
    stop_processes,
    wait_for_port,
)
from tests.fixtures.nginx import Nginx, running_nginx
from tests.fixtures.sshd import running_sshd

from ocore.core.crypto import SecretBox
from ocore.core.db import Database
from ocore.core.uow import commit
from ocore.instances.models import Domain, Instance
from ocore.orgs import service as orgs
from ocore.servers.models import Server
from ocore.settings import Settings
from ocore.shares.gateway_nginx import GatewayConfig, render

SCRIPT = str(Path(__file__).resolve())
ASSET_PATH = "/web/assets/bench.min.js"
DOWNLOAD_PATH = "/web/content/download"
ASSET_SIZE = 100 * 1024
CHUNK = 64 * 1024
GOAL_RATIO = 0.60

# -- the upstream (a process of its own) --------------------------------------------------


def asset_body() -> bytes:
    line = b"odoo.define('bench.module', function (require) { return 42; });\n"
    return (line * (ASSET_SIZE // len(line) + 1))[:ASSET_SIZE]


async def upstream(download_bytes: int) -> None:
    asset = asset_body()
    asset_head = (
        "HTTP/1.1 200 OK\r\nContent-Type: application/javascript; charset=utf-8\r\n"
        f"Content-Length: {len(asset)}\r\nCache-Control: public, max-age=31536000\r\n"
        'ETag: "bench-asset-1"\r\n\r\n'
    ).encode()
    download_head = (
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Length: {download_bytes}\r\n"
        'Content-Disposition: attachment; filename="backup.zip"\r\n\r\n'
    ).encode()
    page = (
        b'<!DOCTYPE html><html><head><script src="/web/assets/bench.min.js"></script></head></html>'
    )
    home = (
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
        f"Content-Length: {len(page)}\r\n\r\n"
    ).encode() + page
    not_found = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
    chunk = os.urandom(CHUNK)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].split(b"?", 1)[0].decode()
                if path == ASSET_PATH:
                    writer.write(asset_head + asset)
                elif path == DOWNLOAD_PATH:
                    writer.write(download_head)
                    left = download_bytes
                    while left > 0:
                        writer.write(chunk[: min(CHUNK, left)])
                        left -= CHUNK
                        await writer.drain()
                elif path == "/":
                    writer.write(home)
                else:
                    writer.write(not_found)
                await writer.drain()
                if b"connection: close" in head.lower():
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


# -- the clients (this process) -----------------------------------------------------------


class HTTPError(Exception):
    pass


async def read_response(
    reader: asyncio.StreamReader, rate: float | None = None
) -> tuple[int, int, bool]:
    """Read one response (Content-Length or chunked), dropping the body.

    (status, body bytes, whether the server keeps the connection open).
    """
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    headers = head.lower()
    length = None
    for line in headers.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    received = 0
    started = time.perf_counter()

    async def take(n: int) -> None:
        nonlocal received
        while n > 0:
            data = await reader.read(min(n, CHUNK))
            if not data:
                raise HTTPError("connection closed in the body")
            n -= len(data)
            received += len(data)
            if rate is not None:
                ahead = received / rate - (time.perf_counter() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)

    if length is not None:
        await take(length)
    elif b"transfer-encoding: chunked" in headers:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            await take(size)
            await reader.readexactly(2)
    return status, received, b"\r\nconnection: close\r\n" not in headers


@dataclass
class Run:
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    sizes: Counter[int] = field(default_factory=Counter)

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds


async def load(port: int, request: bytes, total: int, concurrency: int) -> Run:
    """``total`` requests over ``concurrency`` keep-alive connections, each one at a time."""
    run = Run()
    counts = [total // concurrency + (i < total % concurrency) for i in range(concurrency)]

    async def connection(count: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for _ in range(count):
                sent = time.perf_counter()
                writer.write(request)
                status, size, open_ = await read_response(reader)
                run.latencies.append(time.perf_counter() - sent)
                run.statuses[str(status)] += 1
                run.sizes[size] += 1
                if not open_:
                    # nginx closes a keep-alive connection after keepalive_requests.
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection(n) for n in counts))
    run.seconds = time.perf_counter() - started
    return run


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


async def download(port: int, request: bytes, rate: float | None, pid: int) -> dict[str, Any]:
    """Stream one download, sampling the ocore process's RSS before, during and after."""
    samples: list[int] = []
    stop = asyncio.Event()

    async def sample() -> None:
        while not stop.is_set():
            samples.append(rss_kb(pid))
            await asyncio.sleep(0.02)

    before = rss_kb(pid)
    sampler = asyncio.create_task(sample())
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.perf_counter()
    try:
        writer.write(request)
        status, size, _ = await read_response(reader, rate)
    finally:
        writer.close()
    seconds = time.perf_counter() - started
    stop.set()
    await sampler
    await asyncio.sleep(1.0)
    after = rss_kb(pid)
    return {
        "status": status,
        "bytes": size,
        "seconds": seconds,
        "before": before,
        "peak": max(samples),
        "after": after,
        "samples": len(samples),
    }


def get(path: str, port: int, cookie: str | None = None) -> bytes:
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Accept: */*",
        "Accept-Encoding: gzip, deflate, br",
        "User-Agent: ocore-bench",
    ]
    if cookie:
        lines.append(f"Cookie: {cookie}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# -- ocore ------------------------------------------------------------------------------


async def make_rows(
    settings: Settings, upstream_port: int, sshd: Any | None
) -> tuple[str, uuid.UUID]:
    """An owner token and an instance (on this machine or behind the sshd) at the upstream."""
    database = Database(settings.effective_database_url)
    box = SecretBox(settings.effective_secret_key)
    try:
        async with database.sessionmaker() as session:
            organization, owner = await orgs.create_organization(
                session, name=f"Bench {uuid.uuid4().hex[:6]}", owner_email="owner@bench.test"
            )
            issued = await orgs.issue_token(session, settings, owner, name="bench")
            if sshd is None:
                server = Server(organization_id=organization.id, name="local", host="localhost",
                                username="root", is_local=True, runtime="native")  # fmt: skip
            else:
                server = Server(
                    organization_id=organization.id,
                    name="odoo-host",
                    host=sshd.host,
                    port=sshd.port,
                    username=sshd.username,
                    is_local=False,
                    runtime="native",
                    private_key_encrypted=box.encrypt(sshd.client_private_key),
                )
            session.add(server)
            await session.flush()
            slug = f"shop-{uuid.uuid4().hex[:6]}"
            instance = Instance(
                organization_id=organization.id,
                server_id=server.id,
                name="Shop",
                slug=slug,
                status="running",
                odoo_version="17.0",
                database_name=slug.replace("-", "_"),
                http_port_host=upstream_port,
                longpolling_port_host=None,
                workers=0,
            )
            session.add(instance)
            await session.flush()
            session.add(Domain(organization_id=organization.id, instance_id=instance.id,
                               domain=f"{slug}.example.com", is_primary=True))  # fmt: skip
            await commit(session)
            return issued.token, instance.id
    finally:
        await database.dispose()


async def share_cookie(base: str, token: str, instance_id: uuid.UUID) -> str:
    """Project, environment and token link through the API; the cookie opening the link sets."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, timeout=30) as api:
        project = await api.post(
            "/api/projects",
            json={"name": "shop", "repositoryUrl": "/srv/shop.git", "odooVersion": "17.0"},
            headers=headers,
        )
        project.raise_for_status()
        environment = await api.post(
            f"/api/projects/{project.json()['id']}/environments",
            json={"instanceId": str(instance_id), "environmentType": "staging",
                  "branch": "staging"},
            headers=headers,
        )  # fmt: skip
        environment.raise_for_status()
        link = await api.post(
            f"/api/environments/{environment.json()['id']}/share",
            json={"shareType": "token", "expiresIn": "24h"},
            headers=headers,
        )
        link.raise_for_status()
        opened = await api.get(httpx.URL(link.json()["url"]).path)
        if opened.status_code != 200:
            raise RuntimeError(f"opening the share link: {opened.status_code} {opened.text}")
        value = opened.cookies.get("ocore_share")
        if not value:
            raise RuntimeError(f"no share cookie in {opened.headers}")
        return f"ocore_share={value}"


# -- the benchmark ---------------------------------------------------------------------


def start_upstream(download_bytes: int) -> tuple[subprocess.Popen[bytes], int]:
    process = subprocess.Popen(  # noqa: S603 - this venv's python, this script
        [sys.executable, SCRIPT, "--upstream", str(download_bytes)], stdout=subprocess.PIPE
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.isdigit():
        raise RuntimeError("the upstream did not start")
    return process, int(line)


def summary(runs: list[Run]) -> dict[str, float]:
    latencies = [x for run in runs for x in run.latencies]
    return {
        "rps": statistics.median(run.rps for run in runs),
        "p50": percentile(latencies, 50) * 1000,
        "p99": percentile(latencies, 99) * 1000,
    }


async def bench(args: argparse.Namespace, sshd: Any | None) -> int:
    download_bytes = args.download_mb * 1024 * 1024
    processes: list[subprocess.Popen[bytes]] = []
    gateway_token = secrets.token_urlsafe(32)
    with (
        tempfile.TemporaryDirectory(prefix="ocore-bench-share-") as work,
        running_nginx(lua=True) as nginx,
        running_nginx(lua=True) as nginx_uncached,
    ):
        upstream_process, upstream_port = start_upstream(download_bytes)
        processes.append(upstream_process)
        try:
            async with ocore_database() as url:
                settings = bench_settings(url, None, Path(work) / "ocore-data")
                token, instance_id = await make_rows(settings, upstream_port, sshd)
                port = free_port()
                env = ocore_env(settings, OCORE_HEALTH_CHECK_INTERVAL_SECONDS="3600",
                                OCORE_PUBLIC_URL=f"http://127.0.0.1:{port}",
                                OCORE_SHARE_GATEWAY_TOKEN=gateway_token)  # fmt: skip
                (api,) = spawn([sys.executable, "-m", "ocore.cli", "serve", "--port", str(port)],
                               env)  # fmt: skip
                processes.append(api)
                wait_for_port(port, timeout=60)
                cookie = await share_cookie(f"http://127.0.0.1:{port}", token, instance_id)
                ports = {
                    "direct": upstream_port,
                    "ocore": port,
                    "gateway": start_gateway(nginx, port, gateway_token, cache_seconds=60),
                    "passthrough": start_gateway(nginx_uncached, port, gateway_token, 0),
                }
                return await measure(args, api.pid, ports, cookie, download_bytes)
        finally:
            stop_processes(processes)


def start_gateway(nginx: Nginx, ocore_port: int, token: str, cache_seconds: int) -> int:
    """The share gateway's nginx config (as `ocore share-gateway nginx-config` writes it)."""
    port = free_port()
    config = GatewayConfig(
        listen=f"127.0.0.1:{port}",
        server_name="_",
        api=f"127.0.0.1:{ocore_port}",
        token=token,
        max_body_bytes=16 * 1024 * 1024,
        static_cache_seconds=cache_seconds,
        cache_dir=str(nginx.prefix / "share-cache"),
    )
    (nginx.sites / "ocore.conf").write_text(render(config))
    nginx.reload()
    wait_for_port(port, timeout=10)
    return port


async def measure(
    args: argparse.Namespace,
    pid: int,
    ports: dict[str, int],
    cookie: str,
    download_bytes: int,
) -> int:
    asset = f"/api/s-proxy{ASSET_PATH}"
    targets = {
        "direct": (ports["direct"], get(ASSET_PATH, ports["direct"])),
        "ocore": (ports["ocore"], get(asset, ports["ocore"], cookie)),
        "gateway": (ports["gateway"], get(asset, ports["gateway"], cookie)),
        "passthrough": (ports["passthrough"], get(asset, ports["passthrough"], cookie)),
    }
    # ocore alone serves a few hundred a second: fewer requests keep its rounds short.
    counts = {"direct": args.requests, "gateway": args.requests, "passthrough": args.requests,
              "ocore": max(args.concurrency * 10, args.requests // 20)}  # fmt: skip
    warm = max(args.concurrency * 10, args.requests // 10)
    for name, target in targets.items():
        await load(*target, min(warm, counts[name]), args.concurrency)
    runs: dict[str, list[Run]] = {name: [] for name in targets}
    cpu: dict[str, list[float]] = {"ocore": [], "gateway": [], "passthrough": []}
    for n in range(1, args.repeat + 1):
        # Rotated, so no path always runs first or last.
        names = list(targets)
        for name in names[n % len(names) :] + names[: n % len(names)]:
            # What the previous path left behind (its connections closing, its
            # process settling) must not fall into this one's timed requests.
            await load(*targets[name], counts[name] // 10, args.concurrency)
            used = cpu_seconds(pid)
            run = await load(*targets[name], counts[name], args.concurrency)
            if name in cpu:
                cpu[name].append((cpu_seconds(pid) - used) / counts[name])
            runs[name].append(run)
            bad = {k: v for k, v in run.statuses.items() if k != "200"}
            wrong = {k: v for k, v in run.sizes.items() if k != ASSET_SIZE}
            print(
                f"round {n} {name:<11} {run.rps:8.0f} req/s  p50 "
                f"{percentile(run.latencies, 50) * 1000:6.2f} ms  p99 "
                f"{percentile(run.latencies, 99) * 1000:6.2f} ms"
                + (f"  NON-200: {bad}" if bad else "")
                + (f"  WRONG SIZES: {wrong}" if wrong else ""),
                flush=True,
            )

    downloads = []
    upstream_port, port = ports["direct"], ports["ocore"]
    raw = await download(upstream_port, get(DOWNLOAD_PATH, upstream_port), None, pid)
    for label, rate in (("fast reader", None), (f"{args.slow_mbps:g} MB/s reader",
                                                args.slow_mbps * 1024 * 1024)):  # fmt: skip
        result = await download(port, get(f"/api/s-proxy{DOWNLOAD_PATH}", port, cookie), rate, pid)
        downloads.append((label, result))
        print(f"download ({label}): {json.dumps(result)}", flush=True)

    s = {name: summary(runs[name]) for name in targets}
    # Paired by round: the machine's speed drifts (other work on a shared host),
    # and the two paths of one round ran a few seconds apart.
    ratios = {
        name: [g.rps / d.rps for g, d in zip(runs[name], runs["direct"], strict=True)]
        for name in ("gateway", "passthrough")
    }
    medians = {name: statistics.median(each) for name, each in ratios.items()}
    ratio = medians["gateway"]
    print(
        f"\n100 KB asset, {args.requests} requests (ocore alone: {counts['ocore']}) x "
        f"{args.repeat} rounds, "
        f"{args.concurrency} keep-alive connections (medians of the rounds' req/s, "
        f"percentiles over all requests):\n"
    )
    print(f"{'':<22} {'req/s':>8} {'MB/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'ocore CPU/req':>14}")
    labels = {"direct": "direct (no ocore)", "ocore": "ocore alone",
              "gateway": "gateway (its default)", "passthrough": "gateway, no cache"}  # fmt: skip
    for name, row in s.items():
        used = f"{statistics.median(cpu[name]) * 1e6:.0f} us" if name in cpu else ""
        print(f"{labels[name]:<22} {row['rps']:>8.0f} {row['rps'] * ASSET_SIZE / 2**20:>7.1f} "
              f"{row['p50']:>8.2f} {row['p99']:>8.2f} {used:>14}")  # fmt: skip
    goal = "meets" if ratio >= GOAL_RATIO else "MISSES"
    print()
    for name, median in medians.items():
        each = ", ".join(f"{r:.1%}" for r in ratios[name])
        print(f"{labels[name]}/direct: {median:.1%} (median of the rounds' ratios: {each})")
    print(f"the default gateway {goal} the {GOAL_RATIO:.0%} goal")
    print(f"ocore alone/direct throughput: {s['ocore']['rps'] / s['direct']['rps']:.1%}")

    mb = download_bytes / 2**20
    print(f"\n{mb:.0f} MB download, ocore RSS in MB (sampled every 20 ms):\n")
    print(f"{'':<22} {'seconds':>8} {'MB/s':>7} {'before':>7} {'peak':>7} {'after':>7} "
          f"{'growth':>7}")  # fmt: skip
    print(f"{'direct (no ocore)':<22} {raw['seconds']:>8.2f} {mb / raw['seconds']:>7.0f}")
    flat = True
    for label, r in downloads:
        growth = (r["peak"] - r["before"]) / 1024
        complete = r["status"] == 200 and r["bytes"] == download_bytes
        flat = flat and complete and growth < 32
        print(
            f"{'proxied, ' + label:<22} {r['seconds']:>8.2f} {mb / r['seconds']:>7.0f} "
            f"{r['before'] / 1024:>7.1f} {r['peak'] / 1024:>7.1f} {r['after'] / 1024:>7.1f} "
            f"{growth:>+7.1f}" + ("" if complete else f"  INCOMPLETE ({r['bytes']} bytes)")
        )
    print(f"memory flat (peak growth under 32 MB, body complete): {'yes' if flat else 'NO'}")
    via = " over SSH" if args.via_ssh else ""
    figure = f"share proxy{via}: 100 KB asset, {args.concurrency} connections"
    report(f"{figure}, nginx gateway", s["gateway"]["rps"], s["direct"]["rps"], "req/s",
           f"reference: direct; goal ≥ 60%; median ratio of paired rounds {ratio:.1%}")  # fmt: skip
    passthrough = medians["passthrough"]
    report(f"{figure}, nginx gateway without its cache", s["passthrough"]["rps"],
           s["direct"]["rps"], "req/s",
           f"reference: direct; median ratio of paired rounds {passthrough:.1%}")  # fmt: skip
    report(f"{figure}, ocore alone", s["ocore"]["rps"], s["direct"]["rps"], "req/s",
           "reference: direct")  # fmt: skip
    for label, r in downloads:
        growth = (r["peak"] - r["before"]) / 1024  # RSS is sampled in KB
        report(f"share proxy{via}: {mb:.0f} MB download, {label}, RSS growth", growth, None, "MB")
    return 0


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--download-mb", type=int, default=200)
    parser.add_argument("--slow-mbps", type=float, default=40)
    parser.add_argument("--via-ssh", action="store_true", help="reach the upstream over SSH")
    args = parser.parse_args()
    print(f"machine: {machine()}", flush=True)
    if not args.via_ssh:
        return await bench(args, None)
    with running_sshd() as sshd:
        return await bench(args, sshd)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--upstream"]:
        uvloop.run(upstream(int(sys.argv[2])))
    else:
        sys.exit(uvloop.run(main()))
