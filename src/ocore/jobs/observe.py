"""What one job attempt reports while it runs: a trace span and its run time."""

from __future__ import annotations

from ocore.core import metrics, tracing
from ocore.jobs.context import JobContext
from ocore.jobs.registry import JobKind


async def observed_run(kind: JobKind, context: JobContext) -> None:
    """Run one attempt of a job inside a span, timing it whatever its outcome.

    Runs inside the work task, so spans the job's own code starts are children of this one.
    """
    with (
        tracing.job_span(context.kind, context.job_id, context.attempt),
        metrics.time_job(context.kind),
    ):
        await kind.run(context)
