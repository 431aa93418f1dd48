"""Environment jobs: clone (copy, neutralize, start), delete, demote — each safe to run again."""

from __future__ import annotations

import posixpath
import uuid

from sqlalchemy import delete, update

from ocore.core.db import utcnow
from ocore.core.errors import NotFound
from ocore.environments.models import Environment
from ocore.hosts.database import clone_database, database_exists, drop_database
from ocore.hosts.database_files import filestore_path
from ocore.hosts.runtime import COLOURS
from ocore.instances.hosting import Hosting, load_hosting
from ocore.instances.jobs import go_online, initialize_database, prepare_host, remove_instance
from ocore.jobs.context import JobContext, Step
from ocore.jobs.registry import JobKind, OrphanCheck, register, register_orphan_check
from ocore.neutralization.engine import neutralize_environment

FILESTORE_TIMEOUT = 6 * 3600


async def _environment(context: JobContext, environment_id: uuid.UUID) -> Environment:
    async with context.session() as session:
        environment = await session.get(Environment, environment_id)
    if environment is None:
        raise NotFound(f"Environment {environment_id} no longer exists.")
    return environment


async def _set(context: JobContext, environment_id: uuid.UUID, **values: object) -> None:
    async with context.session() as session:
        await session.execute(
            update(Environment).where(Environment.id == environment_id).values(**values)
        )


async def copy_filestore_between(source: Hosting, target: Hosting, step: Step) -> None:
    """The source's attachments into the target's data directory (same host), atomically."""
    src = filestore_path(source.layout.data_dir, source.instance.database_name)
    dst = filestore_path(target.layout.data_dir, target.instance.database_name)
    staging = f"{dst}.ocore-tmp"
    host = target.host
    exists = await host.run(["test", "-d", src], check=False)
    await host.run(["rm", "-rf", "--", staging])
    if not exists.ok:
        await step.log("the source has no filestore yet")
        return
    await host.run(["mkdir", "-p", "--", posixpath.dirname(dst)])
    await host.run(["cp", "-a", "--reflink=auto", "--", src, staging], timeout=FILESTORE_TIMEOUT)
    await host.run(["rm", "-rf", "--", dst])
    await host.run(["mv", "--", staging, dst])
    await step.log(f"filestore copied to {dst}")


async def clone(context: JobContext) -> None:
    assert context.target_id is not None
    environment = await _environment(context, context.target_id)
    if environment.cloned_from_id is None or environment.instance_id is None:
        raise NotFound("This environment is not a clone waiting for its copy.")
    source_env = await _environment(context, environment.cloned_from_id)
    if source_env.instance_id is None:
        raise NotFound("The source environment has no instance any more.")
    source = await load_hosting(context, source_env.instance_id)
    target = await load_hosting(context, environment.instance_id)
    await prepare_host(context, target)
    async with context.step("copy database") as step:
        # auto: a template copy when the source is idle, else a parallel dump and
        # restore that leaves the (production) source connected and serving.
        result = await clone_database(
            target.host, target.pg, source.instance.database_name, target.instance.database_name
        )
        await step.log(f"copied by {result.method} in {result.seconds:.1f}s")
    async with context.step("copy filestore") as step:
        await copy_filestore_between(source, target, step)
    if environment.environment_type != "production":
        async with context.step("neutralize") as step:
            report = await neutralize_environment(
                context, environment.id, fresh_copy=True, log=step.log
            )
            await step.log(f"neutralized: {report}")
        await _set(context, environment.id, is_neutralized=True)
    await go_online(context, target)
    await _set(context, environment.id, status="ready", status_message=None)


async def clone_failed(context: JobContext, message: str) -> None:
    assert context.target_id is not None
    await _set(context, context.target_id, status="error", status_message=message)


async def remove(context: JobContext) -> None:
    """Delete the environment with its instance, database and files."""
    assert context.target_id is not None
    async with context.session() as session:
        environment = await session.get(Environment, context.target_id)
        if environment is None:
            return  # done by an earlier attempt
        instance_id = environment.instance_id
    if instance_id is not None:
        await remove_instance(context, instance_id, drop=True)
    async with context.session() as session:
        await session.execute(delete(Environment).where(Environment.id == context.target_id))


async def remove_failed(context: JobContext, message: str) -> None:
    assert context.target_id is not None
    await _set(
        context,
        context.target_id,
        status="error",
        status_message=f"Deleting failed: {message} Delete again to retry.",
    )


async def demote(context: JobContext) -> None:
    """Production → a lower stage: its data must not stay live, so neutralize or start fresh."""
    assert context.target_id is not None
    environment = await _environment(context, context.target_id)
    if environment.instance_id is None:
        raise NotFound("The environment has no instance.")
    hosting = await load_hosting(context, environment.instance_id)
    option = context.payload.get("demotionDbOption", "clone")
    if option == "fresh":
        async with context.step("fresh database") as step:
            for colour in COLOURS:
                await hosting.runtime.stop(colour)
            if await database_exists(hosting.host, hosting.pg, hosting.instance.database_name):
                await drop_database(hosting.host, hosting.pg, hosting.instance.database_name)
            await step.log("database dropped; provisioning a fresh one")
        await initialize_database(context, hosting)
        await go_online(context, hosting)
    else:
        async with context.step("neutralize") as step:
            report = await neutralize_environment(context, environment.id, log=step.log)
            await step.log(f"neutralized: {report}")
    await _set(
        context,
        environment.id,
        is_neutralized=option != "fresh",
        status="ready",
        status_message=None,
        updated_at=utcnow(),
    )


register_orphan_check(
    OrphanCheck(
        Environment,
        ("cloning", "deleting", "demoting"),
        {"status": "error", "status_message": "The job carrying this out was lost; try again."},
    )
)
CLONE = register(JobKind("environment.clone", clone, on_failure=clone_failed))
DELETE = register(JobKind("environment.delete", remove, on_failure=remove_failed))
DEMOTE = register(JobKind("environment.demote", demote, on_failure=clone_failed))
