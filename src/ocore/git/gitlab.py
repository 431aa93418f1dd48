"""GitProvider over GitLab's REST API (gitlab.com or a self-hosted instance)."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import httpx

from ocore.core.errors import GitError, InvalidInput, OcoreError, RefNotFound
from ocore.git._http import DEFAULT_TIMEOUT, Reply, RestClient, segment, split_repository_url
from ocore.git.types import (
    CommitInfo,
    CommitList,
    TargetKind,
    check_limit,
    checked_branch,
    checked_sha,
    describe_target,
    parse_time,
    select_target,
)

GITLAB_API = "https://gitlab.com/api/v4"
_PROJECT = re.compile(r"^([0-9]+|[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+)$")


class GitLabProvider:
    """``project`` is a numeric id or the full path ``group/subgroup/name``.

    ``base_url`` is ``https://HOST/api/v4`` for a self-hosted GitLab. The
    token (personal, project or group access token, ``read_api`` scope) is
    sent as ``PRIVATE-TOKEN``. Avatars come from GitLab's ``/avatar`` lookup
    and are left out (None) if it fails.
    """

    def __init__(
        self,
        project: str,
        *,
        token: str | None = None,
        base_url: str = GITLAB_API,
        client: httpx.AsyncClient | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        avatars: bool = True,
    ) -> None:
        if not _PROJECT.match(project) or ".." in project:
            raise InvalidInput(f"a GitLab project is an id or 'group/name', got {project!r}")
        self.project = project
        headers = {"Accept": "application/json"}
        if token:
            headers["PRIVATE-TOKEN"] = token
        self.api = RestClient(
            "GitLab", base_url, headers, client=client, timeout=timeout, has_token=bool(token)
        )
        self.avatars = avatars
        self._prefix = f"/projects/{segment(project)}"

    @classmethod
    def from_url(
        cls, repository_url: str, *, base_url: str | None = None, **options: Any
    ) -> GitLabProvider:
        try:
            host, path = split_repository_url(repository_url)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        return cls(path, base_url=base_url or f"https://{host}/api/v4", **options)

    async def resolve(
        self,
        *,
        branch: str | None = None,
        tag: str | None = None,
        commit_sha: str | None = None,
    ) -> CommitInfo:
        kind, value = select_target(branch, tag, commit_sha)
        data = await self._lookup(kind, value)
        info = _commit(data)
        if kind == "commit" and not info.sha.startswith(value):
            # GitLab also takes branch names here; a hex-looking branch is not that commit.
            raise RefNotFound(f"commit {value} not found in GitLab project {self.project}")
        if self.avatars and info.author_email:
            info = await self._with_avatar(info)
        return info

    async def commits_since(self, since_sha: str, branch: str, *, limit: int = 100) -> CommitList:
        since, name = checked_sha(since_sha), checked_branch(branch)
        check_limit(limit)
        head = _commit(await self._lookup("branch", name)).sha
        base = _commit(await self._lookup("commit", since)).sha
        # straight=false: the commits on the branch since its merge base with `since`.
        document = await self._compare(base, head, straight=False)
        commits = document.get("commits")
        if not isinstance(commits, list):
            raise GitError("GitLab returned a comparison without a commit list")
        newest = [_commit(item) for item in reversed(commits)]
        return CommitList(commits=newest[:limit], total_count=len(newest))

    async def changed_files(self, from_sha: str, to_sha: str) -> list[str]:
        """Paths that differ between the commits (a direct diff); a rename lists both paths."""
        from_sha, to_sha = checked_sha(from_sha), checked_sha(to_sha)
        old = _commit(await self._lookup("commit", from_sha)).sha
        new = _commit(await self._lookup("commit", to_sha)).sha
        document = await self._compare(old, new, straight=True)
        if document.get("compare_timeout"):
            raise GitError(
                f"GitLab timed out comparing {old[:12]} with {new[:12]}; "
                "use the git CLI provider for this repository"
            )
        diffs = document.get("diffs")
        if not isinstance(diffs, list):
            raise GitError("GitLab returned a comparison without a diff list")
        paths: set[str] = set()
        for diff in diffs:
            if not isinstance(diff, dict):
                raise GitError("GitLab returned a malformed diff entry")
            for key in ("old_path", "new_path"):
                if isinstance(diff.get(key), str):
                    paths.add(diff[key])
        return sorted(paths)

    async def _lookup(self, kind: TargetKind, value: str) -> Any:
        path = {
            "branch": "/repository/branches/",
            "tag": "/repository/tags/",
            "commit": "/repository/commits/",
        }[kind] + segment(value)
        reply = await self.api.get(self._prefix + path)
        if reply.status in (404, 422):
            raise self._missing(reply, describe_target(kind, value))
        # Branches and tags carry their commit; a commit is the document itself.
        if kind == "commit":
            return reply.body
        if not isinstance(reply.body, dict):
            raise GitError(f"GitLab returned an unexpected {kind} document")
        return reply.body.get("commit")

    async def _compare(self, base: str, head: str, *, straight: bool) -> dict[str, Any]:
        params = {"from": base, "to": head, "straight": "true" if straight else "false"}
        reply = await self.api.get(self._prefix + "/repository/compare", params)
        if reply.status in (404, 422) or not isinstance(reply.body, dict):
            raise GitError(f"GitLab cannot compare {base} with {head}: {reply.message}")
        return reply.body

    def _missing(self, reply: Reply, what: str) -> Exception:
        # GitLab names what is missing: "404 Project Not Found", "404 Branch Not Found"...
        if "project" in reply.message.lower():
            return GitError(f"GitLab project {self.project} not found, or the token cannot see it")
        return RefNotFound(f"{what} not found in GitLab project {self.project}")

    async def _with_avatar(self, info: CommitInfo) -> CommitInfo:
        try:
            reply = await self.api.get("/avatar", {"email": info.author_email})
        except OcoreError:
            return info
        url = reply.body.get("avatar_url") if isinstance(reply.body, dict) else None
        if reply.status != 200 or not isinstance(url, str):
            return info
        return dataclasses.replace(info, author_avatar_url=url)


def _commit(data: Any) -> CommitInfo:
    try:
        return CommitInfo(
            sha=str(data["id"]),
            message=str(data["message"]).rstrip("\n"),
            author_name=str(data.get("author_name") or ""),
            author_email=str(data.get("author_email") or ""),
            author_avatar_url=None,
            committed_at=parse_time(data.get("committed_date"), "committed_date"),
        )
    except (KeyError, TypeError, AttributeError):
        raise GitError("GitLab returned a commit document of an unexpected shape") from None
