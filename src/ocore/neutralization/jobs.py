"""The ``neutralization.run`` job: neutralize an environment's database, then report."""

from __future__ import annotations

import contextlib

from sqlalchemy import update

from ocore.environments.models import Environment
from ocore.jobs.context import JobContext
from ocore.jobs.registry import JobKind, register
from ocore.neutralization.engine import FAILED_PREFIX, neutralize_environment
from ocore.neutralization.service import JOB_KIND


async def run(context: JobContext) -> None:
    assert context.target_id is not None
    async with context.step("neutralize database") as step:
        await neutralize_environment(context, context.target_id, log=step.log)


async def failed(context: JobContext, message: str) -> None:
    """The database was left as it was (its transaction rolled back): say so on the environment."""
    assert context.target_id is not None
    with contextlib.suppress(Exception):
        async with context.session() as session:
            await session.execute(
                update(Environment)
                .where(Environment.id == context.target_id)
                .values(status_message=f"{FAILED_PREFIX}{message}")
            )


NEUTRALIZE = register(JobKind(JOB_KIND, run, on_failure=failed))
