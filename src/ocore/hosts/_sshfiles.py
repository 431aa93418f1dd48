"""SFTP helpers for the SSH host: atomic replacement and error mapping."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import asyncssh

from ocore.core.errors import HostFileError, HostUnreachable
from ocore.hosts import _command as cmd
from ocore.hosts.base import HostTarget


@contextlib.contextmanager
def file_errors(target: HostTarget, path: str) -> Iterator[None]:
    try:
        yield
    except asyncssh.SFTPNoSuchFile as exc:
        raise HostFileError(f"{path}: {exc.reason}", path=path, missing=True) from None
    except (asyncssh.SFTPConnectionLost, asyncssh.DisconnectError):
        raise HostUnreachable(
            f"connection to {target.address} lost during a file transfer"
        ) from None
    except asyncssh.SFTPError as exc:
        raise HostFileError(f"{path}: {exc.reason}", path=path) from None
    except FileNotFoundError as exc:
        raise HostFileError(f"{exc.filename}: no such file", path=path, missing=True) from None
    except OSError as exc:
        raise HostFileError(f"{exc.filename or path}: {exc.strerror or exc}", path=path) from None


@asynccontextmanager
async def replacing(sftp: asyncssh.SFTPClient, path: str, mode: int) -> AsyncIterator[str]:
    """Yield a private temporary path that replaces ``path`` when the block succeeds."""
    tmp = cmd.temp_sibling(path)
    # Exclusive and 0600 from the first byte, so no other user can read a half-written secret.
    async with sftp.open(tmp, "xb", asyncssh.SFTPAttrs(permissions=0o600), encoding=None):
        pass
    try:
        yield tmp
        await sftp.chmod(tmp, mode)
        await sftp.posix_rename(tmp, path)
    except BaseException:
        with contextlib.suppress(Exception):
            await asyncio.shield(sftp.remove(tmp))
        raise


def create_private(path: str) -> None:
    # Private before any byte arrives; the wanted mode is applied last.
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))


def settle(tmp: str, path: str, mode: int) -> None:
    """Make a downloaded temporary file durable, give it its mode and move it in place."""
    fd = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
