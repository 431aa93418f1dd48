"""The public side of share links: no JWT, only the link's token and its session cookie.

- ``GET /api/share/{token}``: a token link sets the share cookie and shows
  the environment's Odoo (its ``/``); a password link shows a password form
  until the browser holds a cookie for that very link.
- ``POST /api/share/{token}/login``: the password (JSON or form), limited per
  link; success sets the cookie and redirects (303) to the share URL.
- ``/api/s-proxy/{path}`` (any method Odoo's pages use) and the websocket at
  ``/api/s-proxy/websocket``: the root-relative requests of the shared
  pages, authorized by the share cookie alone, to that link's environment.

Unknown, expired and deactivated links get one identical 404 page. The
database is used in short transactions of its own, closed before the proxy
talks to Odoo: a slow Odoo must not hold database connections or row locks.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, quote

import structlog
from fastapi import APIRouter, Request, WebSocket
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from ocore.core.db import Database, utcnow
from ocore.core.deps import get_loopback_client
from ocore.core.errors import Forbidden, InvalidInput, OcoreError, PayloadTooLarge, Unauthorized
from ocore.core.problems import problem_response
from ocore.core.uow import commit
from ocore.settings import Settings
from ocore.shares import access, pages, proxy, rewrite
from ocore.shares import session as share_session
from ocore.shares import websocket as share_websocket
from ocore.shares.models import ShareLink

router = APIRouter(tags=["shares"])

_LOGIN_BODY_MAX = 8 * 1024
_PASSWORD_MAX = 1024
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_PROXY_METHODS = ["POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
_PASSWORD_SCHEMA = {
    "type": "object",
    "properties": {"password": {"type": "string", "maxLength": _PASSWORD_MAX}},
    "required": ["password"],
}
_HTML_CONTENT = {"text/html": {"schema": {"type": "string"}}}


def _settings(conn: HTTPConnection) -> Settings:
    settings: Settings = conn.app.state.settings
    return settings


@asynccontextmanager
async def _transaction(conn: HTTPConnection) -> AsyncIterator[AsyncSession]:
    """A short unit of work: commits on success, rolls back on any exception."""
    database: Database = conn.app.state.database
    async with database.sessionmaker() as session:
        yield session
        await commit(session)


def _cookie_for(conn: HTTPConnection, link: ShareLink) -> str:
    settings = _settings(conn)
    return share_session.set_cookie_header(
        settings.effective_secret_key,
        link.id,
        link.expires_at,
        link.token_hash,
        now=utcnow(),
        secure=share_session.is_secure(conn, settings),
    )


async def _forward(
    request: Request,
    target: access.Target,
    outgoing: proxy.Outgoing,
    extra_headers: list[tuple[str, str]] | None = None,
) -> proxy.ProxyResponse:
    return await proxy.forward(
        request,
        target,
        outgoing,
        box=request.app.state.secret_box,
        pool=request.app.state.jobs.ssh_pool,
        client=get_loopback_client(request),
        extra_headers=extra_headers,
    )


@router.get(
    "/share/{token}",
    summary="Access shared environment",
    description="Public: validates a share token and proxies to the environment's Odoo.",
    response_class=Response,
    responses={
        200: {"description": "Proxied Odoo content", "content": _HTML_CONTENT},
        404: {"description": "Unknown, expired or deactivated link", "content": _HTML_CONTENT},
    },
)
async def open_share(token: str, request: Request) -> Response:
    try:
        async with _transaction(request) as session:
            link = await access.link_for_token(session, token)
            target = await access.target_of(session, link)
            extra: list[tuple[str, str]] = []
            if link.share_type == "password":
                holder = await access.link_for_cookie(
                    session,
                    _settings(request).effective_secret_key,
                    request.cookies.get(share_session.COOKIE_NAME),
                )
                if holder is None or holder.id != link.id:
                    return pages.login_form(token)
            else:
                extra.append(("Set-Cookie", _cookie_for(request, link)))
            await access.record_use(session, link)
        outgoing = proxy.Outgoing("GET", "/", request.url.query.encode("latin-1"), b"")
        response = await _forward(request, target, outgoing, extra)
    except access.LinkNotFound:
        return pages.not_found()
    except OcoreError as exc:
        return pages.error(request, exc)
    # The share URL holds the token: never stored by any cache.
    response.raw_headers = [(k, v) for k, v in response.raw_headers if k != b"cache-control"]
    response.raw_headers.append((b"cache-control", b"no-store"))
    return response


async def _password_from(request: Request, is_json: bool) -> str:
    declared = request.headers.get("content-length", "0")
    if not declared.isdigit() or int(declared) > _LOGIN_BODY_MAX:
        raise PayloadTooLarge("The login request is too large.")
    body = await request.body()
    if len(body) > _LOGIN_BODY_MAX:
        raise PayloadTooLarge("The login request is too large.")
    password: Any = None
    try:
        if is_json:
            data = json.loads(body or b"null")
            password = data.get("password") if isinstance(data, dict) else None
        else:
            values = parse_qs(body.decode("utf-8"), keep_blank_values=True).get("password")
            password = values[0] if values and len(values) == 1 else None
    except (ValueError, UnicodeDecodeError):
        password = None
    if not isinstance(password, str) or not password or len(password) > _PASSWORD_MAX:
        raise InvalidInput("A password (a non-empty string) is required.")
    return password


@router.post(
    "/share/{token}/login",
    summary="Login to password-protected share",
    description=(
        "Public: checks the share password (JSON or an HTML form), sets the share "
        "session cookie and redirects to the share URL. At most "
        f"{access.MAX_FAILED_LOGINS} wrong passwords per link within "
        f"{int(access.FAILED_LOGIN_WINDOW.total_seconds() // 60)} minutes."
    ),
    status_code=303,
    response_class=Response,
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "Login request",
            "content": {
                "application/json": {"schema": _PASSWORD_SCHEMA},
                "application/x-www-form-urlencoded": {"schema": _PASSWORD_SCHEMA},
            },
        }
    },
    responses={
        303: {"description": "Redirect to share URL"},
        401: {"description": "Wrong password"},
        404: {"description": "Unknown, expired or deactivated link"},
        429: {"description": "Too many wrong passwords for this link"},
    },
)
async def login(token: str, request: Request) -> Response:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    is_json = media != "application/x-www-form-urlencoded"
    share_url = f"/api/share/{quote(token, safe='')}"
    try:
        if not share_session.same_origin(request, _settings(request)):
            raise Forbidden("Cross-origin login requests are refused.")
        password = await _password_from(request, is_json)
        cookie: str | None = None
        async with _transaction(request) as session:
            link = await access.link_for_token(session, token, lock=True)
            if link.share_type != "password":
                # Nothing to check: the token alone opens this link.
                return RedirectResponse(share_url, status_code=303)
            if await access.check_password(
                session,
                link,
                password,
                request_id=structlog.contextvars.get_contextvars().get("request_id"),
            ):
                await access.record_use(session, link)
                cookie = _cookie_for(request, link)
        # Raised after the transaction: the failed attempt it recorded must stay.
        if cookie is None:
            raise Unauthorized("Wrong password.")
    except access.LinkNotFound:
        return pages.not_found()
    except (Unauthorized, access.TooManyAttempts) as exc:
        if is_json:
            headers = dict(pages.OWN_PAGE_HEADERS)
            if "retry_after" in exc.extra:
                headers["Retry-After"] = str(exc.extra["retry_after"])
            return problem_response(
                exc.status, code=exc.code, title=exc.title, detail=exc.detail, headers=headers
            )
        response = pages.login_form(token, error=exc.detail, status_code=exc.status)
        if "retry_after" in exc.extra:
            response.headers["Retry-After"] = str(exc.extra["retry_after"])
        return response
    except OcoreError as exc:
        return pages.error(request, exc)
    return RedirectResponse(
        share_url, status_code=303, headers={"Set-Cookie": cookie, "Cache-Control": "no-store"}
    )


async def _proxy(request: Request) -> Response:
    settings = _settings(request)
    try:
        raw_path = request.scope.get("raw_path") or request.scope["path"].encode("utf-8")
        path = rewrite.upstream_path(raw_path)
        if request.method not in _SAFE_METHODS and not share_session.same_origin(request, settings):
            raise Forbidden("Cross-origin requests are refused.")
        declared = request.headers.get("content-length", "0")
        if not declared.isdigit() or int(declared) > proxy.MAX_REQUEST_BYTES:
            raise PayloadTooLarge(f"Request bodies are limited to {proxy.MAX_REQUEST_BYTES} bytes.")
        async with _transaction(request) as session:
            link = await access.link_for_cookie(
                session,
                settings.effective_secret_key,
                request.cookies.get(share_session.COOKIE_NAME),
            )
            if link is None:
                return pages.not_found()
            target = await access.target_of(session, link)
        outgoing = proxy.Outgoing(
            request.method, path, request.url.query.encode("latin-1"), await request.body()
        )
        return await _forward(request, target, outgoing)
    except access.LinkNotFound:
        return pages.not_found()
    except OcoreError as exc:
        return pages.error(request, exc)


@router.get(
    "/s-proxy/{path:path}",
    summary="Proxy shared environment assets",
    description=(
        "Public: proxies the root-relative requests of a shared Odoo page, authorized "
        "by the share cookie only. Other methods (POST, PUT, PATCH, DELETE, HEAD, "
        "OPTIONS) are proxied the same way; `/web/database/*` never is."
    ),
    response_class=Response,
    responses={
        200: {"description": "Proxied asset content", "content": {"*/*": {}}},
        400: {"description": "Refused path"},
        404: {"description": "No valid share session, or a blocked path"},
        502: {"description": "The environment is unreachable"},
        504: {"description": "The environment did not answer in time"},
    },
)
async def proxy_get(path: str, request: Request) -> Response:
    return await _proxy(request)


@router.api_route("/s-proxy/{path:path}", methods=_PROXY_METHODS, include_in_schema=False)
async def proxy_other(path: str, request: Request) -> Response:
    return await _proxy(request)


@router.websocket("/s-proxy/websocket")
async def proxy_websocket(websocket: WebSocket) -> None:
    await share_websocket.serve(websocket)
