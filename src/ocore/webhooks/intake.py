"""A delivery's way in: bounded body, the project it names, its signature, then its meaning.

Anyone can reach these routes, so nothing here tells a caller more than
"authenticated or not": an unknown project, a malformed project id, a missing
or wrong signature and a secret that cannot be decrypted all end in the same
401 problem document. The real reason is logged.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Mapping

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from ocore.core.crypto import SecretBox, random_token
from ocore.core.errors import BadRequest, PayloadTooLarge, WebhookSignatureInvalid
from ocore.git.webhooks import (
    DEFAULT_MAX_PAYLOAD,
    WebhookEvent,
    WebhookSource,
    parse_generic_webhook,
    parse_github_webhook,
    parse_gitlab_webhook,
)
from ocore.projects.models import Project

log = structlog.get_logger("ocore.webhooks")

# The same bound git/webhooks.py applies, enforced while the body is read.
# (The app's request middleware may bound bodies lower: OCORE_MAX_BODY_BYTES.)
MAX_PAYLOAD = DEFAULT_MAX_PAYLOAD
REFUSED = "The delivery could not be authenticated for this webhook URL."

_PARSERS: dict[WebhookSource, Callable[..., WebhookEvent]] = {
    "github": parse_github_webhook,
    "gitlab": parse_gitlab_webhook,
    "generic": parse_generic_webhook,
}


async def read_bounded(
    chunks: AsyncIterator[bytes], content_length: str | None, limit: int = MAX_PAYLOAD
) -> bytes:
    """The body, read until it ends or passes ``limit`` (then reading stops: 413)."""
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            raise BadRequest("Content-Length is not a number.") from None
        if declared > limit:
            raise PayloadTooLarge(
                f"Webhook payloads are limited to {limit} bytes; this one declares {declared}."
            )
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"Webhook payloads are limited to {limit} bytes.")
    return bytes(body)


async def authenticate(
    session: AsyncSession,
    box: SecretBox,
    source: WebhookSource,
    project_ref: str,
    headers: Mapping[str, str],
    body: bytes,
) -> tuple[Project, WebhookEvent]:
    """The project and the parsed event, or ``WebhookSignatureInvalid`` with one message."""
    project = await _find_project(session, project_ref)
    secret = _secret(box, project) if project is not None else None
    try:
        # Without a project (or its secret) the delivery is checked against a random
        # secret: it fails the same way, after the same work.
        event = _PARSERS[source](headers, body, secret or random_token(), max_bytes=MAX_PAYLOAD)
    except WebhookSignatureInvalid as exc:
        log.info(
            "webhook_refused",
            source=source,
            project=project_ref[:64],
            known_project=project is not None,
            reason=exc.detail,
        )
        raise WebhookSignatureInvalid(REFUSED) from None
    if project is None or secret is None:  # pragma: no cover - a random secret never verifies
        raise WebhookSignatureInvalid(REFUSED)
    return project, event


async def _find_project(session: AsyncSession, project_ref: str) -> Project | None:
    try:
        project_id = uuid.UUID(project_ref)
    except ValueError:
        return None
    # Not tenant-scoped on purpose: the caller has no organization; the project's
    # own secret is what admits the delivery, and it scopes everything after.
    return await session.get(Project, project_id)


def _secret(box: SecretBox, project: Project) -> str | None:
    try:
        return box.decrypt(project.webhook_secret_encrypted)
    except ValueError:
        log.error("webhook_secret_undecryptable", project_id=str(project.id))
        return None
