"""What a webhook delivery means for ocore, whichever forge sent it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class PushCommit:
    """A commit as a push payload describes it (less than ``CommitInfo``: no avatar)."""

    sha: str
    message: str
    author_name: str
    author_email: str | None = None
    timestamp: datetime | None = None


@dataclass(frozen=True)
class PushEvent:
    branch: str
    # None when the push created the branch.
    before: str | None
    after: str
    commits: tuple[PushCommit, ...]
    delivery_id: str
    forced: bool = False


@dataclass(frozen=True)
class BranchDeleted:
    branch: str
    delivery_id: str


@dataclass(frozen=True)
class PullRequestMerged:
    source_branch: str
    target_branch: str
    merge_commit_sha: str | None
    delivery_id: str


@dataclass(frozen=True)
class Ignored:
    """An authentic delivery ocore does not act on (ping, tag push, closed unmerged...)."""

    reason: str
    delivery_id: str


WebhookEvent = PushEvent | BranchDeleted | PullRequestMerged | Ignored
