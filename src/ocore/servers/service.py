"""Servers: the Odoo hosts of an organization. Keys are encrypted before they are stored."""

from __future__ import annotations

import asyncssh
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession

from ocore.core.auth import Principal
from ocore.core.crypto import SecretBox
from ocore.core.errors import Conflict, InvalidInput
from ocore.core.pagination import PageParams
from ocore.jobs import engine
from ocore.jobs.models import Job
from ocore.jobs.runtime import JobSystem
from ocore.orgs import audit
from ocore.servers.models import Server
from ocore.servers.repository import ServerRepository
from ocore.servers.schemas import ServerCreate, ServerUpdate


def _encrypt_private_key(box: SecretBox, key: SecretStr, passphrase: SecretStr | None) -> str:
    try:
        parsed = asyncssh.import_private_key(
            key.get_secret_value(), passphrase.get_secret_value() if passphrase else None
        )
    except (asyncssh.KeyImportError, ValueError) as exc:
        # The library's message never contains key material.
        raise InvalidInput(f"privateKey is not a usable private key: {exc}") from None
    # Stored unencrypted by passphrase but encrypted at rest, so workers need no passphrase.
    exported: bytes = parsed.export_private_key("openssh")
    return box.encrypt(exported.decode())


async def list_servers(
    session: AsyncSession, principal: Principal, page: PageParams
) -> tuple[list[Server], int]:
    repository = ServerRepository(session)
    statement = repository.scoped(principal.organization_id).order_by(Server.name, Server.id)
    return await repository.list_page(statement, page)


async def create_server(
    session: AsyncSession, box: SecretBox, principal: Principal, body: ServerCreate
) -> Server:
    repository = ServerRepository(session)
    if await repository.name_taken(principal.organization_id, body.name):
        raise Conflict(f"A server named '{body.name}' already exists.")
    server = Server(
        organization_id=principal.organization_id,
        name=body.name,
        host="localhost" if body.is_local else body.host,
        port=body.port,
        username=body.username,
        is_local=body.is_local,
        runtime=body.runtime,
        base_dir=body.base_dir,
        db_host=body.db_host,
        db_port=body.db_port,
        db_user=body.db_user,
        nginx_sites_dir=body.nginx_sites_dir,
        nginx_command=body.nginx_command,
        nginx_listen=body.nginx_listen,
        db_password_encrypted=(
            box.encrypt(body.db_password.get_secret_value()) if body.db_password else None
        ),
        private_key_encrypted=(
            _encrypt_private_key(box, body.private_key, body.private_key_passphrase)
            if body.private_key is not None
            else None
        ),
    )
    await repository.add(server)
    await audit.record(session, principal, "server.create", "server", server.id)
    return server


async def update_server(
    session: AsyncSession, box: SecretBox, principal: Principal, server: Server, body: ServerUpdate
) -> Server:
    repository = ServerRepository(session)
    changes = body.changes(exclude={"private_key", "private_key_passphrase", "db_password"})
    if "name" in changes and await repository.name_taken(
        principal.organization_id, changes["name"], exclude=server.id
    ):
        raise Conflict(f"A server named '{changes['name']}' already exists.")
    if body.private_key is not None:
        server.private_key_encrypted = _encrypt_private_key(
            box, body.private_key, body.private_key_passphrase
        )
    for field, value in changes.items():
        setattr(server, field, value)
    if "db_password" in body.model_fields_set:
        server.db_password_encrypted = (
            box.encrypt(body.db_password.get_secret_value()) if body.db_password else None
        )
    if {"host", "port"} & changes.keys():
        # Another address is another machine: pin its key afresh on first contact.
        server.host_key = None
        server.host_key_fingerprint = None
        server.status = "unknown"
    await session.flush()
    await audit.record(
        session,
        principal,
        "server.update",
        "server",
        server.id,
        {"fields": sorted(body.model_fields_set)},
    )
    return server


async def delete_server(session: AsyncSession, principal: Principal, server: Server) -> None:
    repository = ServerRepository(session)
    instances = await repository.count_instances(server.id)
    if instances:
        raise Conflict(
            f"The server still hosts {instances} instance(s); delete them first.",
        )
    await audit.record(session, principal, "server.delete", "server", server.id)
    await repository.delete(server)


async def check_server(
    session: AsyncSession, jobs: JobSystem, principal: Principal, server: Server
) -> Job:
    job = await engine.enqueue(
        session,
        jobs.queue,
        jobs.database,
        kind="server.check",
        target_type="server",
        target_id=server.id,
        organization_id=principal.organization_id,
        lock_key=f"server:{server.id}:check",
        max_attempts=1,
    )
    await audit.record(session, principal, "server.check", "server", server.id)
    return job
