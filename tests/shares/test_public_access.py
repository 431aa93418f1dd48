"""Who gets through the public share paths: cookies, links' states, passwords and their limits.

Against the recording upstream of tests/shares/conftest.py, as test_public_proxy.py.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import func, select, update

from ocore.core.db import utcnow
from ocore.orgs.models import AuditEntry
from ocore.shares.models import ShareLink
from tests.conftest import Tenant
from tests.shares.conftest import (
    HTML,
    cookie_prefix,
    create_link,
    open_token_link,
)


async def test_without_a_valid_cookie_nothing_is_proxied(
    client, tenant: Tenant, make_shared_env, anonymous, settings
) -> None:
    env = await make_shared_env()
    browser = anonymous()
    await open_token_link(client, tenant, env, browser)
    seen_before = len(env.upstream.seen)
    stranger = anonymous()
    refused = await stranger.get("/api/s-proxy/app.js")
    assert refused.status_code == 404
    assert "text/html" in refused.headers["content-type"]
    real = browser.cookies["ocore_share"]
    version, link_hex, expires, signature = real.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    for forged in (
        f"{version}.{link_hex}.{expires}.{flipped}",
        f"{version}.{link_hex}.{int(expires) + 3600}.{signature}",
        f"{version}.{uuid.uuid4().hex}.{expires}.{signature}",
        f"v2.{link_hex}.{expires}.{signature}",
        "garbage",
        "v1." + "a" * 2000,
    ):
        response = await stranger.get(
            "/api/s-proxy/app.js", headers={"Cookie": f"ocore_share={forged}"}
        )
        assert response.status_code == 404, forged
        assert response.text == refused.text
    assert len(env.upstream.seen) == seen_before


async def test_a_cookie_reaches_only_its_own_links_environment(
    client, tenant: Tenant, make_shared_env, anonymous
) -> None:
    env_a = await make_shared_env("alpha")
    env_b = await make_shared_env("beta")
    browser = anonymous()
    link_a, _ = await open_token_link(client, tenant, env_a, browser)
    link_b, share_b = await create_link(client, tenant, env_b, shareType="token")
    await browser.get("/api/s-proxy/cookie")  # Odoo A's session cookie
    await browser.get("/api/s-proxy/echo?from=a")
    assert env_a.upstream.last().path == "/echo?from=a"
    assert env_b.upstream.seen == []

    # A's cookie with B's id: the MAC is bound to the link, so no.
    value = browser.cookies["ocore_share"].split(".")
    value[1] = uuid.UUID(link_b).hex
    stranger = anonymous()
    response = await stranger.get(
        "/api/s-proxy/echo", headers={"Cookie": f"ocore_share={'.'.join(value)}"}
    )
    assert response.status_code == 404
    assert env_b.upstream.seen == []

    # Opening B replaces the session; A's Odoo cookies never reach B's Odoo.
    assert (await browser.get(share_b)).status_code == 200
    await browser.get("/api/s-proxy/echo?from=b")
    seen = env_b.upstream.last()
    assert seen.path == "/echo?from=b"
    assert seen.header("Cookie") == []
    assert cookie_prefix(link_a) != cookie_prefix(link_b)

    # A password link is not opened by another link's cookie.
    _, share_p = await create_link(
        client, tenant, env_b, shareType="password", password="hunter22!"
    )
    count = len(env_b.upstream.seen)
    form = await browser.get(share_p)
    assert form.status_code == 200
    assert 'type="password"' in form.text
    assert len(env_b.upstream.seen) == count


async def test_unknown_expired_and_deactivated_links_look_the_same(
    client, tenant: Tenant, make_shared_env, anonymous, database
) -> None:
    env = await make_shared_env()
    browser = anonymous()
    expired_id, expired = await open_token_link(client, tenant, env, browser)
    assert (await browser.get("/api/s-proxy/echo")).status_code == 200
    async with database.sessionmaker() as session:
        await session.execute(
            update(ShareLink)
            .where(ShareLink.id == uuid.UUID(expired_id))
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )
        await session.commit()
    # The cookie stops at once (the database is asked on every request).
    gone = await browser.get("/api/s-proxy/echo")
    assert gone.status_code == 404

    deactivated_id, deactivated = await create_link(client, tenant, env)
    other = anonymous()
    assert (await other.get(deactivated)).status_code == 200
    assert (await other.get("/api/s-proxy/echo")).status_code == 200
    response = await client.delete(f"{env.share_path}/{deactivated_id}", headers=tenant.headers)
    assert response.status_code == 200
    assert (await other.get("/api/s-proxy/echo")).status_code == 404

    deleted_id, deleted = await create_link(client, tenant, env)
    third = anonymous()
    assert (await third.get(deleted)).status_code == 200
    await client.delete(f"{env.share_path}/{deleted_id}/permanent", headers=tenant.headers)
    assert (await third.get("/api/s-proxy/echo")).status_code == 404

    pages = []
    for path in (
        expired,
        deactivated,
        deleted,
        "/api/share/" + "A" * 43,
        "/api/share/x",
        "/api/share/" + "a" * 500,
        "/api/share/%3Cscript%3E",
    ):
        response = await anonymous().get(path)
        assert response.status_code == 404, path
        assert "set-cookie" not in response.headers
        pages.append(response.text)
    assert len(set(pages)) == 1
    assert gone.text == pages[0]


async def test_password_link_flow(
    client, tenant: Tenant, make_shared_env, anonymous, database
) -> None:
    env = await make_shared_env()
    link_id, share = await create_link(
        client, tenant, env, shareType="password", password="correct horse"
    )
    token = share.rsplit("/", 1)[1]
    browser = anonymous()
    form = await browser.get(share, headers=HTML)
    assert form.status_code == 200
    assert "<form" in form.text
    assert f'action="/api/share/{token}/login"' in form.text
    assert "script" not in form.text
    assert "default-src 'none'" in form.headers["content-security-policy"]
    assert form.headers["x-frame-options"] == "DENY"
    assert "set-cookie" not in form.headers
    assert env.upstream.seen == []

    wrong = await browser.post(
        f"{share}/login",
        data={"password": "wrong"},
        headers={**HTML, "Origin": "http://ocore.test"},
    )
    assert wrong.status_code == 401
    assert "Wrong password" in wrong.text
    assert "<form" in wrong.text
    assert "set-cookie" not in wrong.headers
    wrong_json = await browser.post(f"{share}/login", json={"password": "nope"})
    assert wrong_json.status_code == 401
    assert wrong_json.headers["content-type"] == "application/problem+json"
    assert "www-authenticate" not in wrong_json.headers
    assert (await browser.post(f"{share}/login", json={})).status_code == 422
    assert (await browser.post(f"{share}/login", json={"password": 5})).status_code == 422
    assert (await browser.get("/api/s-proxy/echo")).status_code == 404

    # The right password from another site's page: refused before it is checked.
    cross = await browser.post(
        f"{share}/login",
        data={"password": "correct horse"},
        headers={"Origin": "https://evil.example"},
    )
    assert cross.status_code == 403
    assert "set-cookie" not in cross.headers

    right = await browser.post(
        f"{share}/login",
        data={"password": "correct horse"},
        headers={**HTML, "Origin": "http://ocore.test"},
    )
    assert right.status_code == 303
    assert right.headers["location"] == share
    assert right.headers["set-cookie"].startswith("ocore_share=v1.")
    page = await browser.get(right.headers["location"])
    assert page.status_code == 200
    assert page.json() == {"path": "/"}
    assert (await browser.get("/api/s-proxy/echo")).status_code == 200

    # JSON login per the API contract works the same way.
    api = anonymous()
    response = await api.post(f"{share}/login", json={"password": "correct horse"})
    assert response.status_code == 303
    assert (await api.get("/api/s-proxy/echo")).status_code == 200

    async with database.sessionmaker() as session:
        link = await session.get(ShareLink, uuid.UUID(link_id))
        failures = await session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.target_id == link.id, AuditEntry.action == "share.login_failed")
        )
    assert link is not None
    assert link.use_count == 3  # two logins, one page view
    assert failures == 2

    # A token link has no password to check: login just leads to the share URL.
    _, token_share = await create_link(client, tenant, env)
    response = await anonymous().post(f"{token_share}/login", json={"password": "whatever"})
    assert response.status_code == 303
    assert response.headers["location"] == token_share


async def test_password_attempts_are_limited_per_link(
    client, tenant: Tenant, make_shared_env, anonymous
) -> None:
    env = await make_shared_env()
    _, share = await create_link(client, tenant, env, shareType="password", password="s3cret-pw")
    _, other = await create_link(client, tenant, env, shareType="password", password="s3cret-pw")
    attacker = anonymous()
    for _ in range(10):
        response = await attacker.post(f"{share}/login", json={"password": "guess"})
        assert response.status_code == 401
    limited = await attacker.post(f"{share}/login", json={"password": "s3cret-pw"})
    assert limited.status_code == 429
    assert limited.json()["code"] == "too_many_attempts"
    assert int(limited.headers["retry-after"]) == 900
    form = await attacker.post(f"{share}/login", data={"password": "s3cret-pw"}, headers=HTML)
    assert form.status_code == 429
    assert "<form" in form.text
    # Another link is not affected.
    assert (
        await anonymous().post(f"{other}/login", json={"password": "s3cret-pw"})
    ).status_code == 303
