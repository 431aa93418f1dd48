"""Odoo's ``/websocket`` (bus notifications) through a share session.

Same rules as the HTTP proxy: the share cookie decides the link, the link's
records decide the upstream (the live colour's gevent port with workers,
its HTTP port without), and ocore writes Host, Origin and ``X-Forwarded-*``.
The browser's Origin must be ocore's own (websockets have no CORS, so this
check is what keeps other sites out). A socket lives long: the link is
checked again every ``RECHECK_SECONDS`` and the socket closed at the link's
expiry or when it was switched off.

Only the browser's websocket to ``/api/s-proxy/websocket`` is covered; Odoo's
web client opens it from a shared worker, where the page script that maps
root-relative URLs does not run, so a real Odoo web client may still connect
to ``/websocket`` on ocore's origin and miss the proxy (see ``rewrite``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

import anyio
import structlog
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.typing import Origin, Subprotocol

from ocore.core.db import Database, utcnow
from ocore.core.errors import OcoreError
from ocore.settings import Settings
from ocore.shares import access, proxy, rewrite
from ocore.shares import session as share_session

log = structlog.get_logger("ocore.shares.websocket")

RECHECK_SECONDS = 60.0
MAX_MESSAGE_BYTES = 1024 * 1024
# RFC 6455 7.4.1: policy violation, message too big, internal error.
_POLICY, _TOO_BIG, _INTERNAL = 1008, 1009, 1011


def _sendable(code: int | None) -> int:
    # 1005/1006/1015 describe what happened and must never be sent in a frame.
    if code is None or code in (1005, 1006, 1015) or not 1000 <= code < 5000:
        return 1000
    return code


async def serve(websocket: WebSocket) -> None:
    settings: Settings = websocket.app.state.settings
    database: Database = websocket.app.state.database
    secret_key = settings.effective_secret_key
    cookie = websocket.cookies.get(share_session.COOKIE_NAME)
    if websocket.headers.get("origin") is None or not share_session.same_origin(
        websocket, settings
    ):
        await websocket.close(code=_POLICY)
        return
    try:
        async with database.sessionmaker() as session:
            link = await access.link_for_cookie(session, secret_key, cookie)
            if link is None:
                await websocket.close(code=_POLICY)
                return
            target = await access.target_of(session, link)
    except OcoreError:
        await websocket.close(code=_INTERNAL)
        return

    async def still_valid() -> bool:
        async with database.sessionmaker() as session:
            return await access.link_for_cookie(session, secret_key, cookie) is not None

    proto = "https" if websocket.url.scheme in ("https", "wss") else "http"
    prefix = rewrite.cookie_prefix(target.link_id.hex)
    headers = [
        ("X-Forwarded-Host", target.host_header),
        ("X-Forwarded-Proto", proto),
        ("X-Forwarded-For", websocket.client.host if websocket.client else "127.0.0.1"),
    ]
    cookies = rewrite.upstream_cookies(websocket.headers.getlist("cookie"), prefix)
    if cookies:
        headers.append(("Cookie", cookies))
    offered = [
        Subprotocol(p.strip())
        for p in websocket.headers.get("sec-websocket-protocol", "").split(",")
        if p.strip()
    ]
    query = websocket.scope.get("query_string", b"").decode("latin-1")
    async with contextlib.AsyncExitStack() as stack:
        try:
            port = await proxy.open_tunnel(
                stack,
                target.server,
                websocket.app.state.secret_box,
                websocket.app.state.jobs.ssh_pool,
                target.websocket_port,
            )
            # The URI gives Odoo its Host; the socket itself goes to the tunnel.
            upstream = await stack.enter_async_context(
                connect(
                    f"ws://{target.host_header}/websocket" + (f"?{query}" if query else ""),
                    host="127.0.0.1",
                    port=port,
                    proxy=None,
                    origin=Origin(f"{proto}://{target.host_header}"),
                    subprotocols=offered or None,
                    additional_headers=headers,
                    user_agent_header=websocket.headers.get("user-agent"),
                    open_timeout=proxy.CONNECT_TIMEOUT,
                    max_size=MAX_MESSAGE_BYTES,
                )
            )
        except (OcoreError, OSError, TimeoutError, WebSocketException) as exc:
            log.info("share_websocket_upstream_failed", error=type(exc).__name__)
            await websocket.close(code=_INTERNAL)
            return
        await websocket.accept(subprotocol=upstream.subprotocol)
        await _relay(websocket, upstream, still_valid, link.expires_at.timestamp())


async def _relay(
    client: WebSocket,
    upstream: ClientConnection,
    still_valid: Callable[[], Awaitable[bool]],
    expires: float,
) -> None:
    close_code = 1000

    async def client_to_upstream() -> None:
        nonlocal close_code
        try:
            while True:
                message = await client.receive()
                if message["type"] == "websocket.disconnect":
                    close_code = _sendable(message.get("code"))
                    break
                data = message.get("text")
                if data is None:
                    data = message.get("bytes")
                if data is None:
                    continue
                if len(data) > MAX_MESSAGE_BYTES:
                    close_code = _TOO_BIG
                    break
                await upstream.send(data)
        except (WebSocketDisconnect, ConnectionClosed):
            pass
        group.cancel_scope.cancel()

    async def upstream_to_client() -> None:
        nonlocal close_code
        try:
            async for data in upstream:
                if isinstance(data, str):
                    await client.send_text(data)
                else:
                    await client.send_bytes(data)
        except (WebSocketDisconnect, ConnectionClosed):
            pass
        close_code = _sendable(upstream.close_code)
        group.cancel_scope.cancel()

    async def watch() -> None:
        nonlocal close_code
        while True:
            # Wake at the recheck interval or right at expiry, whichever is first.
            await anyio.sleep(max(0.05, min(RECHECK_SECONDS, expires - utcnow().timestamp())))
            if not await still_valid():
                close_code = _POLICY
                group.cancel_scope.cancel()
                return

    async with anyio.create_task_group() as group:
        group.start_soon(client_to_upstream)
        group.start_soon(upstream_to_client)
        group.start_soon(watch)
    with anyio.CancelScope(shield=True):
        with contextlib.suppress(Exception):
            await upstream.close(code=close_code)
        with contextlib.suppress(Exception):
            await client.close(code=close_code)
