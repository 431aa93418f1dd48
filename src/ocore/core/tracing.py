"""OpenTelemetry traces, off unless ``OCORE_OTEL_ENABLED`` is set.

Requests are traced by opentelemetry-instrumentation-fastapi, one span per
job attempt by ``job_span``. Spans go over OTLP/HTTP to
``OCORE_OTEL_EXPORTER_OTLP_ENDPOINT``, or, when that is unset, wherever the
standard ``OTEL_EXPORTER_OTLP_*`` variables say (``http://localhost:4318``
by default).

What spans never hold: request or response bodies, credentials in headers
(none are captured unless an operator opts in through the standard variable,
and then secret-looking ones are redacted), and the raw URL: its path carries
ids and share tokens, so it is replaced by the route template.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind
from opentelemetry.util.http import (
    OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS,
    get_custom_headers,
)

from ocore import __version__
from ocore.settings import Settings

# Scrapes and probes every few seconds would drown the requests worth seeing.
_DEFAULT_EXCLUDED_URLS = "/metrics$,/api/health$,/api/ready$"
# Regexes searched in header names: their values are redacted if ever captured.
_SECRET_HEADERS = ["authorization", "cookie", "token", "signature", "secret", "api-key"]
_UNMATCHED = "<unmatched>"


def build_tracer_provider(settings: Settings) -> TracerProvider:
    resource = Resource.create(
        {"service.name": settings.otel_service_name, "service.version": __version__}
    )
    provider = TracerProvider(resource=resource)
    exporter = OTLPSpanExporter(endpoint=_traces_endpoint(settings.otel_exporter_otlp_endpoint))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _traces_endpoint(base: str | None) -> str | None:
    """Like ``OTEL_EXPORTER_OTLP_ENDPOINT``, a base URL: the traces path is added to it."""
    if base is None:
        return None  # the exporter then reads the OTEL_ variables
    base = base.rstrip("/")
    return base if base.endswith("/v1/traces") else f"{base}/v1/traces"


def start_tracing(settings: Settings) -> TracerProvider | None:
    """The process's provider, made global (job spans use it); None when tracing is off.

    The caller shuts it down at exit, which exports the spans still batched.
    """
    if not settings.otel_enabled:
        return None
    provider = build_tracer_provider(settings)
    trace.set_tracer_provider(provider)
    return provider


def setup_tracing(
    app: FastAPI, settings: Settings, provider: TracerProvider | None = None
) -> TracerProvider | None:
    """Trace the app's requests when the settings say so.

    ``provider`` replaces the one built from the settings (tests, embedding
    applications); its owner shuts it down. Returns the provider built here,
    which the app shuts down with its lifespan.
    """
    if not settings.otel_enabled:
        return None
    owned = start_tracing(settings) if provider is None else None
    instrument_app(app, provider or owned)
    return owned


def instrument_app(app: FastAPI, provider: TracerProvider | None) -> None:
    env_excluded = os.environ.get("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS") or os.environ.get(
        "OTEL_PYTHON_EXCLUDED_URLS"
    )
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=provider,
        server_request_hook=_hide_raw_url,
        excluded_urls=None if env_excluded else _DEFAULT_EXCLUDED_URLS,
        http_capture_headers_sanitize_fields=[
            *_SECRET_HEADERS,
            *get_custom_headers(OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS),
        ],
        # A span per ASGI message would be one per SSE event on a build log stream.
        exclude_spans=["receive", "send"],
    )


def _hide_raw_url(span: Span, scope: dict[str, Any]) -> None:
    """Put the route template where the instrumentation wrote the raw path and query."""
    attributes = getattr(span, "attributes", None)
    if not span.is_recording() or attributes is None:
        return
    route = str(attributes.get("http.route") or _UNMATCHED)
    for key in ("http.target", "url.path"):
        if key in attributes:
            span.set_attribute(key, route)
    for key in ("http.url", "url.full"):
        if key in attributes:
            parts = urlsplit(str(attributes[key]))
            span.set_attribute(key, urlunsplit((parts.scheme, parts.netloc, route, "", "")))
    if "url.query" in attributes:
        span.set_attribute("url.query", "REDACTED")


@contextmanager
def job_span(
    kind: str,
    job_id: uuid.UUID,
    attempt: int,
    *,
    tracer_provider: trace.TracerProvider | None = None,
) -> Iterator[Span]:
    """A span around one job attempt (a no-op until a provider is set)."""
    tracer = trace.get_tracer("ocore.jobs", __version__, tracer_provider)
    with tracer.start_as_current_span(
        f"job {kind}",
        kind=SpanKind.CONSUMER,
        attributes={
            "ocore.job.kind": kind,
            "ocore.job.id": str(job_id),
            "ocore.job.attempt": attempt,
        },
    ) as span:
        yield span
