"""The HTTP client for upstreams reached on 127.0.0.1 (an instance's port or a tunnel)."""

from __future__ import annotations

from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx


def loopback_client() -> httpx.AsyncClient:
    """The app's one client for plain-http upstreams on a loopback port.

    It is shared so that connections to an instance on this machine are kept
    alive between proxied requests. A tunnel's local port is different: it
    dies with its tunnel and may next belong to a tunnel to another server,
    so requests through a tunnel send ``Connection: close`` (``closing_headers``)
    and their connection is never picked again. Timeouts are per request.

    ``verify=False`` because the upstream is never TLS: building an SSL context
    (and loading the CA bundle) per client cost ~20 ms of CPU. ``trust_env=False``
    so proxy variables of ocore's process cannot redirect it. Its cookie jar
    accepts nothing: the client serves every visitor of every link, and an
    Odoo session cookie remembered from one must never be sent for the next.
    """
    return httpx.AsyncClient(
        verify=False,  # noqa: S501 - plain http to 127.0.0.1 only
        trust_env=False,
        follow_redirects=False,
        cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
        limits=httpx.Limits(max_connections=None, keepalive_expiry=30),
    )


def closing_headers(direct: bool) -> list[tuple[str, str]]:
    """What a request adds so that its connection is only reused where that is safe."""
    return [] if direct else [("Connection", "close")]
