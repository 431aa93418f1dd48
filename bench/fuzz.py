"""Schema fuzzing at length: the test of tests/fuzz with many more examples per operation.

    PYTHONPATH=. python bench/fuzz.py [--examples 250]

Runs ``tests/fuzz/test_schema.py`` (schemathesis against the app's own OpenAPI
document, every operation but the public share and streaming ones, as the
owner of an organization with real rows) in a pytest process of its own, with
``OCORE_FUZZ_EXAMPLES`` generated examples per operation on top of the explicit
and coverage cases, derandomized (the same cases on every run). Failures are
counted, not raised (``OCORE_FUZZ_REPORT``), so every operation runs all of its
examples. It needs the local PostgreSQL the tests use
(``OCORE_TEST_DATABASE_URL``) and starts a Redis of its own.

Prints the cases sent, the responses by status, and for each check (server
error, status code, content type, response schema) its passes and failures,
then the first report of each failure; exits 1 when any check failed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _harness import ROOT, machine, private_redis
from _harness import report as report_row


def run(examples: int) -> tuple[dict[str, Any], float, subprocess.CompletedProcess[str]]:
    with private_redis() as redis, tempfile.TemporaryDirectory(prefix="ocore-fuzz-") as tmp:
        report = Path(tmp) / "report.json"
        env = {
            **os.environ,
            "OCORE_FUZZ_EXAMPLES": str(examples),
            "OCORE_FUZZ_REPORT": str(report),
            "OCORE_TEST_REDIS_URL": redis.url,
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
            ),
        }
        started = time.monotonic()
        process = subprocess.run(
            [sys.executable, "-m", "pytest", "tests/fuzz", "-q", "-p", "no:cacheprovider"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        elapsed = time.monotonic() - started
        if not report.exists():
            sys.stderr.write(process.stdout[-5000:] + process.stderr[-5000:])
            raise SystemExit(f"the fuzzing run wrote no report (pytest exit {process.returncode})")
        return json.loads(report.read_text()), elapsed, process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--examples", type=int, default=250, help="generated examples per operation"
    )
    args = parser.parse_args()

    figures, elapsed, process = run(args.examples)
    cases = sum(figures["cases"].values())
    operations = len(figures["cases"])
    answered = sum(1 for label in figures["cases"] if figures["successes"].get(label))
    print(f"machine: {machine()}")
    print(
        f"{operations} operations, {args.examples} generated examples each "
        f"(+ explicit and coverage cases): {cases} cases in {elapsed:.0f} s "
        f"({cases / elapsed:.0f} cases/s, seeding included)"
    )
    print(f"operations with at least one 2xx/3xx answer: {answered} of {operations}")
    print("responses by status: " + ", ".join(f"{k}: {v}" for k, v in figures["statuses"].items()))
    print()
    print(f"| {'check':<28} | {'passed':>8} | {'failed':>6} |")
    print(f"|{'-' * 30}|{'-' * 9}:|{'-' * 7}:|")
    for name, verdicts in figures["checks"].items():
        print(f"| {name:<28} | {verdicts['passed']:>8} | {verdicts['failed']:>6} |")
    failed = sum(verdicts["failed"] for verdicts in figures["checks"].values())
    for title, report in figures["failures"].items():
        print(f"\n--- {title}\n{report}")
    if process.returncode != 0:
        # Not a check: an error of the run itself (seeding, a health check of hypothesis).
        lines = [line for line in process.stdout.splitlines() if not line.startswith("{")]
        print(f"\npytest exited with {process.returncode}:\n" + "\n".join(lines[-60:]))
    figure = f"fuzz: {operations} operations, {args.examples} examples each, failed checks"
    report_row(figure, failed, None, "", f"{cases} cases in {elapsed:.0f} s; goal 0")
    raise SystemExit(1 if failed or process.returncode else 0)


if __name__ == "__main__":
    main()
