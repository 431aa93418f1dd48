"""The HTTP client for upstreams reached through a tunnel on 127.0.0.1."""

from __future__ import annotations

import httpx


def loopback_client(*, read_timeout: float, connect_timeout: float) -> httpx.AsyncClient:
    """A client for plain-http upstreams on a local tunnel port.

    ``verify=False`` because the upstream is never TLS: building an SSL context
    (and loading the CA bundle) per request cost ~20 ms of CPU. ``trust_env=False``
    so proxy variables of ocore's process cannot redirect it.
    """
    return httpx.AsyncClient(
        verify=False,  # noqa: S501 - plain http to 127.0.0.1 only
        trust_env=False,
        follow_redirects=False,
        timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
    )
