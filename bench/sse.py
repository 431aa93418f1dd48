"""Many SSE subscribers on one API process following one running deployment's log.

    PYTHONPATH=. python bench/sse.py [--subscribers 500] [--rate 2000] [--seconds 10]
                                     [--procs 1] [--tick-ms 10] [--drain 240]

Processes (the machine has 2 cores; the API process must not share its
event loop, or its core, with the clients):

  * the API: ``python -m ocore.cli serve`` (uvicorn, one process) with the
    Redis event bus (a private redis-server) and a throwaway PostgreSQL
    database holding one organization, project, instance and a *running*
    deployment;
  * the subscribers: ``--procs`` processes of this script (``--subscriber``),
    each holding its share of ``--subscribers`` HTTP connections to
    ``GET /api/projects/<p>/deployments/<d>/logs`` on plain asyncio sockets
    (a regex over the received bytes, no per-event HTTP client work), so a
    subscriber costs microseconds per event;
  * this process: waits until every subscriber has its ``200`` and headers,
    then publishes ``--rate`` lines per second for ``--seconds`` on
    ``deployment:<id>`` with ``RedisEventBus.publish_many`` (one batch per
    ``--tick-ms``), each line carrying its sequence number and the time of
    its publish call, then a ``complete`` event, which ends every stream.

Every subscriber checks that it got every line, in order, once; latency is
its receive time minus the publish time in the line (same clock: one machine).
Lines still undelivered ``--drain`` seconds after the last publish count as lost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from _harness import (
    bench_settings,
    cpu_seconds,
    free_port,
    machine,
    ocore_database,
    ocore_env,
    private_redis,
    report,
    spawn,
    stop_processes,
    wait_for_port,
)

from ocore.core.crypto import SecretBox
from ocore.core.db import Database
from ocore.core.events import RedisEventBus
from ocore.deployments.models import Deployment
from ocore.deployments.steps import deployment_stream
from ocore.instances.models import Instance
from ocore.orgs import service as orgs
from ocore.projects.models import Project
from ocore.servers.models import Server
from ocore.settings import Settings

SCRIPT = str(Path(__file__).resolve())
LINE = re.compile(rb'"line": "(\d+) (\d+\.\d+)"')
COMPLETE = b"event: complete"

# -- subscribers (a process of their own) ----------------------------------------------


@dataclass
class Totals:
    """What one subscriber process saw, over all its connections."""

    histogram: Counter[int] = field(default_factory=Counter)  # latency, in 0.1 ms bins
    lines: int = 0
    gaps: int = 0  # lines skipped (a later one came first)
    backwards: int = 0  # lines that came again or after a later one
    complete: int = 0  # streams that ended with the complete event
    full: int = 0  # ... having had every line, in order
    errors: Counter[str] = field(default_factory=Counter)
    ready: int = 0
    bytes: int = 0
    last_receive: float = 0.0


def latency_bin(ms: float) -> int:
    """0.1 ms bins below 1 s, 10 ms bins above (both counted in 0.1 ms units)."""
    return int(ms * 10) if ms < 1000 else int(ms / 10) * 100


class Subscriber(asyncio.Protocol):
    def __init__(
        self, request: bytes, totals: Totals, expected: int, ready: asyncio.Event, target: int
    ) -> None:
        self.request = request
        self.totals = totals
        self.expected_lines = expected
        self.all_ready = ready
        self.target = target
        self.transport: asyncio.Transport | None = None
        self.head = b""
        self.headers_done = False
        self.tail = b""
        self.next_seq = 0
        self.in_order = True
        self.completed = False
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = cast(asyncio.Transport, transport)
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        totals = self.totals
        totals.bytes += len(data)
        if not self.headers_done:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            status = self.head.split(b" ", 2)[1]
            if status != b"200":
                totals.errors[f"HTTP {status.decode()}"] += 1
                self.close()
                return
            self.headers_done = True
            data, self.head = self.head[end + 4 :], b""
            totals.ready += 1
            if totals.ready == self.target:
                self.all_ready.set()
        buffer = self.tail + data
        cut = buffer.rfind(b"\n") + 1
        chunk, self.tail = buffer[:cut], buffer[cut:]
        histogram = totals.histogram
        for match in LINE.finditer(chunk):
            seq = int(match[1])
            histogram[latency_bin((now - float(match[2])) * 1000)] += 1
            totals.lines += 1
            if seq == self.next_seq:
                self.next_seq += 1
            elif seq > self.next_seq:
                totals.gaps += seq - self.next_seq
                self.next_seq = seq + 1
                self.in_order = False
            else:
                totals.backwards += 1
                self.in_order = False
        if chunk:
            totals.last_receive = now
        if COMPLETE in chunk:
            self.completed = True
            totals.complete += 1
            if self.in_order and self.next_seq == self.expected_lines:
                totals.full += 1
            self.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.completed:
            self.totals.errors[f"closed early: {exc!r}"] += 1
        if not self.done.done():
            self.done.set_result(None)


async def subscribe(spec: dict[str, Any]) -> None:
    """Open ``spec['count']`` streams, say "ready", follow them, print the totals as JSON."""
    totals = Totals()
    ready = asyncio.Event()
    request = (
        f"GET {spec['path']} HTTP/1.1\r\nHost: 127.0.0.1:{spec['port']}\r\n"
        f"Authorization: Bearer {spec['token']}\r\nAccept: text/event-stream\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    loop = asyncio.get_running_loop()
    subscribers: list[Subscriber] = []
    for _ in range(spec["count"]):
        protocol = Subscriber(request, totals, spec["lines"], ready, spec["count"])
        await loop.create_connection(lambda p=protocol: p, "127.0.0.1", spec["port"])
        subscribers.append(protocol)
    try:
        await asyncio.wait_for(ready.wait(), 120)
    except TimeoutError:
        print(json.dumps({"failed": f"only {totals.ready} streams opened"}), flush=True)
        return
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)  # the publisher is done
    drain_until = time.monotonic() + spec["drain"]
    pending = [s.done for s in subscribers if not s.done.done()]
    if pending:
        await asyncio.wait(pending, timeout=max(0.0, drain_until - time.monotonic()))
    for s in subscribers:
        if not s.done.done():
            totals.errors["still open after the drain time"] += 1
            s.close()
    usage = os.times()
    result = {
        "histogram": dict(totals.histogram),
        "lines": totals.lines,
        "gaps": totals.gaps,
        "backwards": totals.backwards,
        "complete": totals.complete,
        "full": totals.full,
        "errors": dict(totals.errors),
        "bytes": totals.bytes,
        "last_receive": totals.last_receive,
        "cpu": usage.user + usage.system,
    }
    print(json.dumps(result), flush=True)


def run_subscriber() -> None:
    spec = json.loads(sys.stdin.readline())
    try:
        import uvloop
    except ImportError:
        asyncio.run(subscribe(spec))
    else:
        uvloop.run(subscribe(spec))


# -- the benchmark ---------------------------------------------------------------------


async def seed(settings: Settings, database: Database) -> tuple[str, uuid.UUID, uuid.UUID]:
    """An owner's token, a project and a running deployment of it; returns (token, p, d)."""
    box = SecretBox(settings.effective_secret_key)
    async with database.sessionmaker() as session:
        organization, owner = await orgs.create_organization(
            session, name=f"Bench {uuid.uuid4().hex[:6]}", owner_email="owner@bench.test"
        )
        issued = await orgs.issue_token(session, settings, owner, name="bench")
        server = Server(
            organization_id=organization.id,
            name="bench-host",
            host="localhost",
            username="root",
            is_local=True,
            runtime="native",
        )
        project = Project(
            organization_id=organization.id,
            name="shop",
            repository_url="https://example.com/shop.git",
            git_provider="git",
            odoo_version="17.0",
            webhook_secret_encrypted=box.encrypt(uuid.uuid4().hex),
        )
        session.add_all([server, project])
        await session.flush()
        instance = Instance(
            organization_id=organization.id,
            server_id=server.id,
            project_id=project.id,
            name="Shop",
            slug="shop",
            status="running",
            odoo_version="17.0",
            database_name="shop",
        )
        session.add(instance)
        await session.flush()
        deployment = Deployment(
            organization_id=organization.id,
            project_id=project.id,
            instance_id=instance.id,
            status="running",
            branch="main",
            commit_sha="0" * 40,
        )
        session.add(deployment)
        await session.commit()
        return issued.token, project.id, deployment.id


def summarize(histogram: Counter[int], q: float) -> float:
    """The q-th percentile in ms of a histogram of 0.1 ms bins."""
    total = sum(histogram.values())
    rank = max(1, int(q / 100 * total + 0.999999))
    seen = 0
    for key in sorted(histogram):
        seen += histogram[key]
        if seen >= rank:
            return key / 10
    return float("nan")


async def start_subscribers(
    procs: int, spec: dict[str, Any], subscribers: int
) -> list[asyncio.subprocess.Process]:
    started = []
    shares = [subscribers // procs + (i < subscribers % procs) for i in range(procs)]
    for share in shares:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            SCRIPT,
            "--subscriber",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=256 * 2**20,  # the results are one (long) line of JSON
        )
        assert process.stdin is not None
        process.stdin.write((json.dumps({**spec, "count": share}) + "\n").encode())
        await process.stdin.drain()
        started.append(process)
    for process in started:
        assert process.stdout is not None
        line = (await process.stdout.readline()).decode().strip()
        if line != "ready":
            raise RuntimeError(f"a subscriber process did not get its streams: {line}")
    return started


async def publish(bus: RedisEventBus, stream: str, rate: int, seconds: float, tick: float) -> int:
    """``rate`` lines a second on a fixed schedule (catching up when late); returns the count."""
    total = int(rate * seconds)
    start = time.monotonic()
    seq = 0
    late = 0
    while seq < total:
        due = int(min(total, rate * (time.monotonic() - start + tick)))
        if due > seq:
            sent = time.time()
            stamp = f"{sent:.6f}"
            items = [
                {"type": "log", "step": "bench", "line": f"{n} {stamp}"} for n in range(seq, due)
            ]
            await bus.publish_many(stream, items)
            seq = due
        wait = start + seq / rate - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        else:
            late += 1
    elapsed = time.monotonic() - start
    await bus.publish(stream, {"type": "complete", "status": "succeeded"})
    print(f"published {total} lines in {elapsed:.2f}s ({total / elapsed:.0f}/s)", flush=True)
    return total


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=500)
    parser.add_argument("--rate", type=int, default=2000, help="lines per second")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--procs", type=int, default=1, help="subscriber processes")
    parser.add_argument("--tick-ms", type=float, default=10, help="publish batch interval")
    parser.add_argument("--drain", type=float, default=240, help="seconds to wait after")
    args = parser.parse_args()

    print(f"machine: {machine()}", flush=True)
    lines = int(args.rate * args.seconds)
    with private_redis() as redis, tempfile.TemporaryDirectory(prefix="ocore-bench-") as data:
        async with ocore_database() as url:
            settings = bench_settings(url, redis.url, Path(data))
            database = Database(url)
            try:
                token, project_id, deployment_id = await seed(settings, database)
            finally:
                await database.dispose()
            port = free_port()
            api = spawn(
                [sys.executable, "-m", "ocore.cli", "serve", "--port", str(port)],
                ocore_env(settings, OCORE_LOG_LEVEL="INFO"),
            )
            subscribers: list[asyncio.subprocess.Process] = []
            bus = RedisEventBus(redis.url)
            try:
                await asyncio.to_thread(wait_for_port, port, 60)
                spec = {
                    "port": port,
                    "path": f"/api/projects/{project_id}/deployments/{deployment_id}/logs",
                    "token": token,
                    "lines": lines,
                    "drain": args.drain,
                }
                opened = time.monotonic()
                subscribers = await start_subscribers(args.procs, spec, args.subscribers)
                print(
                    f"{args.subscribers} streams open in {args.procs} process(es) "
                    f"after {time.monotonic() - opened:.1f}s",
                    flush=True,
                )
                api_cpu = cpu_seconds(api[0].pid)
                started = time.time()
                stream = deployment_stream(deployment_id)
                await publish(bus, stream, args.rate, args.seconds, args.tick_ms / 1000)
                published = time.time()
                results = []
                for process in subscribers:
                    assert process.stdin is not None
                    process.stdin.write(b"done\n")
                    await process.stdin.drain()
                for process in subscribers:
                    assert process.stdout is not None
                    results.append(json.loads(await process.stdout.readline()))
                    await process.wait()
                api_cpu = cpu_seconds(api[0].pid) - api_cpu
            finally:
                for process in subscribers:
                    if process.returncode is None:
                        process.terminate()
                        await process.wait()
                await bus.close()
                stop_processes(api)

    histogram: Counter[int] = Counter()
    for r in results:
        histogram.update({int(k): v for k, v in r["histogram"].items()})
    received = sum(r["lines"] for r in results)
    expected = lines * args.subscribers
    last = max(r["last_receive"] for r in results)
    errors: Counter[str] = Counter()
    for r in results:
        errors.update(r["errors"])
    client_cpu = sum(r["cpu"] for r in results)
    wall = last - started
    print(
        f"\n{args.subscribers} subscribers, {args.rate} lines/s for {args.seconds:g}s "
        f"({lines} lines, {expected} deliveries expected), {args.procs} subscriber process(es)\n"
    )
    print(f"streams complete, every line in order : {sum(r['full'] for r in results)}")
    print(f"streams that ended with 'complete'    : {sum(r['complete'] for r in results)}")
    print(f"lines received                        : {received} ({received / expected:.2%})")
    print(f"lines lost (gaps)                     : {sum(r['gaps'] for r in results)}")
    print(f"lines out of order or repeated        : {sum(r['backwards'] for r in results)}")
    print(f"lines never received                  : {expected - received}")
    for message, count in errors.items():
        print(f"error: {message} x{count}")
    print(f"latency p50                           : {summarize(histogram, 50):.1f} ms")
    print(f"latency p99                           : {summarize(histogram, 99):.1f} ms")
    print(f"latency max                           : {max(histogram) / 10:.1f} ms")
    print(
        f"last line received                    : {last - published:.1f}s after the last "
        f"publish ({received / wall:.0f} deliveries/s over {wall:.1f}s)"
    )
    print(
        f"CPU: API process {api_cpu:.1f}s ({api_cpu / wall:.0%} of a core, "
        f"{api_cpu / max(received, 1) * 1e6:.0f} us per delivery), "
        f"subscriber process(es) {client_cpu:.1f}s"
    )
    setup = f"SSE: {args.subscribers} subscribers, {args.rate} lines/s"
    report(f"{setup}, lines lost", expected - received, None, "", "goal 0")
    report(f"{setup}, latency p50", summarize(histogram, 50), None, "ms")
    report(f"{setup}, latency p99", summarize(histogram, 99), None, "ms")
    report(f"{setup}, deliveries/s of one API process", received / wall, None, "")
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--subscriber"]:
        run_subscriber()
    else:
        sys.exit(asyncio.run(main()))
