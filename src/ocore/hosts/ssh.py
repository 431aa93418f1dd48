"""HostConnection over SSH (asyncssh), with one pooled connection per host."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncssh

from ocore.core.errors import HostError, HostUnreachable
from ocore.hosts import _command as cmd
from ocore.hosts._sshconnect import (
    ConnectOptions,
    HostKeyCallback,
    fingerprint,
    open_connection,
    openssh_text,
)
from ocore.hosts._sshfiles import create_private, file_errors, replacing, settle
from ocore.hosts.base import DEFAULT_TIMEOUT, CommandResult, HostTarget

__all__ = ["HostKeyCallback", "SSHHost", "SSHPool"]

_T = TypeVar("_T")
_CHUNK = 64 * 1024
_log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Entry:
    target: HostTarget
    conn: asyncssh.SSHClientConnection
    host_key: asyncssh.SSHKey
    # OpenSSH allows 10 sessions per connection (MaxSessions); stay below it
    # and keep room for the session that kills a timed-out command.
    slots: asyncio.Semaphore
    users: int = 0
    retired: bool = False

    def serves(self, target: HostTarget) -> bool:
        if self.conn.is_closed():
            return False
        mine, theirs = self.target, target
        if (mine.host, mine.port, mine.username, mine.private_key) != (
            theirs.host,
            theirs.port,
            theirs.username,
            theirs.private_key,
        ):
            return False
        if theirs.pinned_host_key is None:
            return True
        # A caller that just pinned the key it learned keeps the same connection.
        try:
            return bool(asyncssh.import_public_key(theirs.pinned_host_key) == self.host_key)
        except (asyncssh.KeyImportError, ValueError):
            return False


class SSHPool:
    """One SSH connection per ``HostTarget.key``, shared by concurrent calls.

    A connection that died is replaced on the next call; keepalives notice a
    silently dropped link. Create one pool per process and ``close_all()`` it
    on shutdown.
    """

    def __init__(
        self,
        *,
        on_host_key: HostKeyCallback | None = None,
        connect_timeout: float = 15.0,
        keepalive_interval: float = 15.0,
        keepalive_count_max: int = 3,
        max_sessions: int = 8,
    ) -> None:
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        self._on_host_key = on_host_key
        self._options = ConnectOptions(
            connect_timeout=connect_timeout,
            keepalive_interval=keepalive_interval,
            keepalive_count_max=keepalive_count_max,
        )
        self._max_sessions = max_sessions
        self._entries: dict[str, _Entry] = {}
        self._live: set[_Entry] = set()
        self._locks: dict[str, asyncio.Lock] = {}

    @property
    def open_connections(self) -> int:
        """Connections open now, including replaced ones still finishing their commands."""
        return len(self._live)

    def connection(self, target: HostTarget) -> SSHHost:
        """A handle for ``target``; it connects lazily on first use."""
        if target.local:
            raise ValueError("a local target has no SSH connection; use LocalHost")
        return SSHHost(self, target)

    async def close(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            await self._shut(entry)

    async def close_all(self) -> None:
        self._entries.clear()
        await asyncio.gather(*(self._shut(entry) for entry in list(self._live)))

    async def _acquire(self, target: HostTarget) -> _Entry:
        async with self._locks.setdefault(target.key, asyncio.Lock()):
            entry = self._entries.get(target.key)
            if entry is not None:
                if entry.serves(target):
                    return entry
                self._discard(entry)
            entry = await self._connect(target)
            self._entries[target.key] = entry
            return entry

    async def _connect(self, target: HostTarget) -> _Entry:
        conn, host_key = await open_connection(target, self._options)
        entry = _Entry(target, conn, host_key, asyncio.Semaphore(self._max_sessions))
        self._live.add(entry)
        _log.info("connected to %s (host key %s)", target.address, fingerprint(host_key))
        if target.pinned_host_key is None and self._on_host_key is not None:
            try:
                await self._on_host_key(target, openssh_text(host_key), fingerprint(host_key))
            except BaseException:
                await asyncio.shield(self._shut(entry))
                raise
        return entry

    def _discard(self, entry: _Entry) -> None:
        if self._entries.get(entry.target.key) is entry:
            del self._entries[entry.target.key]
        entry.retired = True
        if entry.users == 0:
            self._close_soon(entry)

    def _release(self, entry: _Entry) -> None:
        entry.users -= 1
        if entry.retired and entry.users == 0:
            self._close_soon(entry)

    def _close_soon(self, entry: _Entry) -> None:
        self._live.discard(entry)
        entry.conn.close()

    async def _shut(self, entry: _Entry) -> None:
        self._live.discard(entry)
        entry.conn.close()
        with contextlib.suppress(Exception):
            await entry.conn.wait_closed()


class SSHHost:
    """HostConnection over a pooled SSH connection."""

    def __init__(self, pool: SSHPool, target: HostTarget) -> None:
        self._pool = pool
        self.target = target

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
        remote = cmd.remote_command(argv, env, cwd, merge_stderr=False)
        args, prefix = remote.args, remote.stdin_prefix
        piped = stdin is not None or prefix is not None
        stdin_mode = asyncssh.PIPE if piped else asyncssh.DEVNULL
        async with self._process(remote.line, stdin_mode) as (entry, proc):
            deadline = cmd.deadline(timeout)
            pgid: int | None = None
            finished = False
            try:
                if prefix is not None:
                    # The environment goes first, ahead of the command's own input.
                    _feed(proc, prefix, close=stdin is None)
                pgid, noise = await cmd.before(deadline, cmd.read_pgid(proc), args, timeout)
                if stdin is not None:
                    _feed(proc, stdin, close=True)
                out, err = await cmd.before(deadline, proc.communicate(), args, timeout)
                finished = True
            finally:
                if not finished:
                    await asyncio.shield(self._kill(entry, proc, pgid))
            status = self._status(entry, proc, args)
        result = CommandResult(args, status, cmd.decode(out), cmd.decode(noise + err))
        if check and status != 0:
            raise cmd.command_failed(args, status, cmd.output_tail(result.stdout, result.stderr))
        return result

    async def stream(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> AsyncGenerator[str, None]:
        remote = cmd.remote_command(argv, env, cwd, merge_stderr=True)
        args, prefix = remote.args, remote.stdin_prefix
        splitter, tail = cmd.LineSplitter(), cmd.Tail()
        stdin_mode = asyncssh.DEVNULL if prefix is None else asyncssh.PIPE
        async with self._process(remote.line, stdin_mode) as (entry, proc):
            deadline = cmd.deadline(timeout)
            pgid: int | None = None
            finished = False
            try:
                if prefix is not None:
                    _feed(proc, prefix, close=True)
                pgid, noise = await cmd.before(deadline, cmd.read_pgid(proc), args, timeout)
                chunk = noise
                while True:
                    for text in splitter.feed(chunk):
                        tail.add(text)
                        yield text
                    chunk = await cmd.before(deadline, self._read(entry, proc, args), args, timeout)
                    if not chunk:
                        break
                for text in splitter.close():
                    tail.add(text)
                    yield text
                await cmd.before(deadline, proc.wait_closed(), args, timeout)
                finished = True
            finally:
                if not finished:
                    await asyncio.shield(self._kill(entry, proc, pgid))
            status = self._status(entry, proc, args)
        if status != 0:
            raise cmd.command_failed(args, status, tail.text())

    async def write_file(self, path: str, data: bytes, *, mode: int = 0o600) -> None:
        cmd.check_path(path)
        cmd.check_mode(mode)
        with file_errors(self.target, path):
            async with (
                self._sftp() as sftp,
                replacing(sftp, path, mode) as tmp,
                sftp.open(tmp, "wb", encoding=None) as remote,
            ):
                await remote.write(data)
                with contextlib.suppress(asyncssh.SFTPOpUnsupported):
                    await remote.fsync()

    async def read_file(self, path: str) -> bytes:
        cmd.check_path(path)
        with file_errors(self.target, path):
            async with self._sftp() as sftp, sftp.open(path, "rb", encoding=None) as remote:
                data: bytes = await remote.read()
                return data

    async def upload(self, local: Path, remote: str, *, mode: int = 0o600) -> None:
        cmd.check_path(remote, "remote path")
        cmd.check_mode(mode)
        with file_errors(self.target, remote):
            if not await asyncio.to_thread(Path(local).is_file):
                raise FileNotFoundError(2, "no such local file", str(local))
            async with self._sftp() as sftp, replacing(sftp, remote, mode) as tmp:
                await sftp.put(str(local), tmp)

    async def download(self, remote: str, local: Path, *, mode: int = 0o600) -> None:
        cmd.check_path(remote, "remote path")
        cmd.check_mode(mode)
        tmp = cmd.temp_sibling(str(local))
        with file_errors(self.target, remote):
            await asyncio.to_thread(create_private, tmp)
            try:
                async with self._sftp() as sftp:
                    await sftp.get(remote, tmp)
                await asyncio.to_thread(settle, tmp, str(local), mode)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise

    @asynccontextmanager
    async def open_tunnel(self, remote_host: str, remote_port: int) -> AsyncIterator[int]:
        cmd.check_port(remote_port)
        if not remote_host or "\0" in remote_host:
            raise ValueError(f"invalid tunnel host {remote_host!r}")
        entry = await self._pool._acquire(self.target)
        entry.users += 1
        try:
            try:
                listener = await entry.conn.forward_local_port(
                    "127.0.0.1", 0, remote_host, remote_port
                )
            except (OSError, asyncssh.Error) as exc:
                raise HostError(
                    f"cannot open a tunnel through {self.target.address}: {exc}"
                ) from None
            try:
                yield listener.get_port()
            finally:
                listener.close()
                await listener.wait_closed()
        finally:
            self._pool._release(entry)

    @asynccontextmanager
    async def _opened(
        self, opener: Callable[[asyncssh.SSHClientConnection], Awaitable[_T]]
    ) -> AsyncIterator[tuple[_Entry, _T]]:
        """Open a session channel, retrying once if the pooled connection had died."""
        for attempt in (1, 2):
            entry = await self._pool._acquire(self.target)
            async with entry.slots:
                try:
                    opened = await opener(entry.conn)
                except asyncssh.ChannelOpenError as exc:
                    if exc.code == asyncssh.OPEN_CONNECT_FAILED:
                        self._pool._discard(entry)
                        if attempt == 1:
                            # Nothing ran yet (the channel never opened): safe to retry.
                            _log.info(
                                "SSH connection to %s dropped; reconnecting", self.target.address
                            )
                            continue
                        raise HostUnreachable(f"connection to {self.target.address} lost") from None
                    raise HostError(
                        f"{self.target.address} refused to open a session: {exc.reason}"
                    ) from None
                except (OSError, asyncssh.Error) as exc:
                    if entry.conn.is_closed():
                        self._pool._discard(entry)
                        raise HostUnreachable(f"connection to {self.target.address} lost") from None
                    raise HostError(
                        f"cannot start a session on {self.target.address}: {exc}"
                    ) from None
                entry.users += 1
                try:
                    yield entry, opened
                finally:
                    self._pool._release(entry)
                return
        raise AssertionError("unreachable")

    def _process(
        self, line: str, stdin: int
    ) -> contextlib.AbstractAsyncContextManager[tuple[_Entry, Any]]:
        return self._opened(lambda conn: conn.create_process(line, stdin=stdin, encoding=None))

    @asynccontextmanager
    async def _sftp(self) -> AsyncIterator[asyncssh.SFTPClient]:
        async with self._opened(lambda conn: conn.start_sftp_client()) as (_, sftp):
            try:
                yield sftp
            finally:
                sftp.exit()
                with contextlib.suppress(Exception):
                    await asyncio.shield(sftp.wait_closed())

    async def _read(self, entry: _Entry, proc: Any, args: Sequence[str]) -> bytes:
        try:
            data: bytes = await proc.stdout.read(_CHUNK)
            return data
        except asyncssh.Error:
            self._pool._discard(entry)
            raise self._lost(args) from None

    def _status(self, entry: _Entry, proc: Any, args: Sequence[str]) -> int:
        status: int | None = proc.returncode
        if status is None:
            # The channel closed without an exit status: the link went down mid-command.
            self._pool._discard(entry)
            raise self._lost(args)
        return status

    def _lost(self, args: Sequence[str]) -> HostUnreachable:
        return HostUnreachable(
            f"connection to {self.target.address} was lost while running {cmd.describe(args)}"
        )

    async def _kill(self, entry: _Entry, proc: Any, pgid: int | None) -> None:
        if pgid is not None and not entry.conn.is_closed():
            # A fresh session, outside the slot limit: the slots may all be
            # held by commands that are themselves waiting to be killed.
            with contextlib.suppress(OSError, asyncssh.Error, TimeoutError):
                async with asyncio.timeout(10):
                    await entry.conn.run(f"kill -s KILL -- -{int(pgid)}", stdin=asyncssh.DEVNULL)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await proc.wait_closed()
        proc.close()


def _feed(proc: Any, data: bytes, *, close: bool) -> None:
    """Queue input for a remote process (asyncssh buffers it; nothing blocks)."""
    # The command may exit without reading its input; that is its business.
    with contextlib.suppress(OSError):
        if data:
            proc.stdin.write(data)
        if close:
            proc.stdin.write_eof()
