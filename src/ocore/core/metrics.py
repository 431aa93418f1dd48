"""Prometheus metrics: HTTP requests, jobs, SSE subscribers, pooled SSH connections.

One registry per process (``REGISTRY``), not prometheus-client's global one, so
that what ``/metrics`` shows is exactly what ocore defines. Metric objects are
created once at import: several apps in one process (tests) share them, and
every process (API replica, ``ocore worker``) exposes its own numbers, to be
scraped one by one, which is the Prometheus model.

Label values are bounded: a route's path template, never the raw path (which
carries ids and share tokens); a job's kind; a fixed method set.
"""

from __future__ import annotations

import contextlib
import functools
import hmac
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIEnvironment

from fastapi import FastAPI, Request, Response
from fastapi.routing import iter_route_contexts
from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    make_wsgi_app,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from pydantic import SecretStr
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ocore.core.errors import Unauthorized
from ocore.core.problems import problem_response

if TYPE_CHECKING:
    from ocore.hosts import SSHPool
    from ocore.settings import Settings

P = ParamSpec("P")
T = TypeVar("T")

UNMATCHED = "<unmatched>"
# Anything else a client sends as a method is one label value, not a new series each.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Jobs run from well under a second (noop) to an hour (a big database copy).
_JOB_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

HTTP_REQUESTS = Counter(
    "ocore_http_requests",
    "HTTP requests by method, route template and status code.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_DURATION = Histogram(
    "ocore_http_request_duration_seconds",
    "Time from a request's arrival to its response headers (streams: to their start).",
    ["method", "route"],
    registry=REGISTRY,
)
JOBS_FINISHED = Counter(
    "ocore_jobs_finished",
    "Jobs this process's runner finished, by kind and final status.",
    ["kind", "status"],
    registry=REGISTRY,
)
JOB_FAILURES = Counter(
    "ocore_job_failures",
    "Jobs that finished failed (retries exhausted or not retryable), by kind.",
    ["kind"],
    registry=REGISTRY,
)
JOB_DURATION = Histogram(
    "ocore_job_run_duration_seconds",
    "Run time of each job attempt, whatever its outcome, by kind.",
    ["kind"],
    buckets=_JOB_BUCKETS,
    registry=REGISTRY,
)
SSE_SUBSCRIBERS = Gauge(
    "ocore_sse_subscribers",
    "Live server-sent-event subscriptions, by stream.",
    ["stream"],
    registry=REGISTRY,
)


# --- HTTP ----------------------------------------------------------------------------------


class _RouteTemplates:
    """Full path templates of an app's routes.

    FastAPI keeps included routers nested: the route it records in the scope
    knows only its path inside its own router, so the full template comes from
    the app's flattened route contexts.
    """

    def __init__(self, app: Any) -> None:
        self._contexts = list(iter_route_contexts(app.routes))
        templates: dict[int, str | None] = {}
        for context in self._contexts:
            key, template = id(context.original_route), context.path_format
            # A router included twice has one route object under two templates.
            templates[key] = template if templates.get(key, template) == template else None
        self._by_route = templates

    def of(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is not None and (known := self._by_route.get(id(route))):
            return known
        # Unrouted answers (404, 405, the docs pages): match as the router did.
        partial: str | None = None
        for context in self._contexts:
            match, _ = context.matches(scope)
            if match is Match.FULL:
                return str(context.path_format)
            if match is Match.PARTIAL and partial is None:
                partial = str(context.path_format)
        return partial or UNMATCHED


class MetricsMiddleware:
    """Counts and times HTTP requests (a pure ASGI middleware: streams are not buffered).

    A request is recorded once, when its response starts: a server-sent-event
    stream counts when it opens, and its duration is the time to its headers,
    not how long the client stayed. A request that fails before any response
    counts as 500. Websockets are not recorded.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._templates: _RouteTemplates | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        recorded = False

        def record(status: int) -> None:
            nonlocal recorded
            recorded = True
            if self._templates is None:
                # Built at the first request, when every route has been added.
                self._templates = _RouteTemplates(scope["app"])
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            route = self._templates.of(scope)
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_DURATION.labels(method, route).observe(time.perf_counter() - started)

        async def send_recording(message: Message) -> None:
            if message["type"] == "http.response.start" and not recorded:
                record(int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, send_recording)
        finally:
            if not recorded:
                record(500)


# --- Jobs and streams ----------------------------------------------------------------------


def record_job_finished(kind: str, status: str) -> None:
    JOBS_FINISHED.labels(kind, status).inc()
    if status == "failed":
        JOB_FAILURES.labels(kind).inc()


@contextlib.contextmanager
def time_job(kind: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        JOB_DURATION.labels(kind).observe(time.perf_counter() - started)


def counts_subscribers(
    stream: str,
) -> Callable[[Callable[P, AsyncIterator[T]]], Callable[P, AsyncIterator[T]]]:
    """Count the live subscriptions of an SSE generator in ``ocore_sse_subscribers``.

    The count rises when the response starts iterating and falls however the
    iteration ends (the stream completes, the client leaves, the server stops).
    """
    gauge = SSE_SUBSCRIBERS.labels(stream)

    def decorate(produce: Callable[P, AsyncIterator[T]]) -> Callable[P, AsyncIterator[T]]:
        @functools.wraps(produce)
        async def counted(*args: P.args, **kwargs: P.kwargs) -> AsyncIterator[T]:
            items = produce(*args, **kwargs)
            gauge.inc()
            try:
                async for item in items:
                    yield item
            finally:
                gauge.dec()
                # The subscription inside must end now, not whenever it is collected.
                close = getattr(items, "aclose", None)
                if close is not None:
                    await close()

        return counted

    return decorate


# --- SSH pools -----------------------------------------------------------------------------

_ssh_pools: weakref.WeakSet[SSHPool] = weakref.WeakSet()


def track_ssh_pool(pool: SSHPool) -> SSHPool:
    """Report the pool's open connections in ``ocore_ssh_pool_connections`` while it lives."""
    _ssh_pools.add(pool)
    return pool


class _SSHPoolCollector:
    """Reads the live pools at each scrape: nothing to keep in step, nothing to drift."""

    def describe(self) -> Iterable[Metric]:
        yield self._family()

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        family.add_metric([], sum(pool.open_connections for pool in list(_ssh_pools)))
        yield family

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "ocore_ssh_pool_connections", "Open pooled SSH connections to hosts."
        )


REGISTRY.register(_SSHPoolCollector())


# --- Exposition ----------------------------------------------------------------------------


def _bearer_matches(authorization: str | None, token: SecretStr) -> bool:
    scheme, _, presented = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        presented.strip().encode(), token.get_secret_value().encode()
    )


def install_metrics(app: FastAPI, settings: Settings) -> None:
    """Add the middleware and ``GET /metrics``; call it last, so that it sees every request."""
    if not settings.metrics_enabled:
        return
    token = settings.metrics_token

    async def metrics(request: Request) -> Response:
        if token is not None and not _bearer_matches(request.headers.get("authorization"), token):
            raise Unauthorized("The metrics endpoint needs its bearer token.")
        # Rendered on the event loop: the SSH pool collector reads loop-owned state.
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_PLAIN_0_0_4)

    # Outside the OpenAPI document: it is for Prometheus, not API clients.
    app.add_api_route("/metrics", metrics, methods=["GET"], include_in_schema=False)
    app.add_middleware(MetricsMiddleware)


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not worth a log line each."""


def serve_metrics(host: str, port: int, token: SecretStr | None) -> Callable[[], None]:
    """Serve the registry over HTTP from a thread, for a process without the API.

    ``ocore worker`` runs jobs but no web server; this is its ``/metrics``
    (any path answers). Returns the function that stops it.
    """
    exposition = make_wsgi_app(REGISTRY)

    def guarded(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if token is not None and not _bearer_matches(environ.get("HTTP_AUTHORIZATION"), token):
            refusal = problem_response(
                Unauthorized.status,
                code=Unauthorized.code,
                title=Unauthorized.title,
                detail="The metrics endpoint needs its bearer token.",
                headers={"WWW-Authenticate": "Bearer"},
            )
            start_response("401 Unauthorized", list(refusal.headers.items()))
            return [bytes(refusal.body)]
        body: Iterable[bytes] = exposition(environ, start_response)
        return body

    server = make_server(host, port, guarded, _ThreadingServer, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="ocore-metrics", daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join()

    return stop
