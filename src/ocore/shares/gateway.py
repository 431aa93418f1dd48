"""The share gateway: nginx serves a share's static files itself, ocore decides who may.

A shared Odoo page pulls dozens of static files (``/web/assets/…``,
``/<module>/static/…``). Each one passing through Python costs milliseconds of
CPU that nginx spends in microseconds, so with the gateway in front
(``ocore share-gateway nginx-config``, docs/share-gateway.md) nginx answers
them itself:

- it takes only GET and HEAD of ``/api/s-proxy/web/assets/…`` and
  ``/api/s-proxy/<module>/static/…`` whose raw path and query are made of
  unreserved characters, with no ``..`` and no stylesheet (ocore rewrites
  those); every other request reaches ocore exactly as without the gateway;
- it asks ``GET /api/share-gateway/auth`` here with the share cookie alone:
  200 names the upstream port and Host from the link's records (never from
  the request), 401 sends the request on to ocore. Each nginx worker keeps a
  200 for ``share_gateway_cache_seconds`` per cookie (signed, bound to one
  link); when it runs out, one request asks again while the others of that
  worker go on with the old answer, for as long as the asking takes (at most
  the 7 s nginx waits). So a revoked link's static files stay reachable that
  long at most: Odoo serves the same files to anyone who reaches it, and the
  link's pages and data always go through ocore's per-request checks;
- it sends Odoo an allowlist of request headers (no cookie, no credentials),
  and keeps what Odoo answered for a minute by default, per Odoo (the port and
  Host named here) and path; the cookie is always checked first;
- anything unusual (a 401, a redirect, an upstream error or timeout) is handed
  to ocore (``error_page … = @ocore``), which runs the whole request again
  with all of its own checks and rewriting, so nginx never has to get those
  right.

Instances on remote servers are reached through SSH tunnels that live inside
ocore: their files keep going through ocore (the answer for them is 401).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ocore.core.crypto import constant_time_equals
from ocore.core.db import Database
from ocore.core.errors import OcoreError
from ocore.settings import Settings
from ocore.shares import access, pages
from ocore.shares import session as share_session

TOKEN_HEADER = "X-Ocore-Gateway-Token"  # noqa: S105 - a header name, not its value
UPSTREAM_HEADER = "X-Ocore-Upstream"
HOST_HEADER = "X-Ocore-Host"
CACHE_HEADER = "X-Ocore-Cache-Seconds"
AUTH_PATH = "/api/share-gateway/auth"

router = APIRouter(include_in_schema=False)


@router.get("/share-gateway/auth")
async def authorize_static_files(request: Request) -> Response:
    """nginx's question (a Lua subrequest): may this share cookie fetch its Odoo's static files?"""
    settings: Settings = request.app.state.settings
    expected = settings.share_gateway_token
    offered = request.headers.get(TOKEN_HEADER, "")
    if expected is None or not constant_time_equals(offered, expected.get_secret_value()):
        # Without the gateway's token this endpoint does not exist.
        return pages.not_found()
    database: Database = request.app.state.database
    async with database.sessionmaker() as session:
        link = await access.link_for_cookie(
            session,
            settings.effective_secret_key,
            request.cookies.get(share_session.COOKIE_NAME),
        )
        if link is None:
            return Response(status_code=401)
        try:
            target = await access.target_of(session, link)
        except OcoreError:
            return Response(status_code=401)
    if not target.server.is_local:
        return Response(status_code=401)
    return Response(
        status_code=200,
        headers={
            UPSTREAM_HEADER: f"127.0.0.1:{target.http_port}",
            HOST_HEADER: target.host_header,
            CACHE_HEADER: str(settings.share_gateway_cache_seconds),
        },
    )
