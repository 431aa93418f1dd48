"""The share session cookie: proof that this browser opened one share link.

Value: ``v1.<link id hex>.<expiry unix seconds>.<HMAC-SHA256, base64url>``. The
MAC covers the link id, the expiry and the link's token hash, under a key
derived from the app's secret key. It is only half of the check: every request
also loads the link from the database (``access.link_for_cookie``), so a
deactivated, deleted or expired link stops working at once, whatever the
cookie says. Binding the token hash means a cookie cannot be moved to another
link even by someone who can read the database but not the secret key.

Flags: HttpOnly (page scripts never see it), SameSite=Lax (a cross-site POST
or fetch does not carry it, so another site cannot drive the shared Odoo
through a visitor's browser), Path=/api (both the share URL and the proxy
prefix need it), Secure when the request came over HTTPS. "Came over HTTPS"
is the request's scheme as the ASGI server reports it: ``ocore serve`` runs
uvicorn with ``proxy_headers``, which honours ``X-Forwarded-Proto`` only from
``--forwarded-allow-ips`` (default 127.0.0.1), so the trusted-proxy decision
lives there, not here. A ``public_url`` starting with https also forces Secure.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection

from ocore.core.crypto import constant_time_equals
from ocore.settings import Settings

COOKIE_NAME = "ocore_share"
COOKIE_PATH = "/api"
_VERSION = "v1"
_VALUE = re.compile(r"v1\.([0-9a-f]{32})\.([0-9]{1,12})\.([A-Za-z0-9_-]{43})")


@dataclass(frozen=True)
class CookieClaim:
    """What a well-formed cookie claims; trusted only after ``verify``."""

    link_id: uuid.UUID
    expires: int
    signature: str


def _key(secret_key: str) -> bytes:
    # A key of its own, so a share cookie MAC can never double as anything else.
    return hashlib.sha256(b"ocore-share-session\x00" + secret_key.encode()).digest()


def _mac(secret_key: str, link_id: uuid.UUID, expires: int, token_hash: str) -> str:
    message = f"{_VERSION}.{link_id.hex}.{expires}.{token_hash}".encode()
    digest = hmac.new(_key(secret_key), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def issue(secret_key: str, link_id: uuid.UUID, expires_at: datetime, token_hash: str) -> str:
    expires = int(expires_at.timestamp())
    return f"{_VERSION}.{link_id.hex}.{expires}.{_mac(secret_key, link_id, expires, token_hash)}"


def parse(value: str | None) -> CookieClaim | None:
    """The claim of a syntactically valid cookie; anything else is None (no exceptions)."""
    if not value or len(value) > 128:
        return None
    match = _VALUE.fullmatch(value)
    if match is None:
        return None
    return CookieClaim(uuid.UUID(hex=match[1]), int(match[2]), match[3])


def verify(
    secret_key: str, claim: CookieClaim, *, token_hash: str, expires_at: datetime, now: datetime
) -> bool:
    """True when the MAC matches the link as stored now and neither expiry has passed."""
    expected = _mac(secret_key, claim.link_id, claim.expires, token_hash)
    if not constant_time_equals(expected, claim.signature):
        return False
    current = now.timestamp()
    return current < claim.expires and now < expires_at


def is_secure(conn: HTTPConnection, settings: Settings) -> bool:
    return conn.url.scheme in ("https", "wss") or settings.public_url.startswith("https://")


def set_cookie_header(
    secret_key: str,
    link_id: uuid.UUID,
    expires_at: datetime,
    token_hash: str,
    *,
    now: datetime,
    secure: bool,
) -> str:
    """A ``Set-Cookie`` value for a session that ends when the link expires."""
    value = issue(secret_key, link_id, expires_at, token_hash)
    max_age = max(0, int((expires_at - now).total_seconds()))
    parts = [
        f"{COOKIE_NAME}={value}",
        f"Path={COOKIE_PATH}",
        f"Max-Age={max_age}",
        "HttpOnly",
        "SameSite=Lax",
    ]
    if secure:
        parts.append("Secure")
    return "; ".join(parts)


def same_origin(conn: HTTPConnection, settings: Settings) -> bool:
    """Whether a state-changing request may proceed (the CSRF check besides SameSite).

    Browsers send ``Origin`` on every cross-origin request and on same-origin
    POSTs; a request without it comes from a non-browser client, which holds
    no victim's cookie, so it passes. ``Origin: null`` (sandboxed frames,
    privacy redirects) does not.
    """
    origin = conn.headers.get("origin")
    if origin is None:
        return True
    parsed = urlsplit(origin)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        return False
    allowed = {conn.headers.get("host", "").lower(), urlsplit(settings.public_url).netloc.lower()}
    return parsed.netloc.lower() in allowed
