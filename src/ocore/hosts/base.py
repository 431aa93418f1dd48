"""The one interface every operation on an Odoo host goes through.

Commands are always argument lists. Nothing here accepts a shell string: the
SSH implementation quotes every argument with ``shlex`` so the remote shell
only ever sees literals, and the local implementation never uses a shell.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

DEFAULT_TIMEOUT = 60.0


@dataclass(frozen=True, kw_only=True)
class HostTarget:
    """Where and how to reach one host.

    ``key`` identifies the host for connection pooling (a server id). The
    private key is decrypted text that lives only in memory; it is kept out of
    ``repr`` so it cannot end up in logs or tracebacks.
    """

    key: str
    host: str = ""
    port: int = 22
    username: str = ""
    private_key: str = field(default="", repr=False)
    # OpenSSH public key text ("ssh-ed25519 AAAA..."); None until first contact.
    pinned_host_key: str | None = None
    local: bool = False

    def __post_init__(self) -> None:
        if not self.key:
            raise ValueError("HostTarget.key must not be empty")
        if self.local:
            return
        if not self.host or not self.username:
            raise ValueError("a remote HostTarget needs a host and a username")
        if not 0 < self.port < 65536:
            raise ValueError(f"invalid SSH port {self.port}")

    @classmethod
    def local_machine(cls, key: str = "local") -> HostTarget:
        return cls(key=key, local=True)

    @property
    def address(self) -> str:
        return "this machine" if self.local else f"{self.username}@{self.host}:{self.port}"


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    exit_status: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


@runtime_checkable
class HostConnection(Protocol):
    """A host that runs commands and moves files; SSH or this machine.

    Errors are the ``HostError`` family from ``ocore.core.errors``:
    ``CommandFailed`` (non-zero exit, carries the output tail),
    ``CommandTimeout`` (the command was killed), ``HostUnreachable``,
    ``HostKeyMismatch``, ``HostAuthFailed`` and ``HostFileError``. Paths on
    the host must be absolute, so both implementations agree on what they
    point at.
    """

    async def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        check: bool = True,
        stdin: bytes | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> CommandResult:
        """Run to completion; output is decoded as UTF-8 (undecodable bytes replaced).

        With ``check`` a non-zero exit raises ``CommandFailed``. The timeout
        counts from the command's start (connecting has its own limit); on
        timeout or cancellation the command's whole process group is killed.
        """
        ...

    def stream(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> AsyncGenerator[str, None]:
        """Yield output lines (stdout and stderr merged, in order, no newline).

        Raises ``CommandFailed`` after the last line on a non-zero exit and
        ``CommandTimeout`` once ``timeout`` seconds have passed since the
        start. Closing the generator early (``contextlib.aclosing``) kills
        the command.
        """
        ...

    async def write_file(self, path: str, data: bytes, *, mode: int = 0o600) -> None:
        """Replace ``path`` atomically (temporary file in the same directory + rename)."""
        ...

    async def read_file(self, path: str) -> bytes: ...

    async def upload(self, local: Path, remote: str, *, mode: int = 0o600) -> None:
        """Copy a local file to the host, atomically replacing ``remote``."""
        ...

    async def download(self, remote: str, local: Path, *, mode: int = 0o600) -> None:
        """Copy a file from the host, atomically replacing ``local``."""
        ...

    def open_tunnel(self, remote_host: str, remote_port: int) -> AbstractAsyncContextManager[int]:
        """Yield a 127.0.0.1 port that reaches ``remote_host:remote_port`` as seen from the host."""
        ...
