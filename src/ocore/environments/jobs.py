"""Environment jobs: clone (copy, neutralize, start), delete, demote — each safe to run again.

A non-production clone (and a demoted production) gets a mail catcher: a
Mailpit process on the instance's host (``ocore.hosts.mailpit``), started
before neutralization so the copy's outgoing mail is routed to it. Its SMTP
port is the environment's ``mailpit_port``; its web UI listens on the next
port and is reached through ``GET /api/environments/{id}/mail``. When the
host has no ``mailpit`` binary (``<baseDir>/bin/mailpit`` or on ``PATH``),
the step says so, ``mailpit_port`` stays null and neutralization disables
outgoing mail instead; the environment's status message tells the same.
"""

from __future__ import annotations

import logging
import posixpath
import uuid

from sqlalchemy import delete, update

from ocore.core.db import utcnow
from ocore.core.errors import NotFound
from ocore.environments.models import Environment
from ocore.hosts.database import clone_database, database_exists, drop_database
from ocore.hosts.database_files import filestore_path
from ocore.hosts.mailpit import MailCatcher, mail_ports
from ocore.hosts.runtime import COLOURS
from ocore.instances.hosting import Hosting, load_hosting
from ocore.instances.jobs import go_online, initialize_database, prepare_host, remove_instance
from ocore.jobs.context import JobContext, Step
from ocore.jobs.registry import JobKind, OrphanCheck, register, register_orphan_check
from ocore.neutralization.engine import neutralize_environment

FILESTORE_TIMEOUT = 6 * 3600
MAIL_CATCHER_READY_TIMEOUT = 30.0

_log = logging.getLogger(__name__)


def mail_webroot(environment_id: uuid.UUID) -> str:
    """Where Mailpit serves its UI: the proxy's own path, so its pages work through it."""
    return f"/api/environments/{environment_id}/mail/"


async def start_mail_catcher(
    context: JobContext, hosting: Hosting, environment_id: uuid.UUID
) -> str | None:
    """Run the environment's Mailpit and record its SMTP port; a note when there is none.

    Without a mailpit binary on the host this is not an error: ``mailpit_port``
    is left null (neutralization then disables mail) and the note says why.
    """
    async with context.step("mail catcher") as step:
        settings = context.settings
        base = hosting.instance.http_port_host
        ports = (
            mail_ports(base, settings.instance_port_min, settings.instance_port_max)
            if base is not None
            else None
        )
        catcher = MailCatcher(
            hosting.host,
            hosting.layout,
            ports[0] if ports else None,
            webroot=mail_webroot(environment_id),
        )
        binary = await catcher.find_binary()
        if ports is None or binary is None:
            if ports is None:
                note = (
                    f"No mail catcher: no mail ports fit the instance's port block ({base}) in "
                    "OCORE_INSTANCE_PORT_MIN/MAX; outgoing mail is disabled instead."
                )
            else:
                note = (
                    f"No mail catcher: mailpit is not installed on {hosting.server.name} "
                    f"(looked for {catcher.pinned_binary} and mailpit on PATH); outgoing mail "
                    "is disabled instead."
                )
            _log.warning("%s (environment %s)", note, environment_id)
            await step.log(f"WARNING: {note}")
            await _set(context, environment_id, mailpit_port=None)
            return note
        pid = await catcher.start(binary)
        await catcher.wait_ready(MAIL_CATCHER_READY_TIMEOUT)
        await _set(context, environment_id, mailpit_port=ports[0])
        await step.log(
            f"{binary} (pid {pid}): SMTP on 127.0.0.1:{ports[0]}, "
            f"web UI on 127.0.0.1:{ports[1]}{catcher.webroot}"
        )
        return None


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
    note = None
    if environment.environment_type != "production":
        note = await start_mail_catcher(context, target, environment.id)
        async with context.step("neutralize") as step:
            report = await neutralize_environment(
                context, environment.id, fresh_copy=True, log=step.log
            )
            await step.log(f"neutralized: {report}")
        await _set(context, environment.id, is_neutralized=True)
    await go_online(context, target)
    await _set(context, environment.id, status="ready", status_message=note)


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
        # The instance's removal deletes its directory: Mailpit must not outlive it.
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
    note = None
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
        # No longer production: its mail goes to a catcher of its own from now on.
        note = await start_mail_catcher(context, hosting, environment.id)
        async with context.step("neutralize") as step:
            report = await neutralize_environment(context, environment.id, log=step.log)
            await step.log(f"neutralized: {report}")
    await _set(
        context,
        environment.id,
        is_neutralized=option != "fresh",
        status="ready",
        status_message=note,
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
