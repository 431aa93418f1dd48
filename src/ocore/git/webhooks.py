"""Webhook deliveries from GitHub, GitLab and plain git servers: authenticated, then normalized.

Every delivery goes through the same steps, in this order: size bound (before
anything else reads the body), authentication against the project's secret
(constant-time), JSON parsing, normalization into one of the event types
below. Deliveries carry an id (the forge's own, else a digest of the body)
so callers can drop a redelivery they already handled.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from importlib import resources
from typing import Any, Literal
from urllib.parse import parse_qs

from ocore.core.errors import InvalidInput, PayloadTooLarge, WebhookSignatureInvalid
from ocore.git._payloads import generic_event, github_event, gitlab_event
from ocore.git.webhook_events import (
    BranchDeleted,
    Ignored,
    PullRequestMerged,
    PushCommit,
    PushEvent,
    WebhookEvent,
)

__all__ = [
    "DEFAULT_MAX_PAYLOAD",
    "BranchDeleted",
    "Ignored",
    "PullRequestMerged",
    "PushCommit",
    "PushEvent",
    "WebhookEvent",
    "parse_generic_webhook",
    "parse_github_webhook",
    "parse_gitlab_webhook",
    "parse_webhook",
    "post_receive_hook",
    "sign_body",
]

WebhookSource = Literal["github", "gitlab", "generic"]
# GitHub caps deliveries at 25 MB but a push with that much data is no
# deployment trigger; the route should apply the same bound to the stream.
DEFAULT_MAX_PAYLOAD = 5 * 1024 * 1024
GENERIC_SIGNATURE_HEADER = "X-Ocore-Signature"
GENERIC_DELIVERY_HEADER = "X-Ocore-Delivery"
GENERIC_EVENT_HEADER = "X-Ocore-Event"
_DELIVERY_ID = re.compile(r"^[A-Za-z0-9._:@+=-]{1,200}$")


def sign_body(body: bytes, secret: str) -> str:
    """The ``sha256=<hex>`` signature GitHub and the generic hook send."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def parse_webhook(
    source: WebhookSource,
    headers: Mapping[str, str],
    body: bytes,
    secret: str,
    *,
    max_bytes: int = DEFAULT_MAX_PAYLOAD,
) -> WebhookEvent:
    parsers = {
        "github": parse_github_webhook,
        "gitlab": parse_gitlab_webhook,
        "generic": parse_generic_webhook,
    }
    if source not in parsers:
        raise InvalidInput(f"unknown webhook source {source!r}")
    return parsers[source](headers, body, secret, max_bytes=max_bytes)


def parse_github_webhook(
    headers: Mapping[str, str], body: bytes, secret: str, *, max_bytes: int = DEFAULT_MAX_PAYLOAD
) -> WebhookEvent:
    """``push``, ``delete`` and ``pull_request`` (closed and merged); the rest is ``Ignored``."""
    lower = _lowered(headers)
    _check_size(body, max_bytes)
    _check_hmac(body, secret, lower.get("x-hub-signature-256"), "X-Hub-Signature-256")
    delivery = _delivery_id(lower.get("x-github-delivery"), body)
    event = lower.get("x-github-event")
    if not event:
        raise InvalidInput("X-GitHub-Event header missing")
    document = _json(_form_payload(body) if _is_form(lower) else body)
    return github_event(event, document, delivery)


def parse_gitlab_webhook(
    headers: Mapping[str, str], body: bytes, secret: str, *, max_bytes: int = DEFAULT_MAX_PAYLOAD
) -> WebhookEvent:
    """``Push Hook`` (after = 0…0 deletes the branch) and ``Merge Request Hook`` merges."""
    lower = _lowered(headers)
    _check_size(body, max_bytes)
    _check_secret(secret)
    token = lower.get("x-gitlab-token")
    if token is None:
        raise WebhookSignatureInvalid("X-Gitlab-Token header missing")
    if not hmac.compare_digest(secret.encode(), token.encode("utf-8", "replace")):
        raise WebhookSignatureInvalid("X-Gitlab-Token does not match the webhook secret")
    # Idempotency-Key (GitLab 17.4+) stays the same across retries of one delivery.
    delivery = _delivery_id(lower.get("idempotency-key") or lower.get("x-gitlab-event-uuid"), body)
    event = lower.get("x-gitlab-event")
    if not event:
        raise InvalidInput("X-Gitlab-Event header missing")
    return gitlab_event(event, _json(body), delivery)


def parse_generic_webhook(
    headers: Mapping[str, str], body: bytes, secret: str, *, max_bytes: int = DEFAULT_MAX_PAYLOAD
) -> WebhookEvent:
    """What ``hooks/post-receive.sh`` sends: ``{ref, before, after, commits}``, HMAC-signed."""
    lower = _lowered(headers)
    _check_size(body, max_bytes)
    _check_hmac(body, secret, lower.get(GENERIC_SIGNATURE_HEADER.lower()), GENERIC_SIGNATURE_HEADER)
    delivery = _delivery_id(lower.get(GENERIC_DELIVERY_HEADER.lower()), body)
    event = lower.get(GENERIC_EVENT_HEADER.lower(), "push")
    if event != "push":
        return Ignored(f"event {event[:50]!r} is not handled", delivery)
    return generic_event(_json(body), delivery)


def post_receive_hook() -> str:
    """The post-receive hook script for plain git servers (see its header for setup)."""
    return resources.files("ocore.git").joinpath("hooks", "post-receive.sh").read_text()


def _lowered(headers: Mapping[str, str]) -> dict[str, str]:
    return {str(name).lower(): str(value) for name, value in headers.items()}


def _check_size(body: bytes, max_bytes: int) -> None:
    if len(body) > max_bytes:
        raise PayloadTooLarge(
            f"webhook payload of {len(body)} bytes exceeds the limit of {max_bytes} bytes"
        )


def _check_secret(secret: str) -> None:
    # An empty secret would let anyone sign; such a webhook accepts nothing.
    if not secret:
        raise WebhookSignatureInvalid("no webhook secret is configured; delivery refused")


def _check_hmac(body: bytes, secret: str, header: str | None, name: str) -> None:
    _check_secret(secret)
    if header is None:
        raise WebhookSignatureInvalid(f"{name} header missing")
    if not header.startswith("sha256="):
        raise WebhookSignatureInvalid(f"{name} must be 'sha256=<hex digest>'")
    expected = sign_body(body, secret).encode()
    if not hmac.compare_digest(expected, header.strip().encode("utf-8", "replace")):
        raise WebhookSignatureInvalid(f"{name} does not match the payload")


def _delivery_id(header: str | None, body: bytes) -> str:
    if header is None or not header.strip():
        # Without an id, a redelivery is recognized by its identical body.
        return "sha256:" + hashlib.sha256(body).hexdigest()
    value = header.strip()
    if not _DELIVERY_ID.match(value):
        raise InvalidInput("the delivery id header is not a plain identifier")
    return value


def _is_form(headers: Mapping[str, str]) -> bool:
    return headers.get("content-type", "").startswith("application/x-www-form-urlencoded")


def _form_payload(body: bytes) -> bytes:
    """GitHub's form content type: ``payload=<url-encoded JSON>``."""
    try:
        values = parse_qs(body.decode("ascii"), strict_parsing=True).get("payload")
    except (UnicodeDecodeError, ValueError):
        values = None
    if not values:
        raise InvalidInput("form-encoded webhook without a 'payload' field")
    return values[0].encode()


def _json(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise InvalidInput(f"webhook payload is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidInput("webhook payload must be a JSON object")
    return document
