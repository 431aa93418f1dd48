"""Values every git provider returns, and the checks every provider applies to its inputs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from ocore.core.errors import GitError, InvalidInput
from ocore.git.refs import validate_branch_name, validate_commit_sha, validate_tag_name

TargetKind = Literal["branch", "tag", "commit"]


@dataclass(frozen=True, kw_only=True)
class CommitInfo:
    """One commit as a deployment records it (``commitSha``, ``commitAuthor``...)."""

    sha: str
    message: str
    author_name: str
    author_email: str
    author_avatar_url: str | None
    # The committer date (when the commit landed), timezone-aware, in UTC.
    committed_at: datetime

    @property
    def title(self) -> str:
        return self.message.split("\n", 1)[0]


@dataclass(frozen=True)
class CommitList:
    """The newest commits of a range (newest first, at most the requested limit) and its size."""

    commits: list[CommitInfo]
    total_count: int


def select_target(
    branch: str | None, tag: str | None, commit_sha: str | None
) -> tuple[TargetKind, str]:
    """Exactly one of branch, tag, commit_sha; validated, so it can never read as an option."""
    given = [
        (kind, value)
        for kind, value in (("branch", branch), ("tag", tag), ("commit", commit_sha))
        if value is not None
    ]
    if len(given) != 1:
        raise InvalidInput("give exactly one of branch, tag or commit_sha")
    kind, value = given[0]
    if kind == "branch":
        return "branch", checked_branch(value)
    if kind == "tag":
        return "tag", _checked(validate_tag_name, value)
    return "commit", checked_sha(value)


def checked_branch(name: str) -> str:
    return _checked(validate_branch_name, name)


def checked_sha(sha: str) -> str:
    return _checked(validate_commit_sha, sha)


def _checked(validate: Callable[[str], str], value: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"expected a string, got {type(value).__name__}")
    try:
        return validate(value)
    except ValueError as exc:
        raise InvalidInput(f"{exc}: {value[:80]!r}") from None


def check_limit(limit: int) -> int:
    if not 1 <= limit <= 1000:
        raise InvalidInput("limit must be between 1 and 1000")
    return limit


def parse_time(value: object, what: str) -> datetime:
    """An ISO 8601 timestamp from git or a forge, as an aware UTC datetime."""
    if not isinstance(value, str):
        raise GitError(f"{what} is not a timestamp: {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise GitError(f"{what} is not a timestamp: {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def describe_target(kind: TargetKind, value: str) -> str:
    return f"commit {value}" if kind == "commit" else f"{kind} '{value}'"
