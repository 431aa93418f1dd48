"""From instance and server rows to the things that act on the host: runtime, proxy, database."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select

from ocore.core.errors import NotFound
from ocore.hosts import HostConnection
from ocore.hosts.database import PgServer
from ocore.hosts.odoo import OdooConfig
from ocore.hosts.runtime import (
    Colour,
    ColourPorts,
    InstanceLayout,
    NativeRuntime,
    NginxProxy,
    NginxSettings,
)
from ocore.instances.models import Domain, Instance
from ocore.jobs.context import JobContext
from ocore.servers.hosts import connect_server
from ocore.servers.models import Server


@dataclass
class Hosting:
    instance: Instance
    server: Server
    host: HostConnection
    pg: PgServer
    layout: InstanceLayout
    runtime: NativeRuntime
    proxy: NginxProxy
    domains: list[str]


def enterprise_addons(layout: InstanceLayout, version: str) -> str:
    return f"{layout.checkout(version)}/enterprise"


def colour_ports(instance: Instance) -> dict[Colour, ColourPorts]:
    if instance.http_port_host is None:
        raise ValueError(f"instance {instance.slug} has no host ports")
    base = instance.http_port_host
    return {"blue": ColourPorts(base, base + 1), "green": ColourPorts(base + 2, base + 3)}


def server_names(instance: Instance, domains: list[Domain]) -> list[str]:
    names = [d.domain for d in domains]
    # Without a domain the instance still needs a name nginx can route on;
    # *.localhost resolves to loopback everywhere (RFC 6761).
    return names or [f"{instance.slug}.localhost"]


async def load_hosting(context: JobContext, instance_id: uuid.UUID) -> Hosting:
    async with context.session() as session:
        instance = await session.get(Instance, instance_id)
        if instance is None:
            raise NotFound(f"Instance {instance_id} no longer exists.")
        server = await session.get(Server, instance.server_id)
        if server is None:
            raise NotFound(f"The server of instance {instance.slug} no longer exists.")
        domains = list(
            (await session.scalars(select(Domain).where(Domain.instance_id == instance.id))).all()
        )
    box = context.secret_box
    host = connect_server(server, box, context.ssh_pool)
    db_password = box.decrypt(server.db_password_encrypted) if server.db_password_encrypted else ""
    pg = PgServer(
        host=server.db_host, port=server.db_port, user=server.db_user, password=db_password
    )
    layout = InstanceLayout(server.base_dir, instance.slug)
    admin_password = (
        box.decrypt(instance.admin_password_encrypted) if instance.admin_password_encrypted else ""
    )
    addons = [p for p in (instance.addons_path or "").split(",") if p]
    if instance.odoo_edition == "enterprise":
        # Enterprise addons sit beside the community checkout of the same version.
        addons.insert(0, enterprise_addons(layout, instance.odoo_version))
    config = OdooConfig(
        version=instance.odoo_version,
        admin_passwd=admin_password,
        db_host=server.db_host,
        db_port=server.db_port,
        db_user=server.db_user,
        db_password=db_password or None,
        db_name=instance.database_name,
        dbfilter=f"^{instance.database_name}$",
        addons_path=addons,
        workers=instance.workers,
        limit_memory_soft=instance.limit_memory_soft,
        limit_memory_hard=instance.limit_memory_hard,
        limit_time_cpu=instance.limit_time_cpu,
        limit_time_real=instance.limit_time_real,
        max_cron_threads=instance.max_cron_threads,
        log_level=instance.log_level,
    )
    proxy = NginxProxy(
        host,
        NginxSettings(
            sites_dir=server.nginx_sites_dir,
            command=tuple(server.nginx_command),
            listen=(server.nginx_listen,),
        ),
    )
    names = server_names(instance, domains)
    runtime = NativeRuntime(
        host,
        layout,
        config,
        colour_ports(instance),
        proxy=proxy,
        domains=names,
        colour_addons={
            colour: instance.colour_addons.get(colour, []) for colour in ("blue", "green")
        },
    )
    return Hosting(instance, server, host, pg, layout, runtime, proxy, names)
