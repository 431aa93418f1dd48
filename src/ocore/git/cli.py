"""GitProvider for any repository git itself can reach: a path, file://, ssh://, https://.

git runs on a ``HostConnection``: the control-plane machine (``LocalHost``)
or an Odoo host over SSH, against a bare cache of the repository kept under
``cache_root`` on that machine.
"""

from __future__ import annotations

from collections.abc import Iterable

from ocore.core.errors import GitError, RefNotFound
from ocore.git._cache import DEFAULT_CACHE_ROOT, FETCH_TIMEOUT, RepoCache, SshSettings
from ocore.git.types import (
    CommitInfo,
    CommitList,
    check_limit,
    checked_branch,
    checked_sha,
    describe_target,
    parse_time,
    select_target,
)
from ocore.hosts.base import HostConnection

# Unit separators between fields, NUL between commits (-z): neither occurs in
# names or e-mails, and the free-text message is the last field.
_FIELDS = "%H%x1f%an%x1f%ae%x1f%cI%x1f%B"
_MAX_READ = 1024 * 1024


class GitCliProvider:
    """Resolves refs and lists commits with the git CLI over a bare cache on ``host``.

    Branch lookups fetch first (branches move); commit lookups fetch only
    when the cache lacks the commit. Avatars are unknown to plain git: None.
    """

    def __init__(
        self,
        host: HostConnection,
        repository_url: str,
        *,
        cache_root: str = DEFAULT_CACHE_ROOT,
        ssh: SshSettings | None = None,
        fetch_timeout: float = FETCH_TIMEOUT,
    ) -> None:
        self.cache = RepoCache(
            host, repository_url, cache_root=cache_root, ssh=ssh, fetch_timeout=fetch_timeout
        )

    async def resolve(
        self,
        *,
        branch: str | None = None,
        tag: str | None = None,
        commit_sha: str | None = None,
    ) -> CommitInfo:
        kind, value = select_target(branch, tag, commit_sha)
        if kind == "commit":
            sha = await self.cache.ensure_commit(value)
        else:
            await self.cache.fetch()
            namespace = "heads" if kind == "branch" else "tags"
            found = await self.cache.commit(f"refs/{namespace}/{value}")
            if found is None:
                raise RefNotFound(f"{describe_target(kind, value)} not found in {self.cache.label}")
            sha = found
        commits = await self._log(sha, max_count=1)
        return commits[0]

    async def commits_since(self, since_sha: str, branch: str, *, limit: int = 100) -> CommitList:
        since, name = checked_sha(since_sha), checked_branch(branch)
        check_limit(limit)
        await self.cache.fetch()
        head = await self.cache.commit(f"refs/heads/{name}")
        if head is None:
            raise RefNotFound(f"branch '{name}' not found in {self.cache.label}")
        base = await self.cache.ensure_commit(since)
        # Both ends are full SHAs by now: the range cannot be misread.
        span = f"{base}..{head}"
        counted = await self.cache.git("rev-list", "--count", "--end-of-options", span)
        return CommitList(
            commits=await self._log(span, max_count=limit), total_count=int(counted.stdout.strip())
        )

    async def changed_files(self, from_sha: str, to_sha: str) -> list[str]:
        """Every path that differs between the two commits; a rename lists both paths."""
        # Both checked before either reaches git.
        from_sha, to_sha = checked_sha(from_sha), checked_sha(to_sha)
        old = await self.cache.ensure_commit(from_sha)
        new = await self.cache.ensure_commit(to_sha)
        result = await self.cache.git(
            "diff", "--name-only", "-z", "--no-renames", "--no-ext-diff", "--end-of-options",
            old, new, "--",
        )  # fmt: skip
        return sorted({path for path in result.stdout.split("\0") if path})

    # The reader module detection needs (see ocore.git.modules.RepoReader).

    async def existing_paths(self, commit_sha: str, paths: Iterable[str]) -> set[str]:
        """Which of ``paths`` exist as files at the commit (one git call for all of them)."""
        sha = await self.cache.ensure_commit(checked_sha(commit_sha))
        # A name with a newline cannot be asked about on a line; it is no manifest anyway.
        wanted = sorted({path for path in paths if path and "\n" not in path})
        if not wanted:
            return set()
        query = "".join(f"{sha}:{path}\n" for path in wanted).encode()
        result = await self.cache.git("cat-file", "--batch-check", stdin=query)
        found: set[str] = set()
        for path, line in zip(wanted, result.stdout.splitlines(), strict=False):
            if not line.endswith(" missing") and " blob " in line:
                found.add(path)
        return found

    async def read_text(self, commit_sha: str, path: str) -> str:
        """A file's content at the commit (``git cat-file blob <sha>:<path>``)."""
        sha = await self.cache.ensure_commit(checked_sha(commit_sha))
        obj = f"{sha}:{path}"
        # Size first: a hostile repository must not make us read a huge blob.
        size = await self.cache.git("cat-file", "-s", obj, check=False)
        if not size.ok:
            raise RefNotFound(f"{path} does not exist at commit {sha[:12]}")
        if int(size.stdout.strip() or 0) > _MAX_READ:
            raise GitError(f"{path} at commit {sha[:12]} is larger than {_MAX_READ} bytes")
        return (await self.cache.git("cat-file", "blob", obj)).stdout

    async def _log(self, rev: str, *, max_count: int) -> list[CommitInfo]:
        result = await self.cache.git(
            "log", "-z", f"--max-count={max_count}", f"--format={_FIELDS}", "--end-of-options", rev
        )
        return [_commit(record) for record in result.stdout.split("\0") if record.strip()]


def _commit(record: str) -> CommitInfo:
    fields = record.lstrip("\n").split("\x1f", 4)
    if len(fields) != 5:
        raise GitError(f"unexpected git log output: {record[:200]!r}")
    sha, name, email, committed, message = fields
    return CommitInfo(
        sha=sha,
        message=message.rstrip("\n"),
        author_name=name,
        author_email=email,
        author_avatar_url=None,
        committed_at=parse_time(committed, f"commit {sha} date"),
    )
