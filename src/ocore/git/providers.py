"""The one interface deploys and environments use to ask a repository about its commits.

Implementations: ``GitCliProvider`` (any repository git can reach, git run on
a host), ``GitHubProvider`` and ``GitLabProvider`` (their REST APIs). All
raise the ocore error family: ``InvalidInput`` for a malformed ref or SHA
(before anything runs), ``RefNotFound`` for an unknown one, ``GitAuthFailed``
/ ``GitRateLimited`` / ``GitError`` when the provider fails.
"""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

import httpx

from ocore.core.errors import InvalidInput
from ocore.git._cache import DEFAULT_CACHE_ROOT, SshSettings
from ocore.git.cli import GitCliProvider
from ocore.git.github import GitHubProvider
from ocore.git.gitlab import GitLabProvider
from ocore.git.refs import infer_provider
from ocore.git.types import CommitInfo, CommitList
from ocore.hosts.base import HostConnection
from ocore.hosts.local import LocalHost

__all__ = [
    "CommitInfo",
    "CommitList",
    "GitCliProvider",
    "GitHubProvider",
    "GitLabProvider",
    "GitProvider",
    "ProviderKind",
    "SshSettings",
    "make_provider",
]

ProviderKind = Literal["github", "gitlab", "git"]


@runtime_checkable
class GitProvider(Protocol):
    async def resolve(
        self,
        *,
        branch: str | None = None,
        tag: str | None = None,
        commit_sha: str | None = None,
    ) -> CommitInfo:
        """The commit that exactly one of branch, tag or commit_sha names."""
        ...

    async def commits_since(self, since_sha: str, branch: str, *, limit: int = 100) -> CommitList:
        """Commits on ``branch`` that ``since_sha`` lacks, newest first, and how many in all."""
        ...

    async def changed_files(self, from_sha: str, to_sha: str) -> list[str]:
        """Sorted paths that differ between two commits; a rename lists old and new path."""
        ...


def make_provider(
    repository_url: str,
    *,
    kind: ProviderKind | None = None,
    token: str | None = None,
    api_base_url: str | None = None,
    host: HostConnection | None = None,
    cache_root: str = DEFAULT_CACHE_ROOT,
    ssh: SshSettings | None = None,
    client: httpx.AsyncClient | None = None,
) -> GitProvider:
    """The provider for a project's repository.

    ``kind`` defaults to what the URL says (github.com, gitlab.com, else plain
    git); name it for GitHub Enterprise or a self-hosted GitLab. Plain git
    runs on ``host``, by default this machine.
    """
    chosen = kind or {"github": "github", "gitlab": "gitlab"}.get(
        infer_provider(repository_url), "git"
    )
    if chosen == "github":
        return GitHubProvider.from_url(
            repository_url, base_url=api_base_url, token=token, client=client
        )
    if chosen == "gitlab":
        return GitLabProvider.from_url(
            repository_url, base_url=api_base_url, token=token, client=client
        )
    if chosen == "git":
        return GitCliProvider(host or LocalHost(), repository_url, cache_root=cache_root, ssh=ssh)
    raise InvalidInput(f"unknown git provider kind {kind!r}")
