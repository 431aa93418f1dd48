"""``diagnostics.noop``: a job that does nothing (or waits), to measure and probe the job system."""

from __future__ import annotations

import asyncio

from ocore.jobs.context import JobContext
from ocore.jobs.registry import JobKind, register

MAX_SLEEP_SECONDS = 3600


async def run_noop(context: JobContext) -> None:
    seconds = float(context.payload.get("sleepSeconds", 0))
    if not 0 <= seconds <= MAX_SLEEP_SECONDS:
        raise ValueError(f"sleepSeconds must be between 0 and {MAX_SLEEP_SECONDS}")
    if seconds:
        async with context.step("wait") as step:
            await step.log(f"waiting {seconds:g}s (attempt {context.attempt})")
            await asyncio.sleep(seconds)
            await step.log("done")


NOOP = register(JobKind("diagnostics.noop", run_noop))
