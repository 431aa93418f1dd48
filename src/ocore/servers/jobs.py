"""``server.check``: reach a server, pin its host key on first contact, record what it runs."""

from __future__ import annotations

from sqlalchemy import update

from ocore.core.db import utcnow
from ocore.jobs.context import JobContext
from ocore.jobs.registry import JobKind, register
from ocore.servers.hosts import connect_server
from ocore.servers.models import Server

CHECK_TIMEOUT = 30
# What the check reports on; setpriv ties commands to their connection (a
# dropped link or a killed worker leaves nothing running), so it is reported,
# not required.
LISTED_TOOLS = ("psql", "pg_dump", "pg_restore", "nginx", "docker", "git", "setpriv")


async def check_server(context: JobContext) -> None:
    async with context.session() as session:
        server = await session.get(Server, context.target_id)
    if server is None:
        return  # deleted since: nothing to check
    host = connect_server(server, context.secret_box, context.ssh_pool)
    async with context.step("reach host") as step:
        system = await host.run(["uname", "-srm"], timeout=CHECK_TIMEOUT)
        await step.log(system.stdout.strip())
        tools = await host.run(
            [
                "sh",
                "-c",
                'for t in "$@"; do command -v "$t" || true; done',
                "sh",
                *LISTED_TOOLS,
            ],
            timeout=CHECK_TIMEOUT,
        )
        found = {line.rsplit("/", 1)[-1] for line in tools.stdout.split()}
        for tool in LISTED_TOOLS:
            await step.log(f"{tool}: {'found' if tool in found else 'missing'}")
    missing = {"psql", "pg_dump", "pg_restore", "git"} - found
    if server.runtime == "docker":
        missing |= {"docker"} - found
    message = f"Missing on the host: {', '.join(sorted(missing))}." if missing else None
    async with context.session() as session:
        await session.execute(
            update(Server)
            .where(Server.id == server.id)
            .values(
                status="error" if missing else "online",
                status_message=message,
                last_seen_at=utcnow(),
            )
        )


async def record_unreachable(context: JobContext, message: str) -> None:
    async with context.session() as session:
        await session.execute(
            update(Server)
            .where(Server.id == context.target_id)
            .values(status="unreachable", status_message=message)
        )


CHECK = register(JobKind("server.check", check_server, on_failure=record_unreachable))
