"""Webhook authentication and normalization for GitHub, GitLab and plain git servers."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest

from ocore.core.errors import InvalidInput, PayloadTooLarge, Unauthorized, WebhookSignatureInvalid
from ocore.git.webhooks import (
    BranchDeleted,
    Ignored,
    PullRequestMerged,
    PushCommit,
    PushEvent,
    parse_generic_webhook,
    parse_github_webhook,
    parse_gitlab_webhook,
    parse_webhook,
    sign_body,
)
from tests.fixtures import webhook_payloads as p

SECRET = "It's a Secret to Everybody"


def body_of(document: Any) -> bytes:
    return json.dumps(document).encode()


def github_headers(
    body: bytes, event: str = "push", delivery: str = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
) -> dict[str, str]:
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": sign_body(body, SECRET),
        "Content-Type": "application/json",
    }


def gitlab_headers(event: str = "Push Hook", token: str = SECRET, **extra: str) -> dict[str, str]:
    return {
        "X-Gitlab-Event": event,
        "X-Gitlab-Token": token,
        "X-Gitlab-Event-UUID": "13792a34-cac6-4fda-95a8-c58e00a3954e",
        **extra,
    }


def generic_headers(
    body: bytes, delivery: str = "d3b6c9b2-0d5c-4f7e-9d3c-000000000001"
) -> dict[str, str]:
    return {
        "X-Ocore-Event": "push",
        "X-Ocore-Delivery": delivery,
        "X-Ocore-Signature": sign_body(body, SECRET),
    }


def test_known_github_signature() -> None:
    """The example from GitHub's documentation on validating deliveries."""
    assert sign_body(b"Hello, World!", SECRET) == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )


# --- GitHub ---------------------------------------------------------------------


def test_github_push() -> None:
    body = body_of(p.github_push())
    event = parse_github_webhook(github_headers(body), body, SECRET)
    assert event == PushEvent(
        branch="main",
        before=p.BEFORE,
        after=p.AFTER,
        commits=(
            PushCommit(
                sha=p.AFTER,
                message="Fix the invoice report\n\nIt summed taxes twice.",
                author_name="Ada Lovelace",
                author_email="ada@example.com",
                timestamp=datetime(2024, 5, 2, 12, 3, 51, tzinfo=UTC),
            ),
        ),
        delivery_id="72d3162e-cc78-11e3-81ab-4c9367dc0958",
    )


def test_github_branch_created_deleted_and_tag() -> None:
    body = body_of(p.github_push("refs/heads/feature/x", before=p.NULL))
    created = parse_github_webhook(github_headers(body), body, SECRET)
    assert isinstance(created, PushEvent)
    assert created.before is None
    assert created.branch == "feature/x"

    body = body_of(p.github_push("refs/heads/feature/x", after=p.NULL))
    assert parse_github_webhook(github_headers(body), body, SECRET) == BranchDeleted(
        "feature/x", "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    )
    body = body_of(p.github_delete("feature/x"))
    assert isinstance(
        parse_github_webhook(github_headers(body, "delete"), body, SECRET), BranchDeleted
    )
    body = body_of(p.github_delete("v1.0", "tag"))
    assert isinstance(parse_github_webhook(github_headers(body, "delete"), body, SECRET), Ignored)
    body = body_of(p.github_push("refs/tags/v1.0"))
    assert isinstance(parse_github_webhook(github_headers(body), body, SECRET), Ignored)


def test_github_pull_requests() -> None:
    body = body_of(p.github_pull_request())
    assert parse_github_webhook(
        github_headers(body, "pull_request"), body, SECRET
    ) == PullRequestMerged("feature/x", "main", p.AFTER, "72d3162e-cc78-11e3-81ab-4c9367dc0958")
    for document in (
        p.github_pull_request(merged=False),
        p.github_pull_request("opened", merged=False),
    ):
        body = body_of(document)
        assert isinstance(
            parse_github_webhook(github_headers(body, "pull_request"), body, SECRET), Ignored
        )
    body = b'{"zen": "Keep it logically awesome.", "hook_id": 1}'
    assert isinstance(parse_github_webhook(github_headers(body, "ping"), body, SECRET), Ignored)


def test_github_form_encoded_delivery() -> None:
    body = urlencode({"payload": json.dumps(p.github_push())}).encode()
    headers = github_headers(body) | {"Content-Type": "application/x-www-form-urlencoded"}
    assert isinstance(parse_github_webhook(headers, body, SECRET), PushEvent)


# --- GitLab ---------------------------------------------------------------------


def test_gitlab_push_delete_and_merge() -> None:
    event = parse_gitlab_webhook(gitlab_headers(), body_of(p.gitlab_push()), SECRET)
    assert isinstance(event, PushEvent)
    assert (event.branch, event.after, event.delivery_id) == (
        "main",
        p.AFTER,
        "13792a34-cac6-4fda-95a8-c58e00a3954e",
    )
    assert event.commits[0].message == "Update Catalan translation to e38cb41."
    assert event.commits[0].author_name == "Jordi Mallach"

    deleted = parse_gitlab_webhook(
        gitlab_headers(), body_of(p.gitlab_push("refs/heads/feature/x", after=p.NULL)), SECRET
    )
    assert deleted == BranchDeleted("feature/x", "13792a34-cac6-4fda-95a8-c58e00a3954e")

    tag = parse_gitlab_webhook(
        gitlab_headers("Tag Push Hook"), body_of(p.gitlab_push("refs/tags/v1")), SECRET
    )
    assert isinstance(tag, Ignored)

    merged = parse_gitlab_webhook(
        gitlab_headers("Merge Request Hook"), body_of(p.gitlab_merge_request()), SECRET
    )
    assert merged == PullRequestMerged(
        "feature/x", "main", p.AFTER, "13792a34-cac6-4fda-95a8-c58e00a3954e"
    )
    opened = parse_gitlab_webhook(
        gitlab_headers("Merge Request Hook"), body_of(p.gitlab_merge_request("open")), SECRET
    )
    assert isinstance(opened, Ignored)


def test_gitlab_prefers_idempotency_key() -> None:
    headers = gitlab_headers(**{"Idempotency-Key": "908a6d9e-45fd-46c8-97e6-c4f350f219dd"})
    event = parse_gitlab_webhook(headers, body_of(p.gitlab_push()), SECRET)
    assert event.delivery_id == "908a6d9e-45fd-46c8-97e6-c4f350f219dd"


# --- generic --------------------------------------------------------------------


def test_generic_push_and_delete() -> None:
    body = body_of(p.generic_push())
    event = parse_generic_webhook(generic_headers(body), body, SECRET)
    assert isinstance(event, PushEvent)
    assert event.commits == (PushCommit(p.AFTER, "Plain git push", "Grace Hopper"),)
    body = body_of(p.generic_push(after=p.NULL))
    assert isinstance(parse_generic_webhook(generic_headers(body), body, SECRET), BranchDeleted)


# --- authentication, for all three ------------------------------------------------

Case = tuple[Callable[..., Any], Callable[[bytes], dict[str, str]], str | None]
CASES: dict[str, Case] = {
    "github": (parse_github_webhook, github_headers, "X-Hub-Signature-256"),
    "gitlab": (parse_gitlab_webhook, lambda body: gitlab_headers(), "X-Gitlab-Token"),
    "generic": (parse_generic_webhook, generic_headers, "X-Ocore-Signature"),
}
BODIES = {"github": p.github_push(), "gitlab": p.gitlab_push(), "generic": p.generic_push()}


@pytest.mark.parametrize("source", CASES)
def test_valid_signature_accepted_via_dispatch(source: str) -> None:
    _, headers, _ = CASES[source]
    body = body_of(BODIES[source])
    lowered = {k.lower(): v for k, v in headers(body).items()}  # header case does not matter
    assert isinstance(parse_webhook(source, lowered, body, SECRET), PushEvent)  # type: ignore[arg-type]


@pytest.mark.parametrize("source", CASES)
def test_invalid_missing_and_unconfigured_secrets(source: str) -> None:
    parse, headers, name = CASES[source]
    body = body_of(BODIES[source])
    good = headers(body)
    with pytest.raises(WebhookSignatureInvalid):
        parse(good, body, "another secret")
    if source != "gitlab":  # HMAC covers the body; GitLab's token does not
        with pytest.raises(WebhookSignatureInvalid, match="does not match"):
            parse(good, body.replace(b"main", b"prod"), SECRET)
    missing = {k: v for k, v in good.items() if k != name}
    with pytest.raises(WebhookSignatureInvalid, match="missing"):
        parse(missing, body, SECRET)
    with pytest.raises(WebhookSignatureInvalid, match="no webhook secret"):
        parse(good, body, "")
    with pytest.raises(Unauthorized):  # the family the app turns into 401
        parse(good | {name: "sha256=" + "0" * 64}, body, SECRET)
    with pytest.raises(WebhookSignatureInvalid):
        parse(good | {name: "sha256=ünïcödé"}, body, SECRET)


def without_delivery(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if not k.lower().endswith(("delivery", "uuid"))}


@pytest.mark.parametrize("source", CASES)
def test_redelivery_keeps_its_id(source: str) -> None:
    parse, headers, _ = CASES[source]
    body = body_of(BODIES[source])
    first, again = parse(headers(body), body, SECRET), parse(headers(body), body, SECRET)
    assert first.delivery_id == again.delivery_id
    # Without a delivery header, the id is the body's digest: stable across replays...
    one = parse(without_delivery(headers(body)), body, SECRET)
    two = parse(without_delivery(headers(body)), body, SECRET)
    assert one.delivery_id == two.delivery_id
    assert one.delivery_id.startswith("sha256:")
    # ...and different for a different delivery.
    other_body = body_of(BODIES[source] | {"before": p.AFTER})
    other = parse(without_delivery(headers(other_body)), other_body, SECRET)
    assert other.delivery_id != one.delivery_id


@pytest.mark.parametrize("source", CASES)
def test_oversize_payload_refused_before_anything_else(source: str) -> None:
    parse, headers, _ = CASES[source]
    body = body_of(BODIES[source] | {"padding": "x" * 2048})
    with pytest.raises(PayloadTooLarge) as caught:
        parse(headers(body), body, "wrong secret", max_bytes=1024)
    assert caught.value.status == 413
    assert isinstance(parse(headers(body), body, SECRET, max_bytes=4096), PushEvent)


@pytest.mark.parametrize("source", CASES)
@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: b"{not json", "not valid JSON"),
        (lambda d: b"[1, 2]", "must be a JSON object"),
        (lambda d: body_of({k: v for k, v in d.items() if k != "ref"}), "ref must be"),
        (lambda d: body_of(d | {"after": "not-a-sha"}), "after must be a full commit SHA"),
        (
            lambda d: body_of(
                d | {"commits": [{"id": p.AFTER, "message": 3, "author": {"name": "x"}}]}
            ),
            r"commits\[0\].message",
        ),
        (lambda d: body_of(d | {"commits": "many"}), "'commits' must be a list"),
    ],
)
def test_malformed_payloads(
    source: str, mutate: Callable[[dict[str, Any]], bytes], message: str
) -> None:
    parse, headers, _ = CASES[source]
    body = mutate(BODIES[source])
    with pytest.raises(InvalidInput, match=message):
        parse(headers(body), body, SECRET)


def test_unsupported_branch_names_are_ignored_not_errors() -> None:
    body = body_of(p.github_push("refs/heads/feature/$(id)"))
    event = parse_github_webhook(github_headers(body), body, SECRET)
    assert isinstance(event, Ignored)
    assert "not supported" in event.reason


def test_other_header_problems() -> None:
    body = body_of(p.github_push())
    with pytest.raises(InvalidInput, match="X-GitHub-Event"):
        parse_github_webhook(
            {k: v for k, v in github_headers(body).items() if k != "X-GitHub-Event"}, body, SECRET
        )
    with pytest.raises(InvalidInput, match="delivery id"):
        parse_github_webhook(github_headers(body, delivery="bad id\nwith newline"), body, SECRET)
    with pytest.raises(InvalidInput, match="unknown webhook source"):
        parse_webhook("bitbucket", {}, body, SECRET)  # type: ignore[arg-type]
