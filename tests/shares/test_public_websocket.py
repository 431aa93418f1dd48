"""Odoo's /websocket through a share session, over real sockets at both ends.

ocore runs under uvicorn on a loopback port (httpx's ASGI transport has no
websockets); the upstream is a small websockets server standing in for
Odoo's gevent port (the stand-in Odoo has no websocket), recording the
handshake it receives.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select, update
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ocore.instances.models import Domain, Instance
from ocore.shares import session as share_session
from ocore.shares import websocket as share_websocket
from ocore.shares.models import ShareLink
from tests.conftest import Tenant
from tests.factories import make_instance
from tests.fixtures.http_server import serving
from tests.shares.conftest import create_link, environment_for


@pytest.fixture
async def ocore_url(app) -> AsyncIterator[str]:
    # proxy_headers off: this client is not a trusted proxy.
    async with serving(app, lifespan="off", proxy_headers=False) as port:
        yield f"127.0.0.1:{port}"


class OdooSocket:
    """Echoes messages; "close" makes it close with 4000. Records each handshake."""

    def __init__(self) -> None:
        self.handshakes: list[tuple[str, dict[str, str]]] = []

    async def handler(self, connection: ServerConnection) -> None:
        request = connection.request
        assert request is not None
        self.handshakes.append(
            (request.path, {k.lower(): v for k, v in request.headers.raw_items()})
        )
        async for message in connection:
            if message == "close":
                await connection.close(code=4000, reason="bye")
                return
            await connection.send(message)


@pytest.fixture
async def shared_socket(client, tenant: Tenant, database) -> AsyncIterator[dict[str, Any]]:
    odoo = OdooSocket()
    async with serve(odoo.handler, "127.0.0.1", 0) as ws_server:
        ws_port = ws_server.sockets[0].getsockname()[1]
        slug = f"ws-{uuid.uuid4().hex[:6]}"
        instance = await make_instance(database, tenant, slug)
        async with database.sessionmaker() as session:
            # With workers, Odoo's websocket is on the gevent port: base + 1 (blue).
            await session.execute(
                update(Instance)
                .where(Instance.id == instance.id)
                .values(http_port_host=ws_port - 1, workers=2)
            )
            await session.commit()
        environment_id = await environment_for(client, tenant, instance.id, slug)

        class Env:
            share_path = f"/api/environments/{environment_id}/share"

        link_id, _ = await create_link(client, tenant, Env, shareType="token")
        async with database.sessionmaker() as session:
            link = await session.get(ShareLink, uuid.UUID(link_id))
            domain = await session.scalar(
                select(Domain.domain).where(Domain.instance_id == instance.id)
            )
        assert link is not None
        yield {"odoo": odoo, "link": link, "domain": domain, "env": Env}


def cookie_for(settings, link: ShareLink) -> str:
    # What GET /api/share/{token} sets (its HTTP answer needs an HTTP upstream).
    return share_session.issue(
        settings.effective_secret_key, link.id, link.expires_at, link.token_hash
    )


async def test_websocket_is_proxied_with_ocore_headers(
    ocore_url: str, shared_socket, settings
) -> None:
    link: ShareLink = shared_socket["link"]
    prefix = f"ocs_{link.id.hex[:16]}_"
    headers = {
        "Cookie": f"ocore_share={cookie_for(settings, link)}; {prefix}session_id=s1; other=x",
        "Authorization": "Bearer stolen",
        "X-Forwarded-For": "6.6.6.6",
    }
    async with connect(
        f"ws://{ocore_url}/api/s-proxy/websocket?version=17.0-1",
        origin=f"http://{ocore_url}",
        additional_headers=headers,
        proxy=None,
    ) as ws:
        await ws.send("hello")
        assert await ws.recv() == "hello"
        await ws.send(b"\x00\x01")
        assert await ws.recv() == b"\x00\x01"
        await ws.send("close")
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 4000

    path, seen = shared_socket["odoo"].handshakes[0]
    domain = shared_socket["domain"]
    assert path == "/websocket?version=17.0-1"
    assert seen["host"] == domain
    assert seen["origin"] == f"http://{domain}"
    assert seen["cookie"] == "session_id=s1"
    assert seen["x-forwarded-host"] == domain
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert "authorization" not in seen


async def test_websocket_refusals(ocore_url: str, shared_socket, settings) -> None:
    link: ShareLink = shared_socket["link"]
    good = f"ocore_share={cookie_for(settings, link)}"
    for origin, cookie in (
        ("https://evil.example", good),  # another site's page
        (f"http://{ocore_url}", ""),  # no share session
        (f"http://{ocore_url}", good[:-3] + "AAA"),  # tampered
    ):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(
                f"ws://{ocore_url}/api/s-proxy/websocket",
                origin=origin,
                additional_headers={"Cookie": cookie} if cookie else None,
                proxy=None,
            ):
                pass
        assert refused.value.response.status_code == 403
    assert shared_socket["odoo"].handshakes == []


async def test_websocket_closes_when_the_link_is_switched_off(
    ocore_url: str, shared_socket, settings, client, tenant: Tenant, monkeypatch
) -> None:
    monkeypatch.setattr(share_websocket, "RECHECK_SECONDS", 0.2)
    link: ShareLink = shared_socket["link"]
    async with connect(
        f"ws://{ocore_url}/api/s-proxy/websocket",
        origin=f"http://{ocore_url}",
        additional_headers={"Cookie": f"ocore_share={cookie_for(settings, link)}"},
        proxy=None,
    ) as ws:
        await ws.send("still there?")
        assert await ws.recv() == "still there?"
        response = await client.delete(
            f"{shared_socket['env'].share_path}/{link.id}", headers=tenant.headers
        )
        assert response.status_code == 200
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), timeout=5)
        assert ws.close_code == 1008
