"""``/api/environments/{id}/mail``: the environment's mail catcher (Mailpit) through ocore.

A reverse proxy to the Mailpit web UI and JSON API that runs next to a
non-production instance (``ocore.environments.jobs.start_mail_catcher``),
behind ocore's own authentication: any member of the environment's
organization may read the caught mail; another organization gets 404.

Where a request goes comes only from ocore's records: the environment's
``mailpit_port`` (the UI listens on the next port) on its instance's server,
reached through ``open_tunnel`` on the host's loopback. The client chooses
only the path below Mailpit's webroot (Mailpit runs with
``--webroot /api/environments/{id}/mail/``, so its pages and their API calls
work through this very path); ``.`` and ``..`` segments are refused.

Hop-by-hop headers are dropped both ways, and so are the client's
``Authorization`` and cookies (they are for ocore, never for Mailpit),
``Set-Cookie`` and ``WWW-Authenticate`` from Mailpit (they would act on
ocore's origin). Bodies are streamed both ways; Mailpit's own
``Content-Security-Policy`` is kept, and a message's own content (its HTML
view, source and parts: written by whoever sent the mail, served from
ocore's origin) is sandboxed on top, so no script in a mail can run.
The websocket Mailpit's UI uses for live updates is not proxied (the UI
still works, it refreshes on navigation).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

import anyio
import httpx
import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from ocore.core.auth import Authorizer, CurrentPrincipal, Permission
from ocore.core.crypto import SecretBox
from ocore.core.deps import JobSystemDep, LoopbackClientDep, SecretBoxDep
from ocore.core.errors import BadRequest, HostError, NotFound
from ocore.core.loopback import closing_headers
from ocore.core.problems import PROBLEM_RESPONSES
from ocore.core.uow import SessionDep, commit
from ocore.environments.jobs import mail_webroot
from ocore.environments.models import Environment
from ocore.environments.router import EnvironmentDep
from ocore.hosts import SSHPool
from ocore.instances.models import Instance
from ocore.servers.models import Server
from ocore.shares.proxy import HOP_BY_HOP, ProxyResponse, connection_tokens, open_tunnel

log = structlog.get_logger("ocore.environments.mail")

# What Mailpit's UI and API use (PUT: read status and tags).
METHODS = ["GET", "POST", "PUT", "DELETE"]
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
_SAFE_PATH = "/!$&'()*+,;=:@-._~"

_REQUEST_DROP = HOP_BY_HOP | {
    "host",
    "authorization",
    "cookie",
    "content-length",
    "expect",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-real-ip",
    "x-request-id",
}
_RESPONSE_DROP = HOP_BY_HOP | {
    "set-cookie",
    "www-authenticate",
    "location",
    "strict-transport-security",
    "clear-site-data",
    "alt-svc",
}

# Mailpit's paths that serve a message's content rather than Mailpit's own UI.
_MAIL_CONTENT = re.compile(r"view/[^/]+\.(?:html|txt)|api/v1/message/[^/]+/(?:raw|part/.+)")
_SANDBOX = "sandbox allow-same-origin allow-popups allow-popups-to-escape-sandbox"

router = APIRouter(
    prefix="/environments/{id}/mail", tags=["environments"], responses=PROBLEM_RESPONSES
)


class MailCatcherNotFound(NotFound):
    code = "mail_catcher_not_found"
    title = "No mail catcher"


class MailCatcherUnreachable(HostError):
    code = "mail_catcher_unreachable"
    title = "Mail catcher unreachable"


class MailCatcherTimeout(HostError):
    status = 504
    code = "mail_catcher_timeout"
    title = "Mail catcher did not answer in time"


class InvalidMailPath(BadRequest):
    code = "invalid_mail_path"
    title = "Invalid mail catcher path"


@dataclass(frozen=True)
class MailTarget:
    """Where an environment's mail UI is: every field from ocore's records."""

    server: Server
    ui_port: int
    webroot: str


async def mail_target(session: AsyncSession, environment: Environment) -> MailTarget:
    instance = (
        await session.get(Instance, environment.instance_id) if environment.instance_id else None
    )
    if environment.mailpit_port is None or instance is None:
        raise MailCatcherNotFound(
            f"Environment {environment.name} has no mail catcher: only non-production "
            "environments get one, when mailpit is installed on their server."
        )
    server = await session.get(Server, instance.server_id)
    if server is None:
        raise MailCatcherNotFound(f"The server of environment {environment.name} is gone.")
    return MailTarget(server, environment.mailpit_port + 1, mail_webroot(environment.id))


def upstream_path(webroot: str, path: str | None) -> str:
    """Mailpit's path for ``path`` below the proxy's root (None: the root itself, no slash)."""
    if path is None:
        return webroot.rstrip("/")
    if (
        path.startswith("/")
        or "//" in path
        or "\\" in path
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in path)
        or any(segment in (".", "..") for segment in path.split("/"))
    ):
        raise InvalidMailPath("The path must stay below the mail catcher's root.")
    return webroot + quote(path, safe=_SAFE_PATH)


def request_headers(request: Request) -> list[tuple[str, str]]:
    raw = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
    listed = connection_tokens([v for k, v in raw if k.lower() == "connection"])
    headers = [
        (k, v)
        for k, v in raw
        if (name := k.lower()) not in _REQUEST_DROP
        and name not in listed
        and not name.startswith("proxy-")
        and not name.startswith("sec-websocket-")
    ]
    length = request.headers.get("content-length")
    if length is not None and length.isdigit():
        headers.append(("Content-Length", length))
    return headers


def response_headers(
    upstream: httpx.Response, webroot: str, path: str = ""
) -> list[tuple[bytes, bytes]]:
    """Mailpit's headers minus what would act on ocore's origin; ``path``: Mailpit's path."""
    listed = connection_tokens(upstream.headers.get_list("connection"))
    out: list[tuple[str, str]] = []
    for key, value in upstream.headers.multi_items():
        name = key.lower()
        if name in _RESPONSE_DROP or name in listed or name.startswith("proxy-"):
            continue
        if name == "cache-control":
            # Behind ocore's authentication: no shared cache may keep it.
            value = value.replace("public", "private")
        out.append((key, value))
    if "cache-control" not in upstream.headers:
        out.append(("Cache-Control", "private"))
    location = upstream.headers.get("location")
    # Mailpit redirects within its webroot (to the UI, to the latest message);
    # anything else would leave the proxy, so it does not pass.
    if location is not None and (location == webroot.rstrip("/") or location.startswith(webroot)):
        out.append(("Location", location))
    if path.startswith(webroot) and _MAIL_CONTENT.fullmatch(path[len(webroot) :]):
        # A message's own HTML, source or parts: whoever wrote the mail wrote these,
        # and they are served from ocore's origin. No script of theirs may run.
        out += [("Content-Security-Policy", _SANDBOX), ("X-Content-Type-Options", "nosniff")]
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in out]


async def _relay(upstream: httpx.Response) -> AsyncIterator[bytes]:
    # Headers are gone when this fails: aborting the connection is the honest end.
    try:
        async for chunk in upstream.aiter_raw():
            yield chunk
    except httpx.HTTPError as exc:
        log.warning("mail_upstream_broke_off", error=type(exc).__name__)
        raise MailCatcherUnreachable("The mail catcher broke off its answer.") from None


async def forward(
    request: Request,
    target: MailTarget,
    path: str,
    *,
    box: SecretBox,
    pool: SSHPool,
    client: httpx.AsyncClient,
) -> ProxyResponse:
    """Send the request to Mailpit at ``path`` and stream its answer back.

    ``client`` is the app's ``loopback_client``.
    """
    headers = request_headers(request) + closing_headers(target.server.is_local)
    has_body = "content-length" in request.headers or "transfer-encoding" in request.headers
    stack = contextlib.AsyncExitStack()
    try:
        port = await open_tunnel(
            stack,
            target.server,
            box,
            pool,
            target.ui_port,
            unreachable=MailCatcherUnreachable,
            what="the mail catcher's host",
        )
        url = httpx.URL(f"http://127.0.0.1:{port}{path}")
        if request.url.query:
            url = url.copy_with(query=request.url.query.encode("latin-1"))
        outgoing = client.build_request(
            request.method,
            url,
            headers=headers,
            content=request.stream() if has_body else None,
            timeout=httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT),
        )
        try:
            upstream = await client.send(outgoing, stream=True)
        except httpx.TimeoutException:
            raise MailCatcherTimeout("The mail catcher did not answer in time.") from None
        except httpx.HTTPError as exc:
            log.info("mail_upstream_error", error=type(exc).__name__)
            raise MailCatcherUnreachable(
                "The mail catcher is not answering; it may have stopped."
            ) from None
        stack.push_async_callback(upstream.aclose)
        return ProxyResponse(
            _relay(upstream),
            upstream.status_code,
            response_headers(upstream, target.webroot, path),
            stack,
        )
    except BaseException:
        with anyio.CancelScope(shield=True):
            await stack.aclose()
        raise


async def _target(
    environment: EnvironmentDep, principal: CurrentPrincipal, session: SessionDep
) -> MailTarget:
    target = await mail_target(session, environment)
    # Done with the database: the connection goes back before the host is contacted.
    await commit(session)
    return target


TargetDep = Annotated[MailTarget, Depends(_target)]
_DESCRIPTION = (
    "Reverse-proxies to the environment's Mailpit (web UI and its JSON API, e.g. "
    "`api/v1/messages`) through an SSH tunnel. 404 when the environment has no mail "
    "catcher; 502/504 when it does not answer."
)
_RESPONSES: dict[int | str, dict[str, object]] = {200: {"description": "Mailpit's answer"}}


async def mail_root(
    request: Request,
    target: TargetDep,
    box: SecretBoxDep,
    jobs: JobSystemDep,
    client: LoopbackClientDep,
) -> Response:
    path = upstream_path(target.webroot, None)
    return await forward(request, target, path, box=box, pool=jobs.ssh_pool, client=client)


async def mail_path(
    request: Request,
    path: str,
    target: TargetDep,
    box: SecretBoxDep,
    jobs: JobSystemDep,
    client: LoopbackClientDep,
) -> Response:
    path = upstream_path(target.webroot, path)
    return await forward(request, target, path, box=box, pool=jobs.ssh_pool, client=client)


# One route per method: each gets an operation of its own in the OpenAPI document.
# Reading the caught mail is for every member; changing it (delete, mark read) needs
# the permission to manage environments.
for _method in METHODS:
    for _path, _endpoint in (("", mail_root), ("/{path:path}", mail_path)):
        router.add_api_route(
            _path,
            _endpoint,
            methods=[_method],
            dependencies=[]
            if _method == "GET"
            else [Depends(Authorizer(Permission.MANAGE_ENVIRONMENTS))],
            name=f"{_endpoint.__name__}_{_method.lower()}",
            summary="Proxy Mailpit web UI" + ("" if _method == "GET" else f" ({_method})"),
            description=_DESCRIPTION,
            response_class=Response,
            responses=_RESPONSES,
        )
