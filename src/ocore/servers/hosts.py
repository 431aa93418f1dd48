"""From a server row to a live host connection; first contact pins the host key."""

from __future__ import annotations

import uuid

from sqlalchemy import update

from ocore.core.crypto import SecretBox
from ocore.core.db import Database
from ocore.core.metrics import track_ssh_pool
from ocore.hosts import HostConnection, HostTarget, LocalHost, SSHPool
from ocore.servers.models import Server


def host_target(server: Server, box: SecretBox) -> HostTarget:
    if server.is_local:
        return HostTarget.local_machine(str(server.id))
    if server.private_key_encrypted is None:
        raise ValueError(f"server {server.name} has no private key")
    return HostTarget(
        key=str(server.id),
        host=server.host,
        port=server.port,
        username=server.username,
        private_key=box.decrypt(server.private_key_encrypted),
        pinned_host_key=server.host_key,
    )


def connect_server(server: Server, box: SecretBox, pool: SSHPool) -> HostConnection:
    target = host_target(server, box)
    return LocalHost(target) if target.local else pool.connection(target)


def create_ssh_pool(database: Database) -> SSHPool:
    """The process's SSH pool; a key learned on first contact is stored on the server row."""

    async def pin_host_key(target: HostTarget, key: str, fingerprint: str) -> None:
        async with database.sessionmaker() as session:
            # Only when nothing is pinned yet: a pinned key is never silently replaced.
            await session.execute(
                update(Server)
                .where(Server.id == uuid.UUID(target.key), Server.host_key.is_(None))
                .values(host_key=key, host_key_fingerprint=fingerprint)
            )
            await session.commit()

    return track_ssh_pool(SSHPool(on_host_key=pin_host_key))
