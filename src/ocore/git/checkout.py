"""A clean checkout of one exact commit on a host, from the host's bare cache.

The checkout is a detached ``git worktree`` of the cache: no objects are
copied, and git counts a worktree's HEAD as reachable, so gc in the cache
never drops the deployed commit. Submodules are not checked out.
"""

from __future__ import annotations

import posixpath

from ocore.core.errors import Conflict, GitError, InvalidInput
from ocore.git._cache import DEFAULT_CACHE_ROOT, FETCH_TIMEOUT, RepoCache, SshSettings
from ocore.git.types import checked_sha
from ocore.hosts.base import HostConnection


async def checkout(
    host: HostConnection,
    repository_url: str,
    commit_sha: str,
    dest_dir: str,
    *,
    cache_root: str = DEFAULT_CACHE_ROOT,
    ssh: SshSettings | None = None,
    fetch_timeout: float = FETCH_TIMEOUT,
) -> str:
    """Make ``dest_dir`` on ``host`` hold exactly ``commit_sha``; returns the full SHA.

    Idempotent: a rerun (after a crash at any point, or to move the checkout
    to another commit) resets tracked files and deletes untracked and ignored
    ones, so the directory ends identical to a fresh checkout. A ``dest_dir``
    that exists and is anything but a checkout from this cache is refused
    (``Conflict``), never overwritten.
    """
    sha = checked_sha(commit_sha)
    dest = _checked_dest(dest_dir)
    cache = RepoCache(
        host, repository_url, cache_root=cache_root, ssh=ssh, fetch_timeout=fetch_timeout
    )
    if _overlaps(dest, cache.cache_root):
        raise InvalidInput(f"checkout directory {dest} overlaps the git cache {cache.cache_root}")
    full = await cache.ensure_commit(sha)
    # Forget worktrees whose directories were deleted behind git's back.
    await cache.git("worktree", "prune")
    if await _is_our_worktree(cache, dest):
        # `git checkout` rejects --end-of-options; `full` is a hex SHA from rev-parse.
        await _git_in(cache, dest, "checkout", "--quiet", "--force", "--detach", full)
    else:
        added = await cache.git(
            "worktree", "add", "--quiet", "--detach", "--end-of-options", dest, full, check=False
        )
        if not added.ok:
            if "already exists" in added.stderr:
                raise Conflict(
                    f"{dest} exists and is not a checkout of {cache.label}; "
                    "remove it or choose another directory"
                )
            raise GitError(f"git worktree add {dest} failed: {added.stderr.strip()[-300:]}")
    # -ff: also nested repositories; -x: also ignored files (.pyc, build output).
    await _git_in(cache, dest, "clean", "-ffdxq")
    head = (await _git_in(cache, dest, "rev-parse", "HEAD")).strip()
    dirty = await _git_in(cache, dest, "status", "--porcelain", "--ignored", "-uall")
    if head != full or dirty.strip():
        raise GitError(f"checkout of {full} in {dest} did not come out clean (HEAD {head})")
    return full


def _checked_dest(path: str) -> str:
    if (
        not isinstance(path, str)
        or not path.startswith("/")
        or path == "/"
        or posixpath.normpath(path) != path
        or any(ch in path for ch in "\0\n\r")
    ):
        raise InvalidInput(
            f"checkout directory must be a normalized absolute path other than /, got {path!r}"
        )
    return path


def _overlaps(a: str, b: str) -> bool:
    return a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a + "/")


async def _is_our_worktree(cache: RepoCache, dest: str) -> bool:
    """True when ``dest`` is the top of a worktree of this very cache."""
    probe = await cache.run(
        ["-C", dest, "rev-parse", "--git-common-dir", "--show-prefix"], check=False
    )
    if not probe.ok:
        return False
    lines = probe.stdout.split("\n")
    if len(lines) < 2 or lines[1] != "":
        return False
    # Compared as git reports both: real paths, whatever symlinks lead there.
    ours = await cache.git("rev-parse", "--absolute-git-dir")
    return lines[0] == ours.stdout.strip()


async def _git_in(cache: RepoCache, dest: str, *args: str) -> str:
    return (await cache.run(["-C", dest, *args])).stdout
