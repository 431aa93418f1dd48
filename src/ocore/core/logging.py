"""Structured JSON logs and the request context (request id) they carry."""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ocore.core.problems import problem_response
from ocore.settings import Settings

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
# A share link's token is the credential, and it travels in the path.
_SHARE_TOKEN = re.compile(r"^(/api/share/)[^/]+")
access_log = structlog.get_logger("ocore.access")


def loggable_path(path: str) -> str:
    """The request path for logs: share tokens are left out, logs are read by more people."""
    return _SHARE_TOKEN.sub(r"\1<token>", path)


def configure_logging(settings: Settings) -> None:
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if settings.log_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[settings.log_level]
        ),
        # Looked up at each use so a redirected stderr (daemons, tests) is honoured.
        logger_factory=lambda *_: structlog.PrintLogger(sys.stderr),
        cache_logger_on_first_use=False,
    )


class RequestContextMiddleware:
    """Gives each request an id (kept from ``X-Request-ID`` when sane), logs it, bounds bodies."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        offered = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = offered if _REQUEST_ID.match(offered) else uuid.uuid4().hex
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"].append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            declared = int(headers.get(b"content-length", b"0") or 0)
        except ValueError:
            declared = 0
        body_receive = (
            None
            if declared > self.max_body_bytes
            else await _buffered(receive, self.max_body_bytes)
        )
        if body_receive is None:
            response = problem_response(
                413,
                code="payload_too_large",
                title="Payload too large",
                detail=f"Request bodies are limited to {self.max_body_bytes} bytes.",
            )
            await response(scope, receive, send_with_id)
        else:
            await self.app(scope, body_receive, send_with_id)
        access_log.info(
            "request",
            method=scope["method"],
            path=loggable_path(scope["path"]),
            status=status,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )


async def _buffered(receive: Receive, limit: int) -> Receive | None:
    """Read the whole body (bounded), then replay it; None when it exceeds the limit.

    A body without Content-Length is only known to be too large while reading it,
    and by then FastAPI would turn any error into a 400: so read it here first.
    """
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        size += len(message.get("body", b""))
        if size > limit:
            return None
        if not message.get("more_body", False):
            break

    async def replay() -> Message:
        return messages.pop(0) if messages else await receive()

    return replay
