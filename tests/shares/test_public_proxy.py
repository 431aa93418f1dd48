"""The public share paths against a recording upstream: what reaches Odoo, what comes back.

The upstream is a real HTTP server (tests/shares/conftest.py) that an
instance's ports point at, so every header the proxy sends can be asserted
where it arrives.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import httpx

from ocore.app import create_app
from ocore.shares import proxy, rewrite
from ocore.shares.models import ShareLink
from tests.conftest import Tenant
from tests.shares.conftest import (
    HTML,
    anonymous_client,
    cookie_prefix,
    create_link,
    open_token_link,
    raw_request,
)


async def test_token_link_proxies_odoo_and_sets_the_cookie(
    client, tenant: Tenant, make_shared_env, anonymous, database
) -> None:
    env = await make_shared_env()
    link_id, share = await create_link(client, tenant, env, shareType="token", expiresIn="24h")
    browser = anonymous()
    response = await browser.get(share + "?debug=1", headers=HTML)
    assert response.status_code == 200
    assert response.json() == {"path": "/?debug=1"}
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "same-origin"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("ocore_share=v1.")
    attributes = [a.strip() for a in cookie.split(";")]
    assert {"Path=/api", "HttpOnly", "SameSite=Lax"} <= set(attributes)
    assert "Secure" not in attributes  # plain http here; https requests get Secure
    max_age = int(next(a for a in attributes if a.startswith("Max-Age="))[8:])
    assert timedelta(hours=23) < timedelta(seconds=max_age) <= timedelta(hours=24)

    seen = env.upstream.last()
    assert seen.header("Host") == [env.domain]
    assert seen.header("X-Forwarded-Host") == [env.domain]
    assert seen.header("X-Forwarded-Proto") == ["http"]
    assert seen.header("X-Forwarded-For") == ["127.0.0.1"]
    assert seen.header("Cookie") == []

    async with database.sessionmaker() as session:
        link = await session.get(ShareLink, uuid.UUID(link_id))
    assert link is not None
    assert link.use_count == 1
    assert link.last_used_at is not None

    # The cookie now opens the proxy prefix, for every method Odoo pages use.
    asset = await browser.get("/api/s-proxy/web/assets/app.js")
    assert asset.status_code == 200
    assert env.upstream.last().path == "/web/assets/app.js"
    posted = await browser.post(
        "/api/s-proxy/web/dataset/call_kw?x=1",
        json={"jsonrpc": "2.0", "params": {}},
        headers={"Origin": "http://ocore.test"},
    )
    assert posted.status_code == 200
    seen = env.upstream.last()
    assert (seen.method, seen.path) == ("POST", "/web/dataset/call_kw?x=1")
    assert seen.body == b'{"jsonrpc":"2.0","params":{}}'
    assert seen.header("Origin") == [f"http://{env.domain}"]
    head = await browser.head("/api/s-proxy/app.js")
    assert head.status_code == 200
    assert env.upstream.last().method == "HEAD"


async def test_https_requests_get_a_secure_cookie(
    client, tenant: Tenant, make_shared_env, app
) -> None:
    env = await make_shared_env()
    _, share = await create_link(client, tenant, env)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="https://ocore.test") as browser:
        response = await browser.get(share)
    assert response.status_code == 200
    assert "Secure" in [a.strip() for a in response.headers["set-cookie"].split(";")]
    assert env.upstream.last().header("X-Forwarded-Proto") == ["https"]


async def test_client_headers_that_must_not_reach_odoo(
    client, tenant: Tenant, make_shared_env, anonymous
) -> None:
    env = await make_shared_env()
    browser = anonymous()
    _, share = await open_token_link(client, tenant, env, browser)
    response = await browser.get(
        "/api/s-proxy/echo",
        headers={
            "Authorization": "Bearer stolen-jwt",
            "Connection": "keep-alive, X-Custom-Hop",
            "X-Custom-Hop": "secret",
            "Keep-Alive": "timeout=300",
            "TE": "trailers",
            "Trailer": "X-Checksum",
            "Upgrade": "h2c",
            "Proxy-Authorization": "Basic eDp5",
            "Proxy-Connection": "keep-alive",
            "X-Forwarded-For": "6.6.6.6",
            "X-Forwarded-Host": "evil.example",
            "X-Forwarded-Proto": "https",
            "Forwarded": "for=6.6.6.6;host=evil.example",
            "X-Real-IP": "6.6.6.6",
            # httpx drops its jar when a Cookie header is given: add ours back.
            "Cookie": f"unrelated=1; ocore_share={browser.cookies['ocore_share']}",
            "Referer": f"http://ocore.test{share}",
            "Accept-Encoding": "br, zstd",
            "X-Odoo-Ok": "yes",
        },
    )
    assert response.status_code == 200
    seen = env.upstream.last()
    names = {k.lower() for k, _ in seen.headers}
    for header in (
        "authorization",
        "x-custom-hop",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
        "proxy-connection",
        "forwarded",
        "x-real-ip",
        "cookie",
        "referer",
    ):
        assert header not in names, header
    # httpx's own keep-alive, not the client's list of hop-by-hop names.
    assert seen.header("Connection") in ([], ["keep-alive"])
    assert seen.header("Host") == [env.domain]
    assert seen.header("X-Forwarded-For") == ["127.0.0.1"]
    assert seen.header("X-Forwarded-Host") == [env.domain]
    assert seen.header("X-Forwarded-Proto") == ["http"]
    assert seen.header("Accept-Encoding") == ["identity"]
    assert seen.header("X-Odoo-Ok") == ["yes"]

    # A Referer inside the proxy maps to Odoo's own URL; the share URL never travels.
    await browser.get(
        "/api/s-proxy/echo", headers={"Referer": "http://ocore.test/api/s-proxy/web?a=1"}
    )
    assert env.upstream.last().header("Referer") == [f"http://{env.domain}/web"]


async def test_odoo_cookies_and_headers_are_rewritten(
    client, tenant: Tenant, make_shared_env, anonymous
) -> None:
    env = await make_shared_env()
    browser = anonymous()
    link_id, _ = await open_token_link(client, tenant, env, browser)
    prefix = cookie_prefix(link_id)
    response = await browser.get("/api/s-proxy/cookie")
    assert response.status_code == 200
    cookies = response.headers.get_list("set-cookie")
    assert cookies == [
        f"{prefix}session_id=abc123; Path=/api/s-proxy/; HttpOnly",
        f"{prefix}frontend_lang=en_US; Path=/api/s-proxy/web; SameSite=Lax",
    ]
    for dropped in (
        "x-hop-secret",
        "keep-alive",
        "proxy-authenticate",
        "strict-transport-security",
        "clear-site-data",
        "access-control-allow-origin",
        "x-accel-redirect",
        "x-sendfile",
    ):
        assert dropped not in response.headers, dropped
    assert response.headers["x-odoo-header"] == "kept"

    # Back to Odoo: only this link's cookies, under Odoo's names; never ocore's.
    jar = "; ".join(f"{c.name}={c.value}" for c in browser.cookies.jar)
    await browser.get("/api/s-proxy/web/action", headers={"Cookie": f"other=1; {jar}"})
    assert env.upstream.last().header("Cookie") == ["session_id=abc123; frontend_lang=en_US"]
    await browser.get("/api/s-proxy/echo")
    assert env.upstream.last().header("Cookie") == ["session_id=abc123"]


async def test_redirects_stay_inside_the_share(
    client, tenant: Tenant, make_shared_env, anonymous
) -> None:
    env = await make_shared_env()
    browser = anonymous()
    await open_token_link(client, tenant, env, browser)
    response = await browser.get("/api/s-proxy/redirect-relative")
    assert response.status_code == 303
    assert response.headers["location"] == "/api/s-proxy/web/login?redirect=%2Fweb"
    response = await browser.get("/api/s-proxy/redirect-own")
    assert response.status_code == 302
    assert response.headers["location"] == "/api/s-proxy/odoo/x?y=1#z"
    for path in ("/redirect-other", "/redirect-schemeless", "/redirect-backslash"):
        response = await browser.get("/api/s-proxy" + path)
        assert response.status_code == 502, path
        assert "location" not in response.headers
        assert response.json()["code"] == "share_upstream_refused"
        assert "evil" not in response.text


async def test_html_and_css_are_rewritten_under_the_prefix(
    client, tenant: Tenant, make_shared_env, anonymous
) -> None:
    env = await make_shared_env()
    browser = anonymous()
    await open_token_link(client, tenant, env, browser)
    for path in ("/api/s-proxy/page", "/api/s-proxy/gzip-page"):
        response = await browser.get(path, headers={"Accept-Encoding": "gzip"})
        assert response.status_code == 200
        assert "content-encoding" not in response.headers
        body = response.text
        assert int(response.headers["content-length"]) == len(response.content)
        assert 'href="/api/s-proxy/web/assets/x.css"' in body
        assert "href='/api/s-proxy/web/login?x=1'" in body
        assert "src=/api/s-proxy/web/image.png" in body
        assert 'action="/api/s-proxy/web/login"' in body
        assert "url(/api/s-proxy/web/bg.png)" in body
        assert 'href="//cdn.example/x"' in body
        assert 'href="https://odoo.com/"' in body
        assert body.index("<head>") < body.index("data-ocore-share") < body.index("<title>")
    css = await browser.get("/api/s-proxy/style.css")
    assert css.text == "a{background:url('/api/s-proxy/web/i.png')}"
    js = await browser.get("/api/s-proxy/app.js")
    assert js.text == "fetch('/web/x')"  # scripts pass untouched
    assert js.headers["cache-control"] == "private, max-age=60"


HOSTILE_PATHS = [
    (b"/api/s-proxy/web/database/manager", 404),
    (b"/api/s-proxy/web/database/selector", 404),
    (b"/api/s-proxy/web/database/backup", 404),
    (b"/api/s-proxy/web/%64atabase/manager", 404),
    (b"/api/s-proxy/%77eb/database/manager", 404),
    (b"/api/s-proxy/WEB/DATABASE/manager", 404),
    (b"/api/s-proxy/Web/Database/Manager", 404),
    (b"/api/s-proxy/web/database", 404),
    (b"/api/s-proxy/web/database/", 404),
    (b"/api/s-proxy/xmlrpc/2/db", 404),
    (b"/api/s-proxy/xmlrpc/db", 404),
    (b"/api/s-proxy/jsonrpc", 404),
    (b"/api/s-proxy/web//database/manager", 400),
    (b"/api/s-proxy//web/database/manager", 400),
    (b"/api/s-proxy/web/./database/manager", 400),
    (b"/api/s-proxy/web/x/../database/manager", 400),
    (b"/api/s-proxy/web/%2e%2e/%2e%2e/etc/passwd", 400),
    (b"/api/s-proxy/web/%2E%2E/x", 400),
    (b"/api/s-proxy/web/..", 400),
    (b"/api/s-proxy/web%2fdatabase%2fmanager", 400),
    (b"/api/s-proxy/web%2Fdatabase/manager", 400),
    (b"/api/s-proxy/web%5cdatabase%5cmanager", 400),
    (b"/api/s-proxy/web\\database\\manager", 400),
    (b"/api/s-proxy/web/%2564atabase/manager", 400),
    (b"/api/s-proxy/web/%00", 400),
    # The router's path pattern does not even match a newline.
    (b"/api/s-proxy/web/%0d%0aX-Injected:%201", 404),
    (b"/api/s-proxy/web/%zz", 400),
    (b"/api/s-proxy//evil.example/x", 400),
    (b"/api/s-proxy/%2f%2fevil.example", 400),
    (b"/api/s-proxy/web/\xc3\xa9", 400),
    (b"/api/s%2dproxy/web/login", 400),
]


async def test_hostile_paths_are_refused(
    client, tenant: Tenant, make_shared_env, anonymous, app
) -> None:
    env = await make_shared_env()
    browser = anonymous()
    await open_token_link(client, tenant, env, browser)
    cookie = f"ocore_share={browser.cookies['ocore_share']}".encode()
    seen = len(env.upstream.seen)
    # One environment for all cases (each would cost a project and an instance).
    for raw_path, status in HOSTILE_PATHS:
        for method in ("GET", "POST"):
            response = await raw_request(
                app, method, raw_path, [(b"cookie", cookie), (b"origin", b"http://ocore.test")]
            )
            assert response.status == status, (method, raw_path, response.body)
    assert len(env.upstream.seen) == seen
    # Unicode is fine when it is encoded.
    ok = await raw_request(app, "GET", b"/api/s-proxy/shop/caf%C3%A9", [(b"cookie", cookie)])
    assert ok.status == 200
    assert env.upstream.last().path == "/shop/caf%C3%A9"


async def test_cross_site_writes_are_refused(
    client, tenant: Tenant, make_shared_env, anonymous
) -> None:
    env = await make_shared_env()
    browser = anonymous()
    await open_token_link(client, tenant, env, browser)
    seen = len(env.upstream.seen)
    for origin in ("https://evil.example", "null"):
        response = await browser.post(
            "/api/s-proxy/web/dataset/call_kw", json={}, headers={"Origin": origin}
        )
        assert response.status_code == 403, origin
    assert len(env.upstream.seen) == seen


async def test_request_bodies_are_bounded(
    client, tenant: Tenant, make_shared_env, anonymous, settings, database
) -> None:
    env = await make_shared_env()
    browser = anonymous()
    await open_token_link(client, tenant, env, browser)
    seen = len(env.upstream.seen)
    # The app's own bound (OCORE_MAX_BODY_BYTES, 16 MiB by default) comes first...
    response = await browser.post(
        "/api/s-proxy/web/binary/upload", content=b"x" * (settings.max_body_bytes + 1)
    )
    assert response.status_code == 413
    # ...and with a larger one, the proxy's ceiling still holds.
    roomy = create_app(settings.model_copy(update={"max_body_bytes": 64 * 1024**2}))
    roomy.state.database = database
    async with roomy.router.lifespan_context(roomy):
        other = anonymous_client(roomy)
        other.cookies.set("ocore_share", browser.cookies["ocore_share"], domain="ocore.test")
        async with other:
            response = await other.post(
                "/api/s-proxy/web/binary/upload", content=b"x" * (proxy.MAX_REQUEST_BYTES + 1)
            )
            assert response.status_code == 413
            assert response.json()["code"] == "payload_too_large"
            assert len(env.upstream.seen) == seen
            fine = await other.post("/api/s-proxy/web/binary/upload", content=b"y" * 3 * 1024**2)
            assert fine.status_code == 200
            assert env.upstream.last().body == b"y" * 3 * 1024**2


async def test_upstream_failures_become_problem_pages(
    client, tenant: Tenant, make_shared_env, anonymous, monkeypatch
) -> None:
    env = await make_shared_env()
    browser = anonymous()
    await open_token_link(client, tenant, env, browser)

    monkeypatch.setattr(proxy, "MAX_RESPONSE_BYTES", 1000)
    response = await browser.get("/api/s-proxy/big")
    assert response.status_code == 502
    assert response.json()["code"] == "share_response_too_large"
    streamed = await browser.get("/api/s-proxy/big-stream")
    assert len(streamed.content) <= 1000  # cut off mid-stream, never the whole body
    monkeypatch.undo()

    monkeypatch.setattr(proxy, "READ_TIMEOUT", 0.3)
    env.upstream.delay = 1.5
    response = await browser.get("/api/s-proxy/slow", headers=HTML)
    assert response.status_code == 504
    assert "text/html" in response.headers["content-type"]
    env.upstream.delay = 0

    env.upstream.server.shutdown()
    env.upstream.server.server_close()
    response = await browser.get("/api/s-proxy/web/login")
    assert response.status_code == 502
    assert response.json()["code"] == "share_upstream_unreachable"
    page = await browser.get("/api/s-proxy/web/login", headers=HTML)
    assert page.status_code == 502
    assert re.search(r"<h1>Shared environment unreachable</h1>", page.text)


def test_rewrite_never_prefixes_twice() -> None:
    once = rewrite.html(b'<head><a href="/web">x</a></head>')
    assert once.count(b"/api/s-proxy/web") == 1
    assert rewrite.location("/web", domains=frozenset(), current_path="/") == "/api/s-proxy/web"
    assert (
        rewrite.location("login?x=1", domains=frozenset(), current_path="/web/session")
        == "/api/s-proxy/web/login?x=1"
    )
