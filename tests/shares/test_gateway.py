"""The share gateway: a real nginx with the generated config in front of a live ocore.

nginx serves a share's static files itself after asking ocore (cached per
cookie); everything else, and everything unusual, must still get ocore's own
answer. Which of the two answered is read off ocore's request counter.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import update

from ocore.app import create_app
from ocore.core.db import Database
from ocore.core.metrics import REGISTRY
from ocore.servers.models import Server
from ocore.settings import Settings
from ocore.shares import gateway
from ocore.shares.gateway_nginx import GatewayConfig, render
from ocore.shares.models import ShareLink
from tests.conftest import Tenant
from tests.fixtures.http_server import serving
from tests.fixtures.nginx import Nginx, running_nginx
from tests.fixtures.sshd import free_port
from tests.shares.conftest import Seen, SharedEnv, create_link

TOKEN = "gateway-token-" + "x" * 32
CACHE_SECONDS = 1
STATIC = "/api/s-proxy/web/static/lib/app.js"


def served_by_ocore(route: str = "/api/s-proxy/{path}") -> float:
    """How many requests of ``route`` ocore has answered (any method and status)."""
    total = 0.0
    for metric in REGISTRY.collect():
        if metric.name != "ocore_http_requests":
            continue
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels["route"] == route:
                total += sample.value
    return total


@pytest.fixture
async def ocore_url(settings: Settings, database: Database) -> AsyncIterator[str]:
    """ocore over real HTTP, knowing the gateway's token."""
    app = create_app(
        settings.model_copy(
            update={
                "redis_url": None,
                "share_gateway_token": SecretStr(TOKEN),
                "share_gateway_cache_seconds": CACHE_SECONDS,
            }
        )
    )
    app.state.database = database
    async with serving(app) as port:
        yield f"127.0.0.1:{port}"


@dataclass
class Gateway:
    nginx: Nginx
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def static_cache_seconds() -> int:
    """The gateway's own default; a test parametrizes it to see nginx without its cache."""
    return 60


@pytest.fixture
def gateway_nginx(ocore_url: str, static_cache_seconds: int) -> Iterator[Gateway]:
    with running_nginx(lua=True) as nginx:
        port = free_port()
        config = GatewayConfig(
            listen=f"127.0.0.1:{port}",
            server_name="_",
            api=ocore_url,
            token=TOKEN,
            max_body_bytes=16 * 1024 * 1024,
            static_cache_seconds=static_cache_seconds,
            cache_dir=str(nginx.prefix / "share-cache"),
        )
        (nginx.sites / "ocore.conf").write_text(render(config))
        nginx.check_config()
        nginx.reload()
        # A reload answers before the new workers listen.
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the gateway did not listen:\n{nginx.error_log}") from None
                time.sleep(0.05)
        yield Gateway(nginx, port)


@dataclass
class Visitor:
    """A browser that opened a token link through the gateway."""

    http: httpx.AsyncClient
    env: SharedEnv
    link_id: str


@pytest.fixture
async def visitor(
    gateway_nginx: Gateway, client: httpx.AsyncClient, tenant: Tenant, make_shared_env: object
) -> AsyncIterator[Visitor]:
    env: SharedEnv = await make_shared_env()  # type: ignore[operator]
    link_id, share = await create_link(client, tenant, env, shareType="token", expiresIn="24h")
    async with httpx.AsyncClient(base_url=gateway_nginx.url, timeout=30) as http:
        opened = await http.get(share)
        assert opened.status_code == 200, opened.text
        assert http.cookies.get("ocore_share")
        yield Visitor(http, env, link_id)


async def raw_get(gateway: Gateway, target: str, cookie: str) -> int:
    """The status of a GET sent byte for byte (httpx would normalize ``..``)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    writer.write(
        f"GET {target} HTTP/1.1\r\nHost: ocore.test\r\nCookie: ocore_share={cookie}\r\n"
        "Connection: close\r\n\r\n".encode()
    )
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return int(status_line.split()[1])


BROWSER_HEADERS = {
    "Authorization": "Bearer stolen",
    "X-Forwarded-For": "10.6.6.6",
    "X-Forwarded-Host": "evil.example",
    "If-None-Match": '"v0"',
    "X-Custom": "dropped",
}


async def fetch_static_ten_times(visitor: Visitor) -> list[httpx.Response]:
    """Ten GETs of a static file, each answered by nginx alone (ocore judges the cookie only)."""
    proxied_before = served_by_ocore()
    auth_before = served_by_ocore(gateway.AUTH_PATH)
    responses = [await visitor.http.get(STATIC, headers=BROWSER_HEADERS) for _ in range(10)]
    for response in responses:
        assert response.status_code == 200
        assert response.content == b"console.log('static')"
        assert response.headers["etag"] == '"v1"'
        assert response.headers["cache-control"] == "private, max-age=604800"
        assert response.headers["referrer-policy"] == "same-origin"
        for dropped in ("set-cookie", "access-control-allow-origin", "strict-transport-security"):
            assert dropped not in response.headers
    assert served_by_ocore() == proxied_before
    auth_calls = served_by_ocore(gateway.AUTH_PATH) - auth_before
    assert 1 <= auth_calls < len(responses)
    return responses


def assert_sent_as_the_gateway(seen: Seen, env: SharedEnv) -> None:
    """Host and forwarding headers are ocore's; the visitor's credentials never go along."""
    assert seen.header("Host") == [env.domain]
    assert seen.header("X-Forwarded-Host") == [env.domain]
    assert seen.header("X-Forwarded-For") == ["127.0.0.1"]
    for absent in ("Cookie", "Authorization", "X-Custom"):
        assert seen.header(absent) == []


async def test_static_files_are_served_by_nginx_once_ocore_allowed_the_cookie(
    visitor: Visitor,
) -> None:
    upstream = visitor.env.upstream
    assert upstream is not None
    seen_before = len(upstream.seen)
    await fetch_static_ten_times(visitor)
    head = await visitor.http.head(STATIC)
    assert head.status_code == 200
    assert head.content == b""
    revalidated = await visitor.http.get(STATIC, headers={"If-None-Match": '"v1"'})
    assert revalidated.status_code == 304

    # One request reached Odoo: nginx answered the rest from its copy, the
    # conditional ones included, which it does not pass on.
    (fetched,) = upstream.seen[seen_before:]
    assert (fetched.method, fetched.path) == ("GET", "/web/static/lib/app.js")
    assert_sent_as_the_gateway(fetched, visitor.env)
    assert fetched.header("If-None-Match") == []


@pytest.mark.parametrize("static_cache_seconds", [0])
async def test_without_the_cache_every_static_file_reaches_odoo(visitor: Visitor) -> None:
    upstream = visitor.env.upstream
    assert upstream is not None
    seen_before = len(upstream.seen)
    responses = await fetch_static_ten_times(visitor)
    head = await visitor.http.head(STATIC)
    assert head.status_code == 200

    seen = upstream.seen[seen_before:]
    assert [s.method for s in seen] == ["GET"] * len(responses) + ["HEAD"]
    assert {s.path for s in seen} == {"/web/static/lib/app.js"}
    assert_sent_as_the_gateway(seen[0], visitor.env)
    assert seen[0].header("If-None-Match") == ['"v0"']


async def test_each_odoo_has_its_own_copies(
    visitor: Visitor,
    gateway_nginx: Gateway,
    client: httpx.AsyncClient,
    tenant: Tenant,
    make_shared_env: object,
) -> None:
    assert (await visitor.http.get(STATIC)).status_code == 200
    other: SharedEnv = await make_shared_env()  # type: ignore[operator]
    assert other.upstream is not None
    _, share = await create_link(client, tenant, other, shareType="token", expiresIn="24h")
    async with httpx.AsyncClient(base_url=gateway_nginx.url) as http:
        assert (await http.get(share)).status_code == 200
        response = await http.get(STATIC)
    assert response.status_code == 200
    # Same path, another environment: fetched from that environment's Odoo.
    assert [s.path for s in other.upstream.seen if "static" in s.path] == ["/web/static/lib/app.js"]
    assert_sent_as_the_gateway(other.upstream.last(), other)


async def test_odoo_cannot_steer_nginx(visitor: Visitor) -> None:
    """An X-Accel-Redirect (from a module's code) is neither followed nor passed on."""
    response = await visitor.http.get("/api/s-proxy/web/static/lib/accel.js")
    assert response.status_code == 200
    assert response.content == b"accel"
    assert "x-accel-redirect" not in response.headers
    assert gateway.UPSTREAM_HEADER.lower() not in response.headers


async def test_everything_else_still_gets_ocores_answer(visitor: Visitor) -> None:
    upstream = visitor.env.upstream
    assert upstream is not None
    before = served_by_ocore()

    page = await visitor.http.get("/api/s-proxy/page")
    assert page.status_code == 200
    assert b'href="/api/s-proxy/web/assets/x.css"' in page.content
    # Stylesheets are rewritten by ocore, so nginx leaves them alone.
    css = await visitor.http.get("/api/s-proxy/web/static/src/theme.css")
    assert css.content == b"body{background:url(/api/s-proxy/web/static/bg.png)}"
    posted = await visitor.http.post(
        STATIC, content=b"x", headers={"Origin": str(visitor.http.base_url).rstrip("/")}
    )
    assert posted.status_code == 200
    assert upstream.last().method == "POST"
    # An odd query keeps ocore's way too.
    assert (await visitor.http.get(STATIC + "?a=%22")).status_code == 200
    assert served_by_ocore() == before + 4


async def test_hostile_paths_never_reach_odoo(visitor: Visitor, gateway_nginx: Gateway) -> None:
    upstream = visitor.env.upstream
    assert upstream is not None
    cookie = visitor.http.cookies["ocore_share"]
    seen_before = len(upstream.seen)
    for target in (
        "/api/s-proxy/web/static/../database/manager",
        "/api/s-proxy/web/static/..%2f..%2fweb/database/manager",
        "/api/s-proxy/web/static/%2e%2e/%2e%2e/web/database/manager",
        "/api/s-proxy/web/static/..\\database\\manager",
        "/api/s-proxy/web/database/manager",
        "/api/s-proxy/web/static//etc/passwd",
    ):
        status = await raw_get(gateway_nginx, target, cookie)
        assert status in (400, 404), target
    assert all("database" not in s.path and "passwd" not in s.path for s in upstream.seen)
    assert len(upstream.seen) == seen_before


async def test_without_a_valid_cookie_nothing_is_served(visitor: Visitor) -> None:
    upstream = visitor.env.upstream
    assert upstream is not None
    seen_before = len(upstream.seen)
    forged = visitor.http.cookies["ocore_share"][:-4] + "AAAA"
    for cookies in ({}, {"ocore_share": forged}):
        async with httpx.AsyncClient(base_url=visitor.http.base_url, cookies=cookies) as stranger:
            response = await stranger.get(STATIC)
        assert response.status_code == 404
        assert "has expired or was switched off" in response.text
    assert len(upstream.seen) == seen_before


async def test_a_revoked_link_stops_serving_within_the_cache_time(
    visitor: Visitor, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    upstream = visitor.env.upstream
    assert upstream is not None
    assert (await visitor.http.get(STATIC)).status_code == 200
    revoked = await client.delete(
        f"{visitor.env.share_path}/{visitor.link_id}", headers=tenant.headers
    )
    assert revoked.status_code in (200, 204), revoked.text
    await asyncio.sleep(CACHE_SECONDS + 0.5)
    seen_before = len(upstream.seen)
    response = await visitor.http.get(STATIC)
    assert response.status_code == 404
    assert len(upstream.seen) == seen_before


async def test_redirects_and_upstream_failures_are_ocores_to_answer(visitor: Visitor) -> None:
    upstream = visitor.env.upstream
    assert upstream is not None
    moved = await visitor.http.get("/api/s-proxy/web/assets/old/web.assets.min.js")
    assert moved.status_code == 302
    assert moved.headers["location"] == "/api/s-proxy/web/assets/new/web.assets.min.js"

    upstream.server.shutdown()
    upstream.server.server_close()
    before = served_by_ocore()
    down = await visitor.http.get(STATIC, headers={"Accept": "application/json"})
    assert down.status_code == 502
    assert down.json()["code"] == "share_upstream_unreachable"
    assert served_by_ocore() == before + 1


async def test_the_authorization_endpoint_answers_only_the_gateway(
    visitor: Visitor, ocore_url: str, database: Database
) -> None:
    cookie = visitor.http.cookies["ocore_share"]
    url = f"http://{ocore_url}{gateway.AUTH_PATH}"
    async with httpx.AsyncClient(cookies={"ocore_share": cookie}) as direct:
        assert (await direct.get(url)).status_code == 404
        wrong = await direct.get(url, headers={gateway.TOKEN_HEADER: TOKEN + "x"})
        assert wrong.status_code == 404
        allowed = await direct.get(url, headers={gateway.TOKEN_HEADER: TOKEN})
        assert allowed.status_code == 200
        upstream = visitor.env.upstream
        assert upstream is not None
        assert allowed.headers[gateway.UPSTREAM_HEADER] == f"127.0.0.1:{upstream.port}"
        assert allowed.headers[gateway.HOST_HEADER] == visitor.env.domain
        assert allowed.headers[gateway.CACHE_HEADER] == str(CACHE_SECONDS)

        # Through nginx, even with the token, the path does not exist.
        passed = await visitor.http.get(gateway.AUTH_PATH, headers={gateway.TOKEN_HEADER: TOKEN})
        assert passed.status_code == 404

        # A remote server's Odoo is behind a tunnel inside ocore: ocore serves its files.
        async with database.sessionmaker() as session:
            link = await session.get(ShareLink, uuid.UUID(visitor.link_id))
            assert link is not None
            await session.execute(
                update(Server)
                .where(Server.organization_id == link.organization_id)
                .values(is_local=False)
            )
            await session.commit()
        remote = await direct.get(url, headers={gateway.TOKEN_HEADER: TOKEN})
        assert remote.status_code == 401
        assert gateway.UPSTREAM_HEADER.lower() not in remote.headers


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("listen", "80; include /etc/shadow"),
        ("server_name", "example.com;"),
        ("api", "127.0.0.1:8000 backup"),
        ("token", 'short"'),
    ],
)
def test_config_values_that_would_add_directives_are_refused(field: str, value: str) -> None:
    good = {
        "listen": "80",
        "server_name": "ocore.example.com",
        "api": "127.0.0.1:8000",
        "token": TOKEN,
    }
    good[field] = value
    with pytest.raises(ValueError, match="Unusable"):
        render(
            GatewayConfig(
                listen=good["listen"],
                server_name=good["server_name"],
                api=good["api"],
                token=good["token"],
                max_body_bytes=1024,
            )
        )
