"""Instance jobs: provision, control (start/stop/restart) and delete — each safe to run again."""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from typing import Any

from sqlalchemy import delete, select, update

from ocore.core.db import utcnow
from ocore.core.errors import HostError
from ocore.environments.models import Environment
from ocore.hosts.database import drop_database, remove_filestore
from ocore.hosts.mailpit import MailCatcher
from ocore.hosts.odoo import odoo_command, render_odoo_conf
from ocore.hosts.runtime import COLOURS, Colour, check_colour
from ocore.instances.hosting import Hosting, enterprise_addons, load_hosting
from ocore.instances.models import Instance, Template
from ocore.jobs.context import JobContext, Step
from ocore.jobs.registry import JobKind, OrphanCheck, register, register_orphan_check

INIT_TIMEOUT = 3600
HEALTH_TIMEOUT = 180


async def _set_instance(context: JobContext, instance_id: uuid.UUID, **values: Any) -> None:
    async with context.session() as session:
        await session.execute(update(Instance).where(Instance.id == instance_id).values(**values))


async def _set_environments(context: JobContext, instance_id: uuid.UUID, **values: Any) -> None:
    async with context.session() as session:
        await session.execute(
            update(Environment).where(Environment.instance_id == instance_id).values(**values)
        )


async def _stream(step: Step, hosting: Hosting, argv: list[str], timeout: float) -> None:
    async for line in hosting.host.stream(argv, timeout=timeout):
        await step.log(line)


async def _require_odoo(hosting: Hosting) -> None:
    version = hosting.instance.odoo_version
    python = hosting.layout.python(version)
    found = await hosting.host.run(["test", "-x", python], check=False)
    if not found.ok:
        raise HostError(
            f"Odoo {version} is not installed on {hosting.server.name}: expected a checkout at "
            f"{hosting.layout.checkout(version)} with its virtualenv in venv/."
        )
    if hosting.instance.odoo_edition == "enterprise":
        enterprise = enterprise_addons(hosting.layout, version)
        if not (await hosting.host.run(["test", "-d", enterprise], check=False)).ok:
            raise HostError(
                f"Odoo {version} Enterprise is not installed on {hosting.server.name}: expected "
                f"the enterprise addons at {enterprise}."
            )


async def _modules_to_install(context: JobContext, instance: Instance) -> list[str]:
    modules = ["base"]
    if instance.template_id is not None:
        async with context.session() as session:
            template = await session.get(Template, instance.template_id)
        if template is not None:
            modules += [m for m in template.modules if m not in modules]
    return modules


async def _require_free_ports(hosting: Hosting) -> None:
    """ocore reserves ports in its database; something else on the host may hold them."""
    ports = {
        port
        for colour in COLOURS
        for port in (hosting.runtime.ports[colour].http, hosting.runtime.ports[colour].gevent)
    }
    listening = await hosting.host.run(["ss", "-Hltn"], check=False)
    if not listening.ok:
        return  # no ss on this host: the start step reports a taken port instead
    # Columns: state, recv-q, send-q, local address:port, peer address:port.
    local = [line.split()[3] for line in listening.stdout.splitlines() if len(line.split()) > 3]
    taken = sorted(p for p in ports if any(address.endswith(f":{p}") for address in local))
    ours = await hosting.runtime.status("blue")
    if taken and not ours.running:
        raise HostError(
            f"Port(s) {', '.join(map(str, taken))} reserved for {hosting.instance.slug} are in "
            f"use on {hosting.server.name} by another program; free them or change "
            "OCORE_INSTANCE_PORT_MIN/MAX."
        )


async def prepare_host(context: JobContext, hosting: Hosting) -> None:
    layout = hosting.layout
    async with context.step("prepare host") as step:
        await _require_odoo(hosting)
        await _require_free_ports(hosting)
        for colour in COLOURS:
            await hosting.host.run(["mkdir", "-p", "--", layout.colour_dir(colour)])
        await hosting.host.run(["mkdir", "-p", "--", layout.data_dir])
        await step.log(f"instance directory {layout.instance_dir}")


async def go_online(context: JobContext, hosting: Hosting) -> None:
    """Start blue on a ready database, route the domains to it, record the instance running."""
    instance, runtime = hosting.instance, hosting.runtime
    async with context.step("start blue") as step:
        await runtime.start("blue")
        await runtime.wait_healthy("blue", timeout=HEALTH_TIMEOUT)
        await step.log("blue answers /web/health")

    async with context.step("reverse proxy") as step:
        await runtime.switch_traffic("blue")
        await step.log(f"nginx serves {', '.join(hosting.domains)} from blue")

    async with context.step("report generation") as step:
        wkhtml = await hosting.host.run(["wkhtmltopdf", "--version"], check=False)
        version = wkhtml.stdout.strip().removeprefix("wkhtmltopdf ") if wkhtml.ok else None
        await step.log(f"wkhtmltopdf {version or 'not found'}")

    await _set_instance(
        context,
        instance.id,
        status="running",
        status_message=None,
        active_color="blue",
        last_seen_at=utcnow(),
        restart_required=False,
        wkhtmltopdf_status="ok" if version else "missing",
        wkhtmltopdf_version=version,
    )
    await _set_environments(context, instance.id, status="ready", status_message=None)


async def initialize_database(context: JobContext, hosting: Hosting) -> None:
    """``-i base`` (+ the template's modules); on an existing database it updates them."""
    instance, runtime, layout = hosting.instance, hosting.runtime, hosting.layout
    async with context.step("initialize database") as step:
        # blue's configuration minus its log file, so the output streams into this
        # step; -i on an existing database updates the modules, so a retry is harmless.
        init_conf = f"{layout.colour_dir('blue')}/init.conf"
        config = dataclasses.replace(runtime.config_for("blue"), logfile=None, pidfile=None)
        await hosting.host.write_file(init_conf, render_odoo_conf(config).encode(), mode=0o600)
        modules = await _modules_to_install(context, instance)
        await step.log(f"installing {', '.join(modules)} into {instance.database_name}")
        argv = odoo_command(
            layout.checkout(instance.odoo_version),
            layout.python(instance.odoo_version),
            init_conf,
            database=instance.database_name,
            install=modules,
            stop_after_init=True,
        )
        try:
            await _stream(step, hosting, argv, INIT_TIMEOUT)
        finally:
            await hosting.host.run(["rm", "-f", "--", init_conf], check=False)


async def provision(context: JobContext) -> None:
    assert context.target_id is not None
    hosting = await load_hosting(context, context.target_id)
    await _set_instance(context, hosting.instance.id, status_message="Provisioning on the host.")

    await prepare_host(context, hosting)

    await initialize_database(context, hosting)
    await go_online(context, hosting)


async def mark_failed(context: JobContext, message: str) -> None:
    assert context.target_id is not None
    await _set_instance(context, context.target_id, status="error", status_message=message)
    await _set_environments(context, context.target_id, status="error", status_message=message)


async def control(context: JobContext) -> None:
    assert context.target_id is not None
    action = context.payload.get("action")
    if action not in ("start", "stop", "restart"):
        raise ValueError(f"unknown control action {action!r}")
    hosting = await load_hosting(context, context.target_id)
    colour: Colour = check_colour(hosting.instance.active_color)
    async with context.step(f"{action} {colour}") as step:
        if action == "stop":
            await hosting.runtime.stop(colour)
            await _set_instance(context, hosting.instance.id, status="stopped", status_message=None)
            await step.log(f"{colour} stopped")
            return
        if action == "restart":
            # restart rewrites odoo.conf, so pending settings apply now.
            await hosting.runtime.restart(colour)
        else:
            await hosting.runtime.start(colour)
        await hosting.runtime.wait_healthy(colour, timeout=HEALTH_TIMEOUT)
        await step.log(f"{colour} answers /web/health")
    values: dict[str, Any] = {"status": "running", "status_message": None, "last_seen_at": utcnow()}
    if action == "restart":
        values.update(
            restart_required=False,
            last_restart_at=utcnow(),
            restart_count=hosting.instance.restart_count + 1,
        )
    await _set_instance(context, hosting.instance.id, **values)


async def control_failed(context: JobContext, message: str) -> None:
    assert context.target_id is not None
    await _set_instance(context, context.target_id, status="error", status_message=message)


async def remove(context: JobContext) -> None:
    assert context.target_id is not None
    await remove_instance(
        context, context.target_id, drop=bool(context.payload.get("dropDatabase"))
    )


async def remove_instance(context: JobContext, instance_id: uuid.UUID, *, drop: bool) -> None:
    """Stop both colours, unroute, drop the database if asked, remove files and the row."""
    async with context.session() as session:
        exists = await session.scalar(select(Instance.id).where(Instance.id == instance_id))
    if exists is None:
        return  # removed by an earlier attempt
    hosting = await load_hosting(context, instance_id)
    instance, layout = hosting.instance, hosting.layout
    async with context.step("stop processes") as step:
        for colour in COLOURS:
            await hosting.runtime.stop(colour)
        # A non-production clone's mail catcher lives in the instance directory too.
        mailpit = await MailCatcher(hosting.host, hosting.layout).stop()
        await step.log("blue and green stopped" + ("; mailpit stopped" if mailpit else ""))
    async with context.step("reverse proxy") as step:
        await hosting.proxy.remove(instance.slug)
        await step.log("site removed from nginx")
    if drop:
        async with context.step("drop database") as step:
            await drop_database(hosting.host, hosting.pg, instance.database_name)
            await remove_filestore(hosting.host, layout.data_dir, instance.database_name)
            await step.log(f"database {instance.database_name} and its filestore dropped")
        data_kept = False
    else:
        data_kept = True
    async with context.step("remove files") as step:
        # The data directory (filestore) stays with a kept database.
        for colour in COLOURS:
            await hosting.host.run(["rm", "-rf", "--", layout.colour_dir(colour)])
        if not data_kept:
            await hosting.host.run(["rm", "-rf", "--", layout.instance_dir])
        await step.log("instance files removed")
    async with context.session() as session:
        await session.execute(
            update(Environment)
            .where(Environment.instance_id == instance.id)
            .values(status="error", status_message="Its instance was deleted.")
        )
        await session.execute(delete(Instance).where(Instance.id == instance.id))


async def remove_failed(context: JobContext, message: str) -> None:
    assert context.target_id is not None
    with contextlib.suppress(Exception):
        await _set_instance(
            context,
            context.target_id,
            status="error",
            status_message=f"Deleting failed: {message} Delete again to retry.",
        )


LOST = "The job carrying this out was lost; run the operation again."
register_orphan_check(
    OrphanCheck(Instance, ("provisioning", "deleting"), {"status": "error", "status_message": LOST})
)
PROVISION = register(JobKind("instance.provision", provision, on_failure=mark_failed))
CONTROL = register(JobKind("instance.control", control, on_failure=control_failed))
DELETE = register(JobKind("instance.delete", remove, on_failure=remove_failed))
