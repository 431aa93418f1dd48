"""Everything that touches an Odoo host goes through ``HostConnection``."""

from __future__ import annotations

from ocore.hosts.base import DEFAULT_TIMEOUT, CommandResult, HostConnection, HostTarget
from ocore.hosts.local import LocalHost
from ocore.hosts.ssh import HostKeyCallback, SSHHost, SSHPool

__all__ = [
    "DEFAULT_TIMEOUT",
    "CommandResult",
    "HostConnection",
    "HostKeyCallback",
    "HostTarget",
    "LocalHost",
    "SSHHost",
    "SSHPool",
    "connect",
]


def connect(target: HostTarget | None, pool: SSHPool | None = None) -> HostConnection:
    """The connection for a server: this machine for ``None`` or a local target, else SSH.

    Remote targets need the process's ``SSHPool``; there is deliberately no
    global pool, since a pool belongs to one event loop.
    """
    if target is None or target.local:
        return LocalHost(target)
    if pool is None:
        raise ValueError(f"connecting to {target.address} needs an SSHPool")
    return pool.connection(target)
