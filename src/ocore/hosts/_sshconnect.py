"""Opening one SSH connection: key loading, host key pinning, error mapping."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncssh
from asyncssh.public_key import get_default_public_key_algs

from ocore.core.errors import HostAuthFailed, HostError, HostKeyMismatch, HostUnreachable
from ocore.hosts.base import HostTarget

# Called with (target, "ssh-ed25519 AAAA...", "SHA256:...") after first contact
# with a host that has no pinned key yet, so the caller can persist the pin.
HostKeyCallback = Callable[[HostTarget, str, str], Awaitable[None]]


@dataclass(frozen=True)
class ConnectOptions:
    connect_timeout: float = 15.0
    login_timeout: float = 30.0
    keepalive_interval: float = 15.0
    keepalive_count_max: int = 3


class _Client(asyncssh.SSHClient):
    def __init__(self) -> None:
        self.presented_key: asyncssh.SSHKey | None = None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        # asyncssh asks only about keys that differ from the pin: remember the
        # key for the error message and refuse it.
        self.presented_key = key
        return False


def openssh_text(key: asyncssh.SSHKey) -> str:
    # Algorithm and base64 blob only: a comment is not part of a host's identity.
    return " ".join(key.export_public_key("openssh").decode().split()[:2])


def fingerprint(key: asyncssh.SSHKey) -> str:
    return str(key.get_fingerprint("sha256"))


def parse_pinned_key(target: HostTarget) -> asyncssh.SSHKey | None:
    if target.pinned_host_key is None:
        return None
    try:
        return asyncssh.import_public_key(target.pinned_host_key)
    except (asyncssh.KeyImportError, ValueError):
        raise HostError(
            f"the pinned host key of {target.address} is not a valid OpenSSH public key"
        ) from None


async def open_connection(
    target: HostTarget, options: ConnectOptions
) -> tuple[asyncssh.SSHClientConnection, asyncssh.SSHKey]:
    """Connect and authenticate; returns the connection and the host key it presented."""
    try:
        client_key = asyncssh.import_private_key(target.private_key)
    except (asyncssh.KeyImportError, ValueError):
        # The reason could quote key material; say only what is wrong in general.
        raise HostAuthFailed(
            f"the private key for {target.address} cannot be loaded "
            "(expected an unencrypted OpenSSH or PEM private key)"
        ) from None
    pinned = parse_pinned_key(target)
    extra: dict[str, object] = {}
    if pinned is not None:
        extra["server_host_key_algs"] = _host_key_algs(pinned)
    client = _Client()
    try:
        conn = await asyncssh.connect(
            target.host,
            target.port,
            username=target.username,
            client_factory=lambda: client,
            client_keys=[client_key],
            # Exactly the pinned key, or no verification at all for first contact.
            known_hosts=None if pinned is None else ([pinned], [], []),
            # Nothing from ~/.ssh or an agent may change how ocore connects.
            config=None,
            agent_path=None,
            x509_trusted_certs=None,
            password_auth=False,
            kbdint_auth=False,
            host_based_auth=False,
            gss_auth=False,
            gss_kex=False,
            connect_timeout=options.connect_timeout,
            login_timeout=options.login_timeout,
            keepalive_interval=options.keepalive_interval,
            keepalive_count_max=options.keepalive_count_max,
            **extra,
        )
    except asyncssh.HostKeyNotVerifiable:
        raise _mismatch(target, pinned, client.presented_key) from None
    except asyncssh.PermissionDenied:
        raise HostAuthFailed(
            f"{target.address} refused the SSH key for user {target.username!r}"
        ) from None
    except (OSError, asyncssh.Error) as exc:
        raise HostUnreachable(f"cannot reach {target.address}: {_reason(exc)}") from None
    server_key = conn.get_server_host_key()
    if server_key is None:
        conn.close()
        raise HostError(f"{target.address} did not present a host key")
    return conn, server_key


def _host_key_algs(pinned: asyncssh.SSHKey) -> list[str]:
    # The pinned type first, so a host that still has it is checked against it;
    # every other type after it, so a host that lost it fails as a key mismatch
    # naming the key it now presents, not as an opaque handshake failure.
    preferred = [alg.decode() for alg in pinned.sig_algorithms]
    others = [alg.decode() for alg in get_default_public_key_algs()]
    return preferred + [alg for alg in others if alg not in preferred]


def _mismatch(
    target: HostTarget, pinned: asyncssh.SSHKey | None, presented: asyncssh.SSHKey | None
) -> HostKeyMismatch:
    expected = fingerprint(pinned) if pinned is not None else "unknown"
    offered = fingerprint(presented) if presented is not None else "unknown"
    return HostKeyMismatch(
        f"the host key of {target.address} changed: pinned {expected}, presented {offered}. "
        "Refusing to connect; re-pin the key only if the host was really reinstalled.",
        host=target.host,
        port=target.port,
        pinned_fingerprint=expected,
        presented_fingerprint=offered,
    )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, socket.gaierror):
        return f"name resolution failed ({exc.strerror})"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, asyncssh.Error):
        return exc.reason or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
