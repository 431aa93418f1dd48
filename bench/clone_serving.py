"""Cloning a production database while it keeps serving requests (issue 6).

    python bench/clone_serving.py [--size-mb 1024] [--repeat 3] [--rate 50]

Builds an Odoo-shaped database of about ``--size-mb`` (with ``clone.py``'s
builder, on the local PostgreSQL as the role the tests use), then keeps it
serving: a small HTTP server, in a process of its own, runs a short query on
the source through its own asyncpg pool for every request (so the source
has live sessions, as under Odoo), and a load generator (``_httpload.py``,
another process) sends it ``--rate`` requests a second during each copy.
Interleaved round by round, it times:

  (a) raw ``pg_dump -Fd -j 2`` + ``createdb`` + ``pg_restore -j 2`` (dump removed),
  (b) ocore's ``clone_database(LocalHost(), pg, source, target)``: auto, which
      must pick dump/restore because the source is busy,

and prints the median seconds, ocore/raw (goal: at most 1.1x) and the
requests that failed during each copy (goal: 0). Everything it creates is
dropped or stopped at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
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
from _harness import free_port, machine, report, stop_processes, wait_for_port
from clone import PG, build, drop, sh

from ocore.hosts import LocalHost
from ocore.hosts.database import clone_database, staging_name

HERE = Path(__file__).resolve().parent
LOADGEN = HERE / "_httpload.py"
QUERY = "SELECT id, name, amount_total FROM sale_order WHERE partner_id = $1 LIMIT 10"


# -- the "serving" source: run as ``clone_serving.py --serve PORT DATABASE`` ----------------


def serve(port: int, database: str) -> None:
    import uvicorn

    pool: dict[str, asyncpg.Pool] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    pool["db"] = await asyncpg.create_pool(
                        host=PG.host,
                        port=PG.port,
                        user=PG.user,
                        password=PG.password,
                        database=database,
                        min_size=4,
                        max_size=8,
                    )
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await pool["db"].close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        status, body = 200, b"ok"
        try:
            rows = await pool["db"].fetch(QUERY, random.randint(1, 10_000))  # noqa: S311
            body = str(len(rows)).encode()
        except Exception as exc:  # any failure is a failed request
            status, body = 500, type(exc).__name__.encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")


def start_server(database: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(  # noqa: S603 - this venv's python, this script
        [sys.executable, __file__, "--serve", str(port), database]
    )
    wait_for_port(port)
    return process, f"http://127.0.0.1:{port}"


class Load:
    """``_httpload.py`` at ``rate`` req/s for as long as the ``with`` block lasts."""

    def __init__(self, url: str, rate: float, out: Path) -> None:
        self.url, self.rate, self.out = url, rate, out
        self.outcomes: Counter[str] = Counter()

    def __enter__(self) -> Load:
        self.process = subprocess.Popen(  # noqa: S603 - this venv's python, a script of ours
            [sys.executable, str(LOADGEN), self.url, "source", str(self.rate), str(self.out)],
            stdout=subprocess.PIPE,
        )
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != b"ready":
            stop_processes([self.process])
            raise RuntimeError("the load generator never got an answer")
        return self

    def __exit__(self, *exc: object) -> None:
        stop_processes([self.process], timeout=30)
        lines = self.out.read_text().splitlines() if self.out.exists() else []
        self.outcomes = Counter(line.split()[3] for line in lines)
        self.out.unlink(missing_ok=True)

    @property
    def failed(self) -> int:
        return sum(n for outcome, n in self.outcomes.items() if outcome != "200")

    @property
    def total(self) -> int:
        return sum(self.outcomes.values())


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rate", type=float, default=50)
    args = parser.parse_args()

    tag = uuid.uuid4().hex[:8]
    source, target = f"bench_src_{tag}", f"bench_dst_{tag}"
    host = LocalHost()
    work = tempfile.mkdtemp(prefix="ocore-bench-")
    jobs = "2"

    async def raw() -> None:
        dump = os.path.join(work, "dump")

        def commands() -> None:
            sh("pg_dump", "-Fd", "-j", jobs, "-f", dump, "-d", source)
            sh("createdb", "-T", "template0", target)
            sh("pg_restore", "-j", jobs, "--no-owner", "-d", target, dump)
            shutil.rmtree(dump)

        await asyncio.to_thread(commands)

    async def ocore() -> None:
        result = await clone_database(host, PG, source, target)
        assert result.method == "dump", f"a busy source must be dumped, got {result}"

    runs = {"raw pg_dump/pg_restore": raw, "ocore clone_database": ocore}
    times: dict[str, list[float]] = {name: [] for name in runs}
    failed: dict[str, list[int]] = {name: [] for name in runs}
    sent: dict[str, list[int]] = {name: [] for name in runs}
    server: subprocess.Popen[bytes] | None = None
    try:
        size = await build(source, args.size_mb)
        server, url = start_server(source)
        order = list(runs)
        for round_ in range(1, args.repeat + 1):
            shift = (round_ - 1) % len(order)
            for name in order[shift:] + order[:shift]:
                with Load(url, args.rate, Path(work, "load.txt")) as load:
                    started = time.perf_counter()
                    await runs[name]()
                    times[name].append(time.perf_counter() - started)
                await drop(target)
                failed[name].append(load.failed)
                sent[name].append(load.total)
                if load.failed:
                    print(f"  {name}: {dict(load.outcomes)}", flush=True)
            line = ", ".join(
                f"{name} {times[name][-1]:.2f}s ({failed[name][-1]}/{sent[name][-1]} failed)"
                for name in runs
            )
            print(f"round {round_}: {line}", flush=True)
    finally:
        if server is not None:
            stop_processes([server])
        for name in (source, target, staging_name(target)):
            await drop(name)
        shutil.rmtree(work, ignore_errors=True)

    median = {name: statistics.median(t) for name, t in times.items()}
    ratio = median["ocore clone_database"] / median["raw pg_dump/pg_restore"]
    print(
        f"\ndatabase {size / 2**20:.0f} MB (asked {args.size_mb} MB), {args.repeat} rounds, "
        f"-j 2, source serving {args.rate:g} req/s; {machine()}\n"
    )
    print(f"{'copy':<24} {'median s':>9} {'failed/sent':>14}")
    for name in runs:
        print(f"{name:<24} {median[name]:>9.2f} {sum(failed[name]):>7}/{sum(sent[name]):<6}")
    total_failed = sum(sum(f) for f in failed.values())
    ours, raw = "ocore clone_database", "raw pg_dump/pg_restore"
    figure = f"clone {size / 2**20:.0f} MB, serving {args.rate:g} req/s (median of {args.repeat})"
    report(figure, median[ours], median[raw], "s", "goal ≤ 1.1x")
    lost = [f"{sum(failed[name])} of {sum(sent[name])}" for name in (ours, raw)]
    report("  requests failed during those clones", *lost, "", "goal 0")
    print(
        f"\nocore/raw {ratio:.2f}x: {'within' if ratio <= 1.1 else 'OVER'} the 1.1x goal; "
        f"{total_failed} failed requests: {'met' if total_failed == 0 else 'MISSED'} the goal of 0"
    )
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]), sys.argv[3])
    else:
        sys.exit(asyncio.run(main()))
