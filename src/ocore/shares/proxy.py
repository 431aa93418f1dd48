"""The HTTP reverse proxy from a share session to the environment's Odoo.

The upstream address comes only from the link's records (``access.Target``):
the server row gives the host, ``open_tunnel`` reaches the live colour's port
on the host's loopback (a local server needs no tunnel). Nothing in the
request can choose where a connection goes. Odoo gets the Host it expects
(nginx ``server_name`` and ``dbfilter``) and ``X-Forwarded-*`` written by
ocore (Odoo runs with ``proxy_mode`` and believes them); whatever the client
sent under those names is dropped, as are hop-by-hop headers, ``Authorization``
and every cookie that is not this link's Odoo cookie.

Request bodies are read whole (the app's middleware already bounds them by
``OCORE_MAX_BODY_BYTES``; ``MAX_REQUEST_BYTES`` is this proxy's own ceiling);
responses are streamed, bounded by ``MAX_RESPONSE_BYTES``. HTML and CSS are
buffered (up to ``rewrite.REWRITE_MAX_BYTES``) to rewrite their URLs.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
import httpx
import structlog
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ocore.core.crypto import SecretBox
from ocore.core.errors import HostError, PayloadTooLarge
from ocore.core.loopback import closing_headers
from ocore.hosts import SSHPool
from ocore.servers.hosts import connect_server
from ocore.servers.models import Server
from ocore.shares import rewrite
from ocore.shares.access import Target

log = structlog.get_logger("ocore.shares.proxy")

MAX_REQUEST_BYTES = 10 * 1024 * 1024
MAX_RESPONSE_BYTES = 256 * 1024 * 1024
CONNECT_TIMEOUT = 10.0
# Odoo's own limit_time_real defaults to 120 s; reports and imports may use it all.
READ_TIMEOUT = 180.0

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Request headers ocore writes itself or must not pass on.
_REQUEST_DROP = HOP_BY_HOP | {
    "host",
    "authorization",
    "cookie",
    "content-length",
    "expect",
    "origin",
    "referer",
    "accept-encoding",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-server",
    "x-real-ip",
    "x-request-id",
}
# Response headers that would act on ocore's whole origin, or that are rewritten.
RESPONSE_DROP = HOP_BY_HOP | {
    "content-length",
    "set-cookie",
    "location",
    "strict-transport-security",
    "clear-site-data",
    "alt-svc",
    "public-key-pins",
    "link",
    "refresh",
    "content-location",
    "referrer-policy",
    "x-robots-tag",
    "x-request-id",
    # Orders to a web server in front of ocore (nginx, lighttpd, Apache): from
    # Odoo's side they would reach that server's internal locations and files.
    "x-sendfile",
    "x-lighttpd-send-file",
}
# The same, by prefix (nginx's X-Accel-Redirect and its family).
RESPONSE_DROP_PREFIXES = ("proxy-", "access-control-", "x-accel-")
_DECODABLE = ("gzip", "deflate")


class UpstreamUnreachable(HostError):
    code = "share_upstream_unreachable"
    title = "Shared environment unreachable"


class UpstreamTimeout(HostError):
    status = 504
    code = "share_upstream_timeout"
    title = "Shared environment did not answer in time"


class ResponseTooLarge(HostError):
    code = "share_response_too_large"
    title = "Answer too large"


@dataclass(frozen=True)
class Outgoing:
    """One request to send upstream; every field decided by ocore's routes."""

    method: str
    path: str
    query: bytes
    body: bytes


class ProxyResponse(StreamingResponse):
    """A streamed upstream answer that closes the tunnel and connection however it ends."""

    def __init__(
        self,
        content: AsyncIterator[bytes],
        status_code: int,
        headers: list[tuple[bytes, bytes]],
        resources: contextlib.AsyncExitStack,
    ) -> None:
        super().__init__(content, status_code=status_code)
        self.raw_headers = headers
        self._resources = resources

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self._resources.aclose()


def connection_tokens(values: list[str]) -> set[str]:
    # RFC 9110 7.6.1: headers named in Connection are hop-by-hop too.
    return {token.strip().lower() for value in values for token in value.split(",")}


def _accept_encoding(request: Request) -> str:
    offered: set[str] = set()
    for part in request.headers.get("accept-encoding", "").split(","):
        token, _, params = part.partition(";")
        weight = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if weight > 0:
            offered.add(token.strip().lower())
    # Only encodings ocore can decode, so HTML and CSS can always be rewritten.
    accepted = [encoding for encoding in _DECODABLE if encoding in offered]
    return ", ".join(accepted) or "identity"


def request_headers(request: Request, target: Target, cookie_prefix: str) -> list[tuple[str, str]]:
    raw = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
    listed = connection_tokens([v for k, v in raw if k.lower() == "connection"])
    proto = "https" if request.url.scheme in ("https", "wss") else "http"
    origin = f"{proto}://{target.host_header}"
    headers = [
        (k, v)
        for k, v in raw
        if (name := k.lower()) not in _REQUEST_DROP
        and name not in listed
        and not name.startswith("proxy-")
        and not name.startswith("sec-websocket-")
    ]
    headers += [
        ("Host", target.host_header),
        ("X-Forwarded-Host", target.host_header),
        ("X-Forwarded-Proto", proto),
        ("X-Forwarded-For", request.client.host if request.client else "127.0.0.1"),
        ("Accept-Encoding", _accept_encoding(request)),
    ]
    if "origin" in request.headers:
        # Already checked to be ocore's own origin; Odoo compares it with its host.
        headers.append(("Origin", origin))
    referer = request.headers.get("referer", "")
    referer_path = httpx.URL(referer).path if referer else ""
    if referer_path.startswith(rewrite.PREFIX + "/"):
        # Share URLs (with the token) never travel on; proxy paths map back to Odoo's.
        headers.append(("Referer", origin + referer_path[len(rewrite.PREFIX) :]))
    cookies = rewrite.upstream_cookies(request.headers.getlist("cookie"), cookie_prefix)
    if cookies:
        headers.append(("Cookie", cookies))
    return headers


def _response_headers(
    upstream: httpx.Response, target: Target, outgoing: Outgoing, cookie_prefix: str
) -> list[tuple[bytes, bytes]]:
    listed = connection_tokens(upstream.headers.get_list("connection"))
    out: list[tuple[str, str]] = []
    for key, value in upstream.headers.multi_items():
        name = key.lower()
        if name in RESPONSE_DROP or name in listed or name.startswith(RESPONSE_DROP_PREFIXES):
            continue
        if name == "cache-control":
            # Shared caches in front of ocore must not serve a share's answers to others.
            value = value.replace("public", "private")
        out.append((key, value))
    if "cache-control" not in upstream.headers:
        out.append(("Cache-Control", "private"))
    location = upstream.headers.get("location")
    if location is not None:
        out.append(
            (
                "Location",
                rewrite.location(location, domains=target.domains, current_path=outgoing.path),
            )
        )
    for cookie in upstream.headers.get_list("set-cookie"):
        rewritten = rewrite.set_cookie(cookie, cookie_prefix)
        if rewritten is not None:
            out.append(("Set-Cookie", rewritten))
    out += [("Referrer-Policy", "same-origin"), ("X-Robots-Tag", "noindex, nofollow")]
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in out]


def _kind(upstream: httpx.Response) -> str | None:
    media = upstream.headers.get("content-type", "").split(";")[0].strip().lower()
    if media in ("text/html", "application/xhtml+xml"):
        return "html"
    return "css" if media == "text/css" else None


async def _bounded(chunks: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    # Headers are gone already when these fail: aborting the connection is the
    # only honest signal left (a clean end would pass a truncated body as whole).
    sent = 0
    try:
        async for chunk in chunks:
            sent += len(chunk)
            if sent > limit:
                log.warning("share_response_too_large", limit=limit)
                raise ResponseTooLarge(f"The answer exceeds {limit} bytes.")
            yield chunk
    except httpx.HTTPError as exc:
        log.warning("share_upstream_broke_off", error=type(exc).__name__, sent=sent)
        raise UpstreamUnreachable("The shared environment broke off its answer.") from None


async def open_tunnel(
    stack: contextlib.AsyncExitStack,
    server: Server,
    box: SecretBox,
    pool: SSHPool,
    port: int,
    *,
    unreachable: type[HostError] = UpstreamUnreachable,
    what: str = "the shared environment's host",
) -> int:
    """A local port to ``port`` on the server's loopback, closed with ``stack``."""
    try:
        host = connect_server(server, box, pool)
        with anyio.fail_after(CONNECT_TIMEOUT + 20):
            return await stack.enter_async_context(host.open_tunnel("127.0.0.1", port))
    except HostError as exc:
        raise unreachable(f"Cannot reach {what}: {exc.detail}") from None
    except (ValueError, TimeoutError) as exc:
        raise unreachable(f"Cannot reach {what}: {exc}") from None


async def forward(
    request: Request,
    target: Target,
    outgoing: Outgoing,
    *,
    box: SecretBox,
    pool: SSHPool,
    client: httpx.AsyncClient,
    extra_headers: list[tuple[str, str]] | None = None,
) -> ProxyResponse:
    """Send ``outgoing`` to the link's Odoo and answer with what it says (rewritten).

    ``client`` is the app's ``loopback_client``.
    """
    if len(outgoing.body) > MAX_REQUEST_BYTES:
        raise PayloadTooLarge(f"Request bodies are limited to {MAX_REQUEST_BYTES} bytes.")
    prefix = rewrite.cookie_prefix(target.link_id.hex)
    headers = request_headers(request, target, prefix) + closing_headers(target.server.is_local)
    stack = contextlib.AsyncExitStack()
    try:
        port = await open_tunnel(stack, target.server, box, pool, target.http_port)
        url = httpx.URL(f"http://127.0.0.1:{port}{outgoing.path}")
        if outgoing.query:
            url = url.copy_with(query=outgoing.query)
        upstream_request = client.build_request(
            outgoing.method,
            url,
            headers=headers,
            content=outgoing.body or None,
            timeout=httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT),
        )
        try:
            upstream = await client.send(upstream_request, stream=True)
        except httpx.TimeoutException:
            raise UpstreamTimeout("The shared environment did not answer in time.") from None
        except httpx.HTTPError as exc:
            log.info("share_upstream_error", error=type(exc).__name__)
            raise UpstreamUnreachable(
                "The shared environment is not reachable right now."
            ) from None
        stack.push_async_callback(upstream.aclose)
        response_headers = _response_headers(upstream, target, outgoing, prefix)
        response_headers += [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra_headers or []
        ]
        declared = upstream.headers.get("content-length", "0")
        if not declared.isdigit():
            raise UpstreamUnreachable("The shared environment sent a malformed answer.")
        if int(declared) > MAX_RESPONSE_BYTES:
            raise ResponseTooLarge(f"The answer exceeds {MAX_RESPONSE_BYTES} bytes.")
        body = await _body(upstream, response_headers, request.method == "HEAD")
        return ProxyResponse(body, upstream.status_code, response_headers, stack)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await stack.aclose()
        raise


async def _body(
    upstream: httpx.Response, headers: list[tuple[bytes, bytes]], head: bool
) -> AsyncIterator[bytes]:
    """The body iterator; HTML and CSS are read first (bounded) to be rewritten."""
    kind = _kind(upstream)
    if kind is None or head:
        if "content-length" in upstream.headers:
            headers.append((b"content-length", upstream.headers["content-length"].encode()))
        return _bounded(upstream.aiter_raw(), MAX_RESPONSE_BYTES)
    # Decoded bytes from here on: the encoding header goes, the length is ours.
    headers[:] = [(k, v) for k, v in headers if k != b"content-encoding"]
    decoded = upstream.aiter_bytes()
    buffered = bytearray()
    try:
        async for chunk in decoded:
            buffered += chunk
            if len(buffered) > rewrite.REWRITE_MAX_BYTES:
                # Too big to rewrite: pass it on as it is rather than refuse it.
                return _bounded(_chain(bytes(buffered), decoded), MAX_RESPONSE_BYTES)
    except httpx.TimeoutException:
        raise UpstreamTimeout("The shared environment did not answer in time.") from None
    except httpx.HTTPError:
        raise UpstreamUnreachable("The shared environment broke off its answer.") from None
    body = rewrite.html(bytes(buffered)) if kind == "html" else rewrite.css(bytes(buffered))
    headers.append((b"content-length", str(len(body)).encode()))
    return _single(body)


async def _chain(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in rest:
        yield chunk


async def _single(body: bytes) -> AsyncIterator[bytes]:
    yield body
