"""Helpers for the public share tests: anonymous clients, a recording upstream, links.

``Upstream`` is a tiny real HTTP server standing in for an Odoo whose every
request we want to see (the stand-in Odoo does not log request headers): an
instance row on a local server gets its ports pointed at it, so the proxy
reaches it exactly as it reaches a real instance on this machine.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from ocore.app import create_app
from ocore.instances.models import Domain, Instance
from tests.conftest import Tenant

# The provisioning tests' real host (sshd, nginx, stand-in Odoo), reused as is.
from tests.deployments.conftest import base_dir, nginx, sshd  # noqa: F401
from tests.factories import make_instance
from tests.fixtures.ports import free_port_window
from tests.instances.test_provisioning import job_of, server  # noqa: F401

BASE_URL = "http://ocore.test"
HTML = {"Accept": "text/html,application/xhtml+xml"}


@pytest.fixture
async def embedded_app(settings: Any, database: Any) -> AsyncIterator[Any]:
    """tests/conftest.py's embedded app, with instance ports of a window of its own."""
    low = free_port_window(40)
    application = create_app(
        settings.model_copy(
            update={
                "redis_url": None,
                "reconcile_interval_seconds": 1,
                "instance_port_min": low,
                "instance_port_max": low + 39,
            }
        )
    )
    application.state.database = database
    async with application.router.lifespan_context(application):
        yield application


@dataclass
class Seen:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


@dataclass
class Upstream:
    """A recording HTTP server; ``routes`` map a path to (status, headers, body)."""

    server: ThreadingHTTPServer
    seen: list[Seen] = field(default_factory=list)
    delay: float = 0.0

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def last(self) -> Seen:
        assert self.seen, "the upstream saw no request"
        return self.seen[-1]


PAGE = (
    b"<!DOCTYPE html><html><head><title>t</title>"
    b'<link rel="stylesheet" href="/web/assets/x.css"/></head><body>'
    b"<a href='/web/login?x=1'>in</a><img src=/web/image.png>"
    b'<form action="/web/login" method="post"></form>'
    b'<a href="//cdn.example/x">cdn</a><a href="https://odoo.com/">out</a>'
    b'<div style="background:url(/web/bg.png)"></div></body></html>'
)


def _routes(domain: str) -> dict[str, tuple[int, list[tuple[str, str]], bytes]]:
    return {
        "/page": (200, [("Content-Type", "text/html; charset=utf-8")], PAGE),
        "/gzip-page": (
            200,
            [("Content-Type", "text/html"), ("Content-Encoding", "gzip")],
            gzip.compress(PAGE),
        ),
        "/style.css": (200, [("Content-Type", "text/css")], b"a{background:url('/web/i.png')}"),
        "/app.js": (
            200,
            [("Content-Type", "application/javascript"), ("Cache-Control", "public, max-age=60")],
            b"fetch('/web/x')",
        ),
        "/cookie": (
            200,
            [
                ("Content-Type", "text/plain"),
                ("Set-Cookie", f"session_id=abc123; Domain={domain}; Path=/; HttpOnly"),
                ("Set-Cookie", "frontend_lang=en_US; Path=/web; SameSite=Lax"),
                ("Connection", "close, X-Hop-Secret"),
                ("X-Hop-Secret", "1"),
                ("Keep-Alive", "timeout=5"),
                ("Proxy-Authenticate", "Basic"),
                ("Strict-Transport-Security", "max-age=63072000"),
                ("Clear-Site-Data", '"cookies"'),
                ("Access-Control-Allow-Origin", "*"),
                ("X-Accel-Redirect", "/internal/secret"),
                ("X-Sendfile", "/etc/shadow"),
                ("X-Odoo-Header", "kept"),
            ],
            b"cookie set",
        ),
        "/redirect-relative": (303, [("Location", "/web/login?redirect=%2Fweb")], b""),
        "/redirect-own": (302, [("Location", f"https://{domain}/odoo/x?y=1#z")], b""),
        "/redirect-other": (302, [("Location", "https://evil.example/steal")], b""),
        "/redirect-schemeless": (302, [("Location", "//evil.example/steal")], b""),
        "/redirect-backslash": (302, [("Location", "/\\evil.example")], b""),
        "/big": (200, [("Content-Type", "application/octet-stream")], b"x" * 5000),
        # What Odoo's static files look like, and what a hostile one could add.
        "/web/static/lib/app.js": (
            200,
            [
                ("Content-Type", "application/javascript"),
                ("Cache-Control", "public, max-age=604800"),
                ("ETag", '"v1"'),
                ("Set-Cookie", "session_id=abc123; Path=/"),
                ("Access-Control-Allow-Origin", "*"),
                ("Strict-Transport-Security", "max-age=63072000"),
                ("Referrer-Policy", "unsafe-url"),
            ],
            b"console.log('static')",
        ),
        "/web/static/lib/accel.js": (
            200,
            [
                ("Content-Type", "application/javascript"),
                ("X-Accel-Redirect", "/_ocore/share-auth"),
            ],
            b"accel",
        ),
        "/web/static/src/theme.css": (
            200,
            [("Content-Type", "text/css")],
            b"body{background:url(/web/static/bg.png)}",
        ),
        "/web/assets/old/web.assets.min.js": (
            302,
            [("Location", "/web/assets/new/web.assets.min.js")],
            b"",
        ),
    }


def start_upstream(domain: str) -> Upstream:
    holder: dict[str, Upstream] = {}
    routes = _routes(domain)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _handle(self) -> None:
            upstream = holder["u"]
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            upstream.seen.append(Seen(self.command, self.path, list(self.headers.items()), body))
            if upstream.delay:
                time.sleep(upstream.delay)
            path = self.path.split("?")[0]
            if path == "/big-stream":
                # No Content-Length: the body ends when the connection closes.
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                self.wfile.write(b"y" * 5000)
                return
            status, headers, payload = routes.get(
                path,
                (
                    200,
                    [("Content-Type", "application/json")],
                    json.dumps({"path": self.path}).encode(),
                ),
            )
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    holder["u"] = Upstream(httpd)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return holder["u"]


@dataclass
class SharedEnv:
    environment_id: str
    domain: str
    instance_id: uuid.UUID
    upstream: Upstream | None = None

    @property
    def share_path(self) -> str:
        return f"/api/environments/{self.environment_id}/share"


async def create_link(
    client: httpx.AsyncClient, tenant: Tenant, env: SharedEnv, **body: Any
) -> tuple[str, str]:
    """(link id, share path with token) through the authenticated API."""
    response = await client.post(env.share_path, json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    created = response.json()
    return created["id"], httpx.URL(created["url"]).path


async def environment_for(
    client: httpx.AsyncClient, tenant: Tenant, instance_id: uuid.UUID, name: str
) -> str:
    project = await client.post(
        "/api/projects",
        json={"name": name, "repositoryUrl": f"/srv/{name}.git", "odooVersion": "17.0"},
        headers=tenant.headers,
    )
    assert project.status_code == 201, project.text
    response = await client.post(
        f"/api/projects/{project.json()['id']}/environments",
        json={"instanceId": str(instance_id), "environmentType": "staging", "branch": "staging"},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def cookie_prefix(link_id: str) -> str:
    return f"ocs_{uuid.UUID(link_id).hex[:16]}_"


async def open_token_link(
    client: httpx.AsyncClient, tenant: Tenant, env: SharedEnv, browser: httpx.AsyncClient
) -> tuple[str, str]:
    link_id, share = await create_link(client, tenant, env, shareType="token", expiresIn="24h")
    response = await browser.get(share)
    assert response.status_code == 200, response.text
    return link_id, share


@pytest.fixture
def make_shared_env(client: httpx.AsyncClient, tenant: Tenant, database: Any) -> Any:
    """An environment whose instance (on a local server) listens on a recording upstream."""
    started: list[Upstream] = []

    async def make(name: str = "shop", workers: int = 0) -> SharedEnv:
        slug = f"{name}-{uuid.uuid4().hex[:6]}"
        instance = await make_instance(database, tenant, slug)
        async with database.sessionmaker() as session:
            domain = await session.scalar(
                select(Domain.domain).where(Domain.instance_id == instance.id)
            )
        upstream = start_upstream(domain)
        started.append(upstream)
        async with database.sessionmaker() as session:
            await session.execute(
                update(Instance)
                .where(Instance.id == instance.id)
                .values(http_port_host=upstream.port, longpolling_port_host=None, workers=workers)
            )
            await session.commit()
        environment_id = await environment_for(client, tenant, instance.id, slug)
        return SharedEnv(environment_id, domain, instance.id, upstream)

    yield make
    for upstream in started:
        upstream.server.shutdown()
        upstream.server.server_close()


@pytest.fixture
async def anonymous(app: Any) -> AsyncIterator[Callable[[], httpx.AsyncClient]]:
    """Fresh cookie-jar clients of the same app, as strangers' browsers."""
    clients: list[httpx.AsyncClient] = []

    def make() -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        c = httpx.AsyncClient(transport=transport, base_url=BASE_URL)
        clients.append(c)
        return c

    yield make
    for c in clients:
        await c.aclose()


def anonymous_client(app: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url=BASE_URL)


@dataclass
class RawResponse:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


async def raw_request(
    app: Any, method: str, raw_path: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> RawResponse:
    """Call the app with a path exactly as a client sent it (httpx would normalize '..')."""
    from urllib.parse import unquote

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        # What uvicorn does: the path is the raw path, percent-decoded once.
        "path": unquote(raw_path.decode("latin-1")),
        "raw_path": raw_path,
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"ocore.test"), *(headers or [])],
        "client": ("127.0.0.1", 50000),
        "server": ("ocore.test", 80),
        "state": {},
    }
    sent_body = False
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    await app(scope, receive, send)
    start = next(m for m in messages if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return RawResponse(start["status"], list(start.get("headers", [])), body)
