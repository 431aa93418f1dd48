"""GitProvider over GitHub's REST API (github.com or GitHub Enterprise Server)."""

from __future__ import annotations

import re
from typing import Any

import httpx

from ocore.core.errors import GitError, InvalidInput, RefNotFound
from ocore.git._http import DEFAULT_TIMEOUT, Reply, RestClient, segment, split_repository_url
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

GITHUB_API = "https://api.github.com"
_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_PAGE = 100


class GitHubProvider:
    """``repository`` is ``owner/name``; ``base_url`` is ``https://HOST/api/v3`` on Enterprise.

    Without a token only public repositories are visible (GitHub answers 404
    for private ones) and the rate limit is 60 requests an hour.
    """

    # GitHub's compare API lists at most this many files for a whole comparison.
    max_compare_files = 300

    def __init__(
        self,
        repository: str,
        *,
        token: str | None = None,
        base_url: str = GITHUB_API,
        client: httpx.AsyncClient | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if not _REPOSITORY.match(repository) or ".." in repository:
            raise InvalidInput(f"a GitHub repository is 'owner/name', got {repository!r}")
        self.repository = repository
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.api = RestClient(
            "GitHub", base_url, headers, client=client, timeout=timeout, has_token=bool(token)
        )
        self._prefix = f"/repos/{repository}"

    @classmethod
    def from_url(
        cls, repository_url: str, *, base_url: str | None = None, **options: Any
    ) -> GitHubProvider:
        """From a clone URL; the API of a host other than github.com is at ``/api/v3``."""
        try:
            host, path = split_repository_url(repository_url)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        if base_url is None:
            base_url = GITHUB_API if host == "github.com" else f"https://{host}/api/v3"
        return cls(path, base_url=base_url, **options)

    async def resolve(
        self,
        *,
        branch: str | None = None,
        tag: str | None = None,
        commit_sha: str | None = None,
    ) -> CommitInfo:
        kind, value = select_target(branch, tag, commit_sha)
        ref = {"branch": f"heads/{value}", "tag": f"tags/{value}", "commit": value}[kind]
        reply = await self.api.get(f"{self._prefix}/commits/{segment(ref, keep_slashes=True)}")
        if reply.status in (404, 422):
            raise await self._missing(describe_target(kind, value))
        info = _commit(reply.body)
        if kind == "commit" and not info.sha.startswith(value):
            raise RefNotFound(f"commit {value} not found in GitHub repository {self.repository}")
        return info

    async def commits_since(self, since_sha: str, branch: str, *, limit: int = 100) -> CommitList:
        since, name = checked_sha(since_sha), checked_branch(branch)
        check_limit(limit)
        # Pin the branch head first: the count and the list then describe one range.
        head = (await self.resolve(branch=name)).sha
        first = await self._compare(since, head, page=1)
        total = _int(first.get("total_commits"), "total_commits")
        # Compare lists commits oldest first, a page at a time; keep the newest.
        newest = list(reversed(_commits(first)))
        pages = -(-total // _PAGE)
        if pages > 1:
            newest = []
            page = pages
            while page >= 1 and len(newest) < limit:
                newest += reversed(_commits(await self._compare(since, head, page=page)))
                page -= 1
        return CommitList(commits=newest[:limit], total_count=total)

    async def changed_files(self, from_sha: str, to_sha: str) -> list[str]:
        """Paths that differ between the commits; a rename lists both paths.

        GitHub compares from the merge base, so a commit behind the other is
        compared the other way round, and for diverged commits both sides are
        joined: a superset of the direct difference, never missing a path.
        """
        old, new = checked_sha(from_sha), checked_sha(to_sha)
        forward = await self._compare(old, new, page=1)
        status = forward.get("status")
        documents = [forward]
        if status in ("behind", "diverged"):
            documents.append(await self._compare(new, old, page=1))
        paths: set[str] = set()
        for document in documents:
            files = document.get("files") or []
            if not isinstance(files, list):
                raise GitError("GitHub returned a comparison without a file list")
            if len(files) >= self.max_compare_files:
                raise GitError(
                    f"{old[:12]}...{new[:12]} changes {len(files)} files or more, beyond what "
                    "GitHub's compare API lists; use the git CLI provider for this repository"
                )
            for entry in files:
                if not isinstance(entry, dict) or not isinstance(entry.get("filename"), str):
                    raise GitError("GitHub returned a malformed file entry")
                paths.add(entry["filename"])
                if isinstance(entry.get("previous_filename"), str):
                    paths.add(entry["previous_filename"])
        return sorted(paths)

    async def _compare(self, base: str, head: str, *, page: int) -> dict[str, Any]:
        reply = await self.api.get(
            f"{self._prefix}/compare/{base}...{head}", {"per_page": _PAGE, "page": page}
        )
        if reply.status in (404, 422):
            # One of the two is unknown; say which.
            for sha in (base, head):
                await self.resolve(commit_sha=sha)
            raise GitError(f"GitHub cannot compare {base} with {head}: {reply.message}")
        if not isinstance(reply.body, dict):
            raise GitError("GitHub returned a comparison that is not an object")
        return reply.body

    async def _missing(self, what: str) -> Exception:
        """RefNotFound when the repository is there, else say the repository is the problem."""
        repo: Reply = await self.api.get(self._prefix)
        if repo.status == 404:
            return GitError(
                f"GitHub repository {self.repository} not found, or the token cannot see it"
            )
        return RefNotFound(f"{what} not found in GitHub repository {self.repository}")


def _commits(document: dict[str, Any]) -> list[CommitInfo]:
    commits = document.get("commits")
    if not isinstance(commits, list):
        raise GitError("GitHub returned a comparison without a commit list")
    return [_commit(item) for item in commits]


def _commit(data: Any) -> CommitInfo:
    try:
        inner = data["commit"]
        author = inner["author"] or {}
        user = data.get("author") or {}
        return CommitInfo(
            sha=str(data["sha"]),
            message=str(inner["message"]),
            author_name=str(author.get("name") or ""),
            author_email=str(author.get("email") or ""),
            author_avatar_url=user.get("avatar_url") if isinstance(user, dict) else None,
            committed_at=parse_time((inner.get("committer") or author).get("date"), "date"),
        )
    except (KeyError, TypeError, AttributeError):
        raise GitError("GitHub returned a commit document of an unexpected shape") from None


def _int(value: Any, what: str) -> int:
    if not isinstance(value, int) or value < 0:
        raise GitError(f"GitHub returned an invalid {what}: {value!r}")
    return value
