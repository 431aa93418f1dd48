"""checkout(): an exact, clean, idempotent working tree on a host, locally and over SSH."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ocore.core.errors import Conflict, InvalidInput, RefNotFound
from ocore.git.checkout import checkout
from ocore.hosts import HostConnection
from tests.fixtures.gitrepo import GitRepo, git
from tests.git.conftest import RecordingHost
from tests.git.history import History, build_history


@pytest.fixture
def history(repo: GitRepo) -> History:
    return build_history(repo)


def tree(path: Path) -> dict[str, str]:
    """Every file under ``path`` except git's own, with its content."""
    return {
        str(p.relative_to(path)): p.read_text()
        for p in sorted(path.rglob("*"))
        if p.is_file() and p.name != ".git"
    }


def head(path: Path) -> str:
    return subprocess.run(
        ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()


async def test_checkout_is_exact(
    host: HostConnection, repo: GitRepo, history: History, cache_root: str, tmp_path: Path
) -> None:
    dest = tmp_path / "srv" / "env-1" / "blue"
    full = await checkout(host, repo.url, history.c2[:12], str(dest), cache_root=cache_root)
    assert full == history.c2
    assert head(dest) == history.c2
    assert tree(dest) == {
        "README.md": "hello\n",
        "docs/old.txt": "old\n",
        "sale_x/__init__.py": "",
        "sale_x/models.py": "x = 1\n",
    }


async def test_rerun_restores_a_clean_tree_and_can_move(
    host: HostConnection, repo: GitRepo, history: History, cache_root: str, tmp_path: Path
) -> None:
    dest = tmp_path / "checkout"
    await checkout(host, repo.url, history.c3, str(dest), cache_root=cache_root)
    clean = tree(dest)
    # What a running Odoo or a curious admin leaves behind.
    (dest / "README.md").write_text("edited on the server\n")
    (dest / "sale_x" / "models.pyc").write_text("bytecode")
    (dest / "stray").mkdir()
    (dest / "stray" / "file.txt").write_text("x")
    (dest / "docs" / "old.txt").unlink()
    git("init", "--quiet", str(dest / "nested"))

    assert (
        await checkout(host, repo.url, history.c3, str(dest), cache_root=cache_root) == history.c3
    )
    assert tree(dest) == clean
    assert head(dest) == history.c3
    # And again: nothing to do, same result.
    await checkout(host, repo.url, history.c3, str(dest), cache_root=cache_root)
    assert tree(dest) == clean

    # Moving to another commit (update the previous build) in place.
    await checkout(host, repo.url, history.c5, str(dest), cache_root=cache_root)
    assert head(dest) == history.c5
    assert tree(dest)["sale_x/models.py"] == "x = 2\n"
    assert "docs/new.txt" in tree(dest)


async def test_two_colours_side_by_side(
    host: HostConnection, repo: GitRepo, history: History, cache_root: str, tmp_path: Path
) -> None:
    blue, green = tmp_path / "blue", tmp_path / "green"
    await checkout(host, repo.url, history.c3, str(blue), cache_root=cache_root)
    await checkout(host, repo.url, history.c3, str(green), cache_root=cache_root)
    await checkout(host, repo.url, history.c1, str(green), cache_root=cache_root)
    assert head(blue) == history.c3
    assert head(green) == history.c1


async def test_deleted_checkout_is_recreated(
    host: HostConnection, repo: GitRepo, history: History, cache_root: str, tmp_path: Path
) -> None:
    dest = tmp_path / "checkout"
    await checkout(host, repo.url, history.c3, str(dest), cache_root=cache_root)
    shutil.rmtree(dest)
    await checkout(host, repo.url, history.c2, str(dest), cache_root=cache_root)
    assert head(dest) == history.c2


async def test_empty_directory_is_used_but_foreign_content_is_refused(
    host: HostConnection, repo: GitRepo, history: History, cache_root: str, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    await checkout(host, repo.url, history.c1, str(empty), cache_root=cache_root)
    assert head(empty) == history.c1

    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "precious.txt").write_text("keep me")
    with pytest.raises(Conflict, match="not a checkout of"):
        await checkout(host, repo.url, history.c1, str(occupied), cache_root=cache_root)
    assert (occupied / "precious.txt").read_text() == "keep me"

    # A checkout of another repository is foreign too.
    other = GitRepo.create(tmp_path / "other", "other")
    other_sha = other.commit({"a.txt": "a"}, "other")
    elsewhere = tmp_path / "elsewhere"
    await checkout(host, other.url, other_sha, str(elsewhere), cache_root=cache_root)
    with pytest.raises(Conflict):
        await checkout(host, repo.url, history.c1, str(elsewhere), cache_root=cache_root)


async def test_commit_no_branch_has_any_more(
    host: HostConnection, repo: GitRepo, history: History, cache_root: str, tmp_path: Path
) -> None:
    """A deploy of a commit that a force push removed from every branch still works."""
    orphan = repo.commit({"orphan.txt": "o"}, "Soon unreachable", push=None)
    git("push", "--quiet", "origin", f"{orphan}:refs/heads/tmp", cwd=repo.work)
    repo.delete_branch("tmp")
    dest = tmp_path / "checkout"
    assert await checkout(host, repo.url, orphan, str(dest), cache_root=cache_root) == orphan
    assert (dest / "orphan.txt").read_text() == "o"


async def test_unknown_commit(
    host: HostConnection, repo: GitRepo, history: History, cache_root: str, tmp_path: Path
) -> None:
    with pytest.raises(RefNotFound, match="commit 0123456789abcdef"):
        await checkout(
            host,
            repo.url,
            "0123456789abcdef" * 2 + "01234567",
            str(tmp_path / "d"),
            cache_root=cache_root,
        )
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize(
    ("sha", "dest"),
    [
        ("a" * 40, "relative/dir"),
        ("a" * 40, "/srv/../etc"),
        ("a" * 40, "/srv/x/"),
        ("a" * 40, "/"),
        ("a" * 40, "/srv/x\n"),
        ("--upload-pack=touch /tmp/pwned", "/srv/x"),
        ("HEAD", "/srv/x"),
        ("a" * 40, "{cache}"),
        ("a" * 40, "{cache}/inside"),
    ],
)
async def test_bad_input_rejected_before_anything_runs(
    sha: str, dest: str, recording_host: RecordingHost, tmp_path: Path
) -> None:
    cache = str(tmp_path / "cache")
    with pytest.raises(InvalidInput):
        await checkout(
            recording_host, str(tmp_path / "r.git"), sha, dest.format(cache=cache), cache_root=cache
        )  # type: ignore[arg-type]
    assert recording_host.calls == []
