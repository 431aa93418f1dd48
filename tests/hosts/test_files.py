"""File operations over SFTP and on this machine, same expectations."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ocore.core.errors import HostFileError
from ocore.hosts import HostConnection

ALL_BYTES = bytes(range(256)) * 1024


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_write_then_read(host: HostConnection, tmp_path: Path) -> None:
    path = tmp_path / "odoo.conf"
    await host.write_file(str(path), ALL_BYTES)
    assert path.read_bytes() == ALL_BYTES
    assert mode_of(path) == 0o600
    assert await host.read_file(str(path)) == ALL_BYTES


async def test_write_replaces_atomically_with_mode(host: HostConnection, tmp_path: Path) -> None:
    path = tmp_path / "site.conf"
    path.write_text("old")
    before = path.stat().st_ino
    await host.write_file(str(path), b"new", mode=0o644)
    assert path.read_bytes() == b"new"
    assert mode_of(path) == 0o644
    # A new inode: the content was renamed into place, never rewritten in place.
    assert path.stat().st_ino != before
    assert sorted(os.listdir(tmp_path)) == ["site.conf"]


async def test_umask_does_not_narrow_the_mode(host: HostConnection, tmp_path: Path) -> None:
    path = tmp_path / "script.sh"
    await host.write_file(str(path), b"#!/bin/sh\n", mode=0o775)
    assert mode_of(path) == 0o775


async def test_read_missing_file(host: HostConnection, tmp_path: Path) -> None:
    with pytest.raises(HostFileError) as caught:
        await host.read_file(str(tmp_path / "absent"))
    assert caught.value.missing


async def test_write_into_missing_directory(host: HostConnection, tmp_path: Path) -> None:
    with pytest.raises(HostFileError):
        await host.write_file(str(tmp_path / "no" / "dir" / "file"), b"x")


async def test_upload_and_download(host: HostConnection, tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(ALL_BYTES * 8)
    remote = tmp_path / "remote" / "dump.bin"
    remote.parent.mkdir()
    await host.upload(source, str(remote), mode=0o640)
    assert remote.read_bytes() == ALL_BYTES * 8
    assert mode_of(remote) == 0o640

    back = tmp_path / "back" / "dump.bin"
    back.parent.mkdir()
    back.write_bytes(b"stale")
    await host.download(str(remote), back)
    assert back.read_bytes() == ALL_BYTES * 8
    assert mode_of(back) == 0o600
    assert os.listdir(back.parent) == ["dump.bin"]
    assert os.listdir(remote.parent) == ["dump.bin"]


async def test_download_missing_leaves_nothing(host: HostConnection, tmp_path: Path) -> None:
    target = tmp_path / "out" / "file"
    target.parent.mkdir()
    with pytest.raises(HostFileError) as caught:
        await host.download(str(tmp_path / "absent"), target)
    assert caught.value.missing
    assert os.listdir(target.parent) == []


async def test_upload_missing_local_file(host: HostConnection, tmp_path: Path) -> None:
    with pytest.raises(HostFileError) as caught:
        await host.upload(tmp_path / "absent", str(tmp_path / "dest"))
    assert caught.value.missing
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("path", ["relative/file", "", "/tmp/a\0b"])
async def test_host_paths_must_be_absolute(host: HostConnection, path: str) -> None:
    with pytest.raises(ValueError, match="absolute"):
        await host.write_file(path, b"x")
    with pytest.raises(ValueError, match="absolute"):
        await host.read_file(path)
