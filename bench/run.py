"""Every benchmark of the project, with modest sizes, and one table of their figures.

    PYTHONPATH=. .venv/bin/python bench/run.py [--only load,jobs] [--skip fuzz] [--quick]
                                               [--logs DIR] [--timeout 900]

Runs each script below in a process of its own, one after the other (they
would otherwise measure each other), with ``OCORE_BENCH_REPORT`` naming a file
that their ``_harness.report`` calls append rows to. Their own output goes to
``<logs>/<script>.log``. Then it prints one Markdown table: figure, ocore,
reference (what the figure is compared with, in the same run: raw PostgreSQL,
raw arq, direct requests, one replica, 100 rows, or the goal), ocore/reference
and notes. A script whose programs are missing gets a "skipped: ..." row; one
that fails or times out gets a "failed: ..." row, after whatever it reported.

The sizes are smaller than the scripts' defaults (the whole run takes 10-15
minutes on a 2-core machine); ``--quick`` makes them tiny, to check the
runner itself. Each script's own README section explains its figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from _harness import ADMIN_DATABASE_URL, REPORT_ENV, ROOT, _dsn

BENCH = Path(__file__).resolve().parent
POSTGRES = ("psql", "pg_dump", "pg_restore", "createdb")


@dataclass(frozen=True)
class Bench:
    script: str
    args: tuple[str, ...]
    quick: tuple[str, ...]
    needs: tuple[str, ...] = ()  # programs and files, besides PostgreSQL and Python


BENCHMARKS = (
    Bench("clone.py", ("--size-mb", "100", "--repeat", "3"), ("--size-mb", "20", "--repeat", "1"),
          POSTGRES),
    Bench("clone_serving.py", ("--size-mb", "100", "--repeat", "2"),
          ("--size-mb", "20", "--repeat", "1"), POSTGRES),
    Bench("jobs.py", ("--samples", "50", "--jobs", "300"),
          ("--samples", "10", "--jobs", "50", "--workers", "1"), ("redis-server",)),
    # 20 lines/s: a rate one API process follows live (sse.py's README has the saturated runs).
    Bench("sse.py", ("--subscribers", "500", "--rate", "20", "--seconds", "10"),
          ("--subscribers", "50", "--rate", "20", "--seconds", "3"), ("redis-server",)),
    Bench("deploy.py", ("--deploys", "2"), ("--deploys", "1"),
          ("/usr/sbin/sshd", "/usr/sbin/nginx", "git")),
    Bench("neutralize.py", ("--repeat", "3"),
          ("--repeat", "1", "--crons", "100", "--providers", "10", "--carriers", "10"),
          ("/usr/sbin/sshd",)),
    Bench("share_proxy.py", ("--requests", "20000", "--repeat", "3", "--download-mb", "50"),
          ("--requests", "1000", "--repeat", "1", "--download-mb", "5"),
          ("/usr/sbin/nginx", "/usr/lib/nginx/modules/ngx_http_lua_module.so")),
    Bench("load.py", ("--duration", "60", "--clients", "200"),
          ("--duration", "5", "--warmup", "2", "--clients", "20", "--rows", "100,1000",
           "--list-rounds", "5"), ("redis-server",)),
    Bench("fuzz.py", ("--examples", "3"), ("--examples", "1"), ("redis-server",)),
)  # fmt: skip


def missing(bench: Bench) -> list[str]:
    return [p for p in bench.needs if not (shutil.which(p) or os.path.exists(p))]


async def postgres_version() -> str | None:
    """The server's version, or None when the tests' PostgreSQL role cannot connect."""
    try:
        conn = await asyncpg.connect(_dsn(ADMIN_DATABASE_URL), timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"PostgreSQL unreachable: {exc}", flush=True)
        return None
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


def run_one(
    bench: Bench, args: tuple[str, ...], logs: Path, timeout: float
) -> list[dict[str, Any]]:
    """The rows the script reported, then a "failed" row if it did not end well."""
    with tempfile.NamedTemporaryFile(prefix="ocore-bench-rows-", suffix=".jsonl") as rows_file:
        env = {**os.environ, REPORT_ENV: rows_file.name}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
        log = logs / f"{bench.script.removesuffix('.py')}.log"
        started = time.monotonic()
        with log.open("w") as out:
            # A session of its own, so a timeout stops the script and whatever it started.
            process = subprocess.Popen(  # noqa: S603 - this venv's python, a script of ours
                [sys.executable, str(BENCH / bench.script), *args],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
            try:
                code: int | str = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
                code = f"timed out after {timeout:.0f} s"
        took = time.monotonic() - started
        rows = [json.loads(line) for line in Path(rows_file.name).read_text().splitlines()]
    print(f"{bench.script}: {took:.0f} s, {len(rows)} figures, exit {code}", flush=True)
    if code != 0:
        tail = [line for line in log.read_text().splitlines() if line.strip()][-1:]
        reason = code if isinstance(code, str) else f"exit {code}"
        rows.append(failed_row(bench, f"failed: {reason}: {''.join(tail)[:120]} (see {log})"))
    return rows


def failed_row(bench: Bench, why: str) -> dict[str, Any]:
    return {"figure": f"`{bench.script}`", "ocore": why, "reference": None, "unit": "", "note": ""}


def number(value: Any, unit: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if float(value).is_integer() and abs(value) < 1e6:
        text = f"{int(value):,}"
    elif abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def ratio(row: dict[str, Any]) -> str:
    ours, ref = row["ocore"], row["reference"]
    if isinstance(ours, int | float) and isinstance(ref, int | float) and ref:
        return f"{ours / ref:.2f}×"  # noqa: RUF001 - the README tables' sign
    return ""


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| figure | ocore | reference | ratio | notes |", "|---|---:|---:|---:|---|"]
    for row in rows:
        cells = [
            row["figure"],
            number(row["ocore"], row["unit"]),
            number(row["reference"], row["unit"]),
            ratio(row),
            row["note"],
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def machine(pg: str | None) -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), platform.machine(),
    )  # fmt: skip
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    redis = subprocess.run(  # noqa: S603 - a fixed program
        [shutil.which("redis-server") or "redis-server", "--version"],
        capture_output=True, text=True, check=False,
    ).stdout.split(" v=")[-1].split()[0] if shutil.which("redis-server") else "absent"  # fmt: skip
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {mem_kb / 2**20:.0f} GB RAM, "
        f"Linux {platform.release()}, Python {platform.python_version()}, "
        f"PostgreSQL {pg or 'unreachable'}, Redis {redis}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated script names (no .py)")
    parser.add_argument("--skip", default="", help="comma-separated script names (no .py)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the runner")
    parser.add_argument("--logs", type=Path, help="where the scripts' output goes")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per script")
    args = parser.parse_args()
    only = {n for n in args.only.split(",") if n}
    skip = {n for n in args.skip.split(",") if n}
    logs = args.logs or Path(tempfile.mkdtemp(prefix="ocore-bench-logs-"))
    logs.mkdir(parents=True, exist_ok=True)

    pg = asyncio.run(postgres_version())
    print(f"machine: {machine(pg)}", flush=True)
    load_before = os.getloadavg()
    started = time.monotonic()
    rows: list[dict[str, Any]] = []
    for bench in BENCHMARKS:
        name = bench.script.removesuffix(".py")
        if (only and name not in only) or name in skip:
            continue
        absent = missing(bench) + ([] if pg else ["PostgreSQL (OCORE_TEST_DATABASE_URL)"])
        if absent:
            rows.append(failed_row(bench, f"skipped: {', '.join(absent)} missing"))
            print(f"{bench.script}: skipped ({', '.join(absent)} missing)", flush=True)
            continue
        rows += run_one(bench, bench.quick if args.quick else bench.args, logs, args.timeout)
    minutes = (time.monotonic() - started) / 60
    load_after = os.getloadavg()
    print(
        f"\n{minutes:.1f} min; load average {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after (1 min), {load_after[2]:.1f} over the last 15 min; "
        f"logs in {logs}\n"
    )
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
