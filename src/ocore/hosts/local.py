"""HostConnection for a server that is this machine: subprocesses, no shell."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import signal
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, TypeVar

from ocore.core.errors import HostFileError
from ocore.hosts import _command as cmd
from ocore.hosts.base import DEFAULT_TIMEOUT, CommandResult, HostTarget

_T = TypeVar("_T")
_CHUNK = 64 * 1024
# Commands get a login-like environment, not ocore's own: the control plane's
# settings (database URL, signing secrets) must not leak into host commands.
_INHERITED_ENV = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "TZ")


class _SpawnFailed(Exception):
    """The program never started; reported like a shell would (127, 126, 2)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class LocalHost:
    """Runs commands and moves files on the machine ocore itself runs on."""

    def __init__(self, target: HostTarget | None = None) -> None:
        self.target = target or HostTarget.local_machine()

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
        args, environ, workdir = _checked(argv, env, cwd)
        stdin_mode = asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL
        try:
            proc = await _spawn(args, environ, workdir, stdin_mode, asyncio.subprocess.PIPE)
        except _SpawnFailed as exc:
            result = CommandResult(args, exc.status, "", exc.message + "\n")
        else:
            finished = False
            try:
                out, err = await cmd.before(
                    cmd.deadline(timeout), proc.communicate(stdin), args, timeout
                )
                finished = True
            finally:
                if not finished:
                    await asyncio.shield(_kill(proc))
            assert proc.returncode is not None
            result = CommandResult(args, proc.returncode, cmd.decode(out), cmd.decode(err))
        if check and result.exit_status != 0:
            raise cmd.command_failed(
                args, result.exit_status, cmd.output_tail(result.stdout, result.stderr)
            )
        return result

    async def stream(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> AsyncGenerator[str, None]:
        args, environ, workdir = _checked(argv, env, cwd)
        deadline = cmd.deadline(timeout)
        try:
            proc = await _spawn(
                args, environ, workdir, asyncio.subprocess.DEVNULL, asyncio.subprocess.STDOUT
            )
        except _SpawnFailed as exc:
            yield exc.message
            raise cmd.command_failed(args, exc.status, exc.message) from None
        assert proc.stdout is not None
        splitter, tail = cmd.LineSplitter(), cmd.Tail()
        finished = False
        try:
            while chunk := await cmd.before(deadline, proc.stdout.read(_CHUNK), args, timeout):
                for line in splitter.feed(chunk):
                    tail.add(line)
                    yield line
            for line in splitter.close():
                tail.add(line)
                yield line
            status = await cmd.before(deadline, proc.wait(), args, timeout)
            finished = True
        finally:
            if not finished:
                await asyncio.shield(_kill(proc))
        if status != 0:
            raise cmd.command_failed(args, status, tail.text())

    async def write_file(self, path: str, data: bytes, *, mode: int = 0o600) -> None:
        cmd.check_path(path)
        cmd.check_mode(mode)
        await _file_op(path, _write_atomic, path, data, mode)

    async def read_file(self, path: str) -> bytes:
        cmd.check_path(path)
        return await _file_op(path, Path(path).read_bytes)

    async def upload(self, local: Path, remote: str, *, mode: int = 0o600) -> None:
        cmd.check_path(remote, "remote path")
        cmd.check_mode(mode)
        await _file_op(remote, _copy_atomic, Path(local), remote, mode)

    async def download(self, remote: str, local: Path, *, mode: int = 0o600) -> None:
        cmd.check_path(remote, "remote path")
        cmd.check_mode(mode)
        await _file_op(remote, _copy_atomic, Path(remote), str(local), mode)

    @asynccontextmanager
    async def open_tunnel(self, remote_host: str, remote_port: int) -> AsyncIterator[int]:
        cmd.check_port(remote_port)
        if remote_host in ("127.0.0.1", "localhost"):
            # Already reachable from here; nothing to forward.
            yield remote_port
            return
        relays: set[asyncio.Task[None]] = set()

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            relays.add(task)
            try:
                await _relay(reader, writer, remote_host, remote_port)
            finally:
                relays.discard(task)

        server = await asyncio.start_server(accept, "127.0.0.1", 0)
        try:
            yield int(server.sockets[0].getsockname()[1])
        finally:
            server.close()
            for task in list(relays):
                task.cancel()
            await asyncio.gather(*relays, return_exceptions=True)
            await server.wait_closed()


def _checked(
    argv: Sequence[str], env: Mapping[str, str] | None, cwd: str | None
) -> tuple[tuple[str, ...], dict[str, str], str | None]:
    args = cmd.check_argv(argv)
    extra = cmd.check_env(env)
    workdir = cmd.check_path(cwd, "cwd") if cwd is not None else None
    environ = {name: os.environ[name] for name in _INHERITED_ENV if name in os.environ}
    environ.setdefault("PATH", os.defpath)
    environ.update(extra)
    return args, environ, workdir


async def _spawn(
    args: tuple[str, ...], environ: dict[str, str], cwd: str | None, stdin: int, stderr: int
) -> asyncio.subprocess.Process:
    try:
        return await asyncio.create_subprocess_exec(
            *_die_with_parent(),
            *args,
            stdin=stdin,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            env=environ,
            cwd=cwd,
            # Own process group, so a timeout kills whatever the command spawned too.
            start_new_session=True,
        )
    except OSError as exc:
        if cwd is not None and exc.filename == cwd:
            raise _SpawnFailed(2, f"cd: {cwd}: {exc.strerror}") from None
        status = 127 if isinstance(exc, FileNotFoundError) else 126
        raise _SpawnFailed(status, f"{args[0]}: {exc.strerror}") from None


@functools.cache
def _die_with_parent() -> tuple[str, ...]:
    """``cmd.DIE_WITH_PARENT`` where setpriv is installed. The parent is the thread
    that forks: asyncio's, which lives as long as the process."""
    return cmd.DIE_WITH_PARENT if shutil.which(cmd.DIE_WITH_PARENT[0]) else ()


async def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(10):
            await proc.wait()


async def _relay(
    client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter, host: str, port: int
) -> None:
    try:
        upstream_r, upstream_w = await asyncio.open_connection(host, port)
    except OSError:
        client_w.close()
        return

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(_CHUNK):
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()

    try:
        await asyncio.gather(pump(client_r, upstream_w), pump(upstream_r, client_w))
    finally:
        upstream_w.close()
        client_w.close()


async def _file_op(path: str, func: Callable[..., _T], *args: object) -> _T:
    try:
        return await asyncio.to_thread(func, *args)
    except FileNotFoundError as exc:
        raise HostFileError(
            f"{exc.filename or path}: no such file or directory", path=path, missing=True
        ) from None
    except OSError as exc:
        raise HostFileError(f"{exc.filename or path}: {exc.strerror or exc}", path=path) from None


def _write_atomic(path: str, data: bytes, mode: int) -> None:
    with _atomic_target(path, mode) as out:
        out.write(data)


def _copy_atomic(source: Path, path: str, mode: int) -> None:
    with source.open("rb") as src, _atomic_target(path, mode) as out:
        shutil.copyfileobj(src, out, _CHUNK)


@contextlib.contextmanager
def _atomic_target(path: str, mode: int) -> Iterator[IO[bytes]]:
    tmp = cmd.temp_sibling(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        # Applied after writing, so the umask cannot narrow it and readers never see a partial file.
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
