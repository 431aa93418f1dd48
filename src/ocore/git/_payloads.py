"""Authenticated webhook documents turned into ocore's event types.

Anything the payload gets wrong (missing field, wrong type, SHA that is not
hex) is ``InvalidInput`` naming the field. A branch name ocore's rules
reject cannot be an environment, so such an event is ``Ignored``, not an
error: the forge would otherwise keep retrying a delivery nobody can fix.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from ocore.core.errors import GitError, InvalidInput
from ocore.git.refs import branch_name_problem, is_null_sha
from ocore.git.types import parse_time
from ocore.git.webhook_events import (
    BranchDeleted,
    Ignored,
    PullRequestMerged,
    PushCommit,
    PushEvent,
    WebhookEvent,
)

# fullmatch: with match, "$" would pass a SHA with a trailing newline.
_FULL_SHA = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")
_HEADS = "refs/heads/"


def github_event(event: str, doc: dict[str, Any], delivery: str) -> WebhookEvent:
    if event == "push":
        return _push(doc, delivery, forced=doc.get("forced") is True)
    if event == "delete":
        if _str(doc, "ref_type") != "branch":
            return Ignored("a tag was deleted", delivery)
        return _deleted(_str(doc, "ref"), delivery)
    if event == "pull_request":
        pull = _dict(doc, "pull_request")
        if doc.get("action") != "closed" or pull.get("merged") is not True:
            return Ignored(f"pull request {_text(doc.get('action'))}, not merged", delivery)
        return _merged(
            _str(_dict(pull, "head"), "ref", "pull_request.head"),
            _str(_dict(pull, "base"), "ref", "pull_request.base"),
            pull.get("merge_commit_sha"),
            delivery,
        )
    return Ignored(f"GitHub event {event[:50]!r} is not handled", delivery)


def gitlab_event(event: str, doc: dict[str, Any], delivery: str) -> WebhookEvent:
    kind = doc.get("object_kind")
    if event == "Push Hook" or kind == "push":
        return _push(doc, delivery, forced=False)
    if event == "Merge Request Hook" or kind == "merge_request":
        attributes = _dict(doc, "object_attributes")
        if attributes.get("action") != "merge":
            return Ignored(f"merge request {_text(attributes.get('action'))}, not merged", delivery)
        return _merged(
            _str(attributes, "source_branch", "object_attributes"),
            _str(attributes, "target_branch", "object_attributes"),
            attributes.get("merge_commit_sha"),
            delivery,
        )
    return Ignored(f"GitLab event {event[:50]!r} is not handled", delivery)


def generic_event(doc: dict[str, Any], delivery: str) -> WebhookEvent:
    return _push(doc, delivery, forced=False)


def _push(doc: dict[str, Any], delivery: str, *, forced: bool) -> WebhookEvent:
    ref = _str(doc, "ref")
    before, after = _sha(doc, "before"), _sha(doc, "after")
    if not ref.startswith(_HEADS):
        return Ignored(f"push to {ref[:100]!r}, not to a branch", delivery)
    branch = ref.removeprefix(_HEADS)
    if is_null_sha(after) or doc.get("deleted") is True:
        return _deleted(branch, delivery)
    problem = branch_name_problem(branch)
    if problem:
        return Ignored(f"branch name not supported ({problem})", delivery)
    raw = doc.get("commits") or []
    if not isinstance(raw, list):
        raise InvalidInput("webhook payload: 'commits' must be a list")
    return PushEvent(
        branch=branch,
        before=None if is_null_sha(before) else before,
        after=after,
        commits=tuple(_commit(item, index) for index, item in enumerate(raw)),
        delivery_id=delivery,
        forced=forced,
    )


def _deleted(branch: str, delivery: str) -> WebhookEvent:
    problem = branch_name_problem(branch)
    if problem:
        return Ignored(f"branch name not supported ({problem})", delivery)
    return BranchDeleted(branch, delivery)


def _merged(source: str, target: str, sha: Any, delivery: str) -> WebhookEvent:
    for name in (source, target):
        problem = branch_name_problem(name)
        if problem:
            return Ignored(f"branch name not supported ({problem})", delivery)
    merge_sha = sha if isinstance(sha, str) and _FULL_SHA.fullmatch(sha) else None
    return PullRequestMerged(source, target, merge_sha, delivery)


def _commit(item: Any, index: int) -> PushCommit:
    where = f"commits[{index}]"
    if not isinstance(item, dict):
        raise InvalidInput(f"webhook payload: {where} must be an object")
    sha = _sha(item, "id", where)
    author = item.get("author")
    if not isinstance(author, dict):
        raise InvalidInput(f"webhook payload: {where}.author must be an object")
    email = author.get("email")
    message = item.get("message")
    if not isinstance(message, str):
        raise InvalidInput(f"webhook payload: {where}.message must be a string")
    return PushCommit(
        sha=sha,
        message=message.rstrip("\n"),
        author_name=_str(author, "name", f"{where}.author"),
        author_email=email if isinstance(email, str) else None,
        timestamp=_time(item.get("timestamp")),
    )


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_time(value, "timestamp")
    except GitError:
        # A commit's time is informative only; a sender's odd format must not drop the push.
        return None


def _sha(doc: dict[str, Any], key: str, where: str = "") -> str:
    value = _str(doc, key, where)
    if not _FULL_SHA.fullmatch(value):
        raise InvalidInput(f"webhook payload: {_path(where, key)} must be a full commit SHA")
    return value


def _str(doc: dict[str, Any], key: str, where: str = "") -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"webhook payload: {_path(where, key)} must be a non-empty string")
    return value


def _dict(doc: dict[str, Any], key: str) -> dict[str, Any]:
    value = doc.get(key)
    if not isinstance(value, dict):
        raise InvalidInput(f"webhook payload: {key} must be an object")
    return value


def _path(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _text(value: Any) -> str:
    return str(value)[:50] if value is not None else "without an action"
