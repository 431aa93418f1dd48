"""Hostile share labels, passwords and proxy paths, through the API and the public routes.

Labels are stored as sent or refused; passwords reach argon2 exactly as typed
(not even trimmed) and open exactly their link; a proxy path is either refused
before anything is sent to Odoo, or forwarded as a path that means what was
checked: never a dot segment, never the database manager, never an encoded way
around either (tests/shares/test_public_proxy.py has the table of known tricks).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from tests.conftest import Tenant
from tests.security.guard import Guard, h, trimmed
from tests.security.hostile import API, fragments
from tests.security.test_injection import CONTROL, PATH_SEGMENTS, meaning
from tests.shares.conftest import create_link, raw_request

# --- labels and passwords -------------------------------------------------------------------


@API
@given(label=h)
async def test_share_labels(guard: Guard, label: str) -> None:
    environment = guard.world.ids["environment"]
    response = await guard.send(
        "POST", f"/api/environments/{environment}/share", {"shareType": "token", "label": label}
    )
    if response.status_code >= 400:
        return
    links = await guard.get(f"/api/environments/{environment}/share")
    created = next(link for link in links["shareLinks"] if link["id"] == response.json()["id"])
    assert created["label"] == trimmed(label)


# argon2 is slow on purpose: a few examples.
@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
@given(password=h.filter(lambda p: len(p) >= 8))
@example(password="  $(touch pwned); `id` 'x\" \\ ")
async def test_share_passwords_open_exactly_their_link(guard: Guard, password: str) -> None:
    """Stored as given (not even trimmed), usable only through argon2 at the login."""
    environment = guard.world.ids["environment"]
    response = await guard.send(
        "POST",
        f"/api/environments/{environment}/share",
        {"shareType": "password", "password": password},
    )
    if response.status_code >= 400:
        assert "\x00" in password or len(password) > 256, response.text
        return
    share = httpx.URL(response.json()["url"]).path
    assert password not in response.text
    wrong = await guard.client.post(f"{share}/login", json={"password": password + "x"})
    assert wrong.status_code == 401
    assert password not in wrong.text
    right = await guard.client.post(f"{share}/login", json={"password": password})
    assert right.status_code == 303, right.text


async def test_share_login_with_text_that_is_not_unicode(guard: Guard) -> None:
    environment = guard.world.ids["environment"]
    created = await guard.send(
        "POST",
        f"/api/environments/{environment}/share",
        {"shareType": "password", "password": "correct horse"},
    )
    share = httpx.URL(created.json()["url"]).path
    # JSON's \ud800 escape decodes to a lone surrogate, which no encoder takes.
    for body in ('{"password": "\\ud800abcdefgh"}', "password=%ED%A0%80"):
        kind = "application/json" if body.startswith("{") else "application/x-www-form-urlencoded"
        response = await guard.client.post(
            f"{share}/login", content=body, headers={"content-type": kind}
        )
        assert response.status_code in (400, 401, 422), response.text
    refused = await guard.client.post(
        f"/api/environments/{environment}/share",
        content='{"shareType": "password", "password": "\\ud800abcdefgh"}',
        headers={**guard.world.headers, "content-type": "application/json"},
    )
    assert refused.status_code == 422, refused.text


# --- the proxy, end to end ------------------------------------------------------------------

raw_paths = st.one_of(
    st.lists(st.sampled_from(PATH_SEGMENTS), min_size=1, max_size=5).map("/".join),
    fragments,
).map(lambda rest: f"/api/s-proxy/{rest}".encode())


@pytest.fixture
async def shared(
    client: httpx.AsyncClient, tenant: Tenant, make_shared_env: Any, anonymous: Any
) -> tuple[Any, bytes]:
    """One environment behind a recording upstream, and a visitor's share cookie for it."""
    env = await make_shared_env()
    _, share = await create_link(client, tenant, env, shareType="token")
    browser = anonymous()
    assert (await browser.get(share)).status_code == 200
    return env, f"ocore_share={browser.cookies['ocore_share']}".encode()


@API
@given(raw=raw_paths)
@example(raw=b"/api/s-proxy/web/%64atabase/manager")
@example(raw=b"/api/s-proxy/web/x/%2e%2e/database/manager")
@example(raw=b"/api/s-proxy/%2F%2Fevil.example/x")
@example(raw=b"/api/s-proxy/shop/caf%C3%A9")
async def test_proxied_paths_mean_what_was_checked(
    app: Any, shared: tuple[Any, bytes], raw: bytes
) -> None:
    """A path reaches Odoo once, exactly as judged, or not at all; never a server error."""
    env, cookie = shared
    seen = len(env.upstream.seen)
    response = await raw_request(app, "GET", raw, [(b"cookie", cookie)])
    event(f"{response.status}")
    assert response.status < 500, (raw, response.status, response.body[:300])
    if response.status >= 400:
        assert len(env.upstream.seen) == seen, raw
        return
    assert len(env.upstream.seen) == seen + 1, raw
    received = env.upstream.last().path.split("?", 1)[0]
    segments = meaning(received)
    decoded = unquote(received)
    assert received.startswith("/")
    assert not received.startswith("//")
    assert "%" not in decoded
    assert "\\" not in decoded
    assert not CONTROL.search(decoded)
    assert all(s not in ("", ".", "..") for s in segments[:-1]), received
    assert segments[-1] not in (".", ".."), received
    assert segments[0] not in ("xmlrpc", "jsonrpc"), received
    assert segments[:2] != ["web", "database"], received
    # Odoo got the path that was asked for, not another one.
    asked = unquote(raw.decode()[len("/api/s-proxy") :].split("?", 1)[0]) or "/"
    assert decoded == asked, (raw, received)
