"""Odoo filestores copied and removed on the host."""

from __future__ import annotations

import os
from pathlib import Path

from ocore.hosts import HostConnection
from ocore.hosts.database import copy_filestore, filestore_path, remove_filestore


def make_filestore(root: Path, db: str) -> Path:
    store = root / "filestore" / db
    (store / "3f").mkdir(parents=True)
    (store / "3f" / "3f2a9c").write_bytes(bytes(range(256)) * 64)
    (store / "a0").mkdir()
    (store / "a0" / "a0b1c2").write_text("attachment")
    os.chmod(store / "a0" / "a0b1c2", 0o640)
    os.utime(store / "a0" / "a0b1c2", (1_600_000_000, 1_600_000_000))
    return store


def snapshot_tree(root: Path) -> dict[str, tuple[bytes, int, int]]:
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            info = path.stat()
            found[str(path.relative_to(root))] = (
                path.read_bytes(),
                info.st_mode & 0o7777,
                int(info.st_mtime),
            )
    return found


async def test_copy_filestore(host: HostConnection, tmp_path: Path) -> None:
    source = make_filestore(tmp_path, "prod")
    target = tmp_path / "filestore" / "staging"
    assert filestore_path(str(tmp_path) + "/", "staging") == str(target)

    assert await copy_filestore(host, str(tmp_path), "prod", "staging")
    assert snapshot_tree(target) == snapshot_tree(source)
    assert sorted(os.listdir(tmp_path / "filestore")) == ["prod", "staging"]

    # A stale target (and the leftovers of a crashed copy) are replaced, not merged.
    (target / "stale").write_text("old")
    (tmp_path / "filestore" / ".staging.ocore-tmp").mkdir()
    (tmp_path / "filestore" / ".staging.ocore-tmp" / "half").write_text("x")
    assert await copy_filestore(host, str(tmp_path), "prod", "staging")
    assert snapshot_tree(target) == snapshot_tree(source)
    assert sorted(os.listdir(tmp_path / "filestore")) == ["prod", "staging"]


async def test_missing_source_filestore_is_no_error(host: HostConnection, tmp_path: Path) -> None:
    # A database Odoo has just created has no filestore yet.
    assert not await copy_filestore(host, str(tmp_path), "fresh", "copy")
    assert not (tmp_path / "filestore").exists()
    make_filestore(tmp_path, "copy")
    assert not await copy_filestore(host, str(tmp_path), "fresh", "copy")
    assert os.listdir(tmp_path / "filestore") == []


async def test_remove_filestore(host: HostConnection, tmp_path: Path) -> None:
    make_filestore(tmp_path, "gone")
    keep = make_filestore(tmp_path, "kept")
    await remove_filestore(host, str(tmp_path), "gone")
    assert os.listdir(tmp_path / "filestore") == ["kept"]
    await remove_filestore(host, str(tmp_path), "gone")
    assert keep.is_dir()
