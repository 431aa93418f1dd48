"""Prometheus metrics at /metrics and OpenTelemetry traces, seen from outside the app."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from starlette.types import Message

from ocore.app import create_app
from ocore.core.db import Database
from ocore.core.metrics import REGISTRY, counts_subscribers, serve_metrics, track_ssh_pool
from ocore.core.tracing import job_span
from ocore.hosts import SSHPool
from ocore.settings import Settings
from tests.conftest import Tenant
from tests.fixtures.sshd import Sshd, running_sshd
from tests.hosts.helpers import KeyRecorder, make_target
from tests.jobs.conftest import enqueue_noop, free_port, wait_for_job

NOOP = "diagnostics.noop"


def value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels`` (0 if none)."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


async def scrape(client: httpx.AsyncClient) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def scrape_until(
    client: httpx.AsyncClient, name: str, at_least: float, timeout: float = 5, **labels: str
) -> str:
    """Scrape until a counter reaches a value: a job's status is committed just before it counts."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        text = await scrape(client)
        if value(text, name, **labels) >= at_least:
            return text
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{name}{labels} stayed below {at_least}")
        await asyncio.sleep(0.05)


# --- HTTP ------------------------------------------------------------------------------------


async def test_requests_are_counted_by_route_template(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    template = {"method": "GET", "route": "/api/projects/{project_id}", "status": "404"}
    before = await scrape(client)
    missing = [str(uuid.uuid4()) for _ in range(2)]
    for project_id in missing:
        response = await client.get(f"/api/projects/{project_id}", headers=tenant.headers)
        assert response.status_code == 404
    assert (await client.get("/api/projects", headers=tenant.headers)).status_code == 200
    stray = uuid.uuid4().hex
    assert (await client.get(f"/no/such/{stray}")).status_code == 404

    after = await scrape(client)
    counted = "ocore_http_requests_total"
    assert value(after, counted, **template) - value(before, counted, **template) == 2
    listed = {"method": "GET", "route": "/api/projects", "status": "200"}
    assert value(after, counted, **listed) - value(before, counted, **listed) == 1
    unmatched = {"route": "<unmatched>", "status": "404"}
    assert value(after, counted, **unmatched) - value(before, counted, **unmatched) == 1
    timed = "ocore_http_request_duration_seconds_count"
    route = {"method": "GET", "route": "/api/projects/{project_id}"}
    assert value(after, timed, **route) - value(before, timed, **route) == 2
    # Raw paths never become labels: no id, no stray segment.
    for raw in (*missing, stray):
        assert raw not in after


async def test_unknown_methods_share_one_label(client: httpx.AsyncClient) -> None:
    await client.request("BREW", "/api/health")
    text = await scrape(client)
    assert value(text, "ocore_http_requests_total", method="OTHER", route="/api/health") >= 1
    assert 'method="BREW"' not in text


# --- The token -------------------------------------------------------------------------------


@pytest.fixture
async def guarded_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update={"metrics_token": SecretStr("scrape-me-123")}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ocore.test") as c:
        yield c


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", "Bearer scrape-me-1234", "Basic scrape-me-123", "scrape-me-123"],
)
async def test_a_metrics_token_is_required_when_set(
    guarded_client: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = await guarded_client.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["code"] == "unauthorized"
    assert "ocore_http_requests" not in response.text


async def test_the_right_token_gets_the_metrics(guarded_client: httpx.AsyncClient) -> None:
    response = await guarded_client.get(
        "/metrics", headers={"Authorization": "Bearer scrape-me-123"}
    )
    assert response.status_code == 200
    assert "# TYPE ocore_http_requests_total counter" in response.text


async def test_metrics_can_be_switched_off(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"metrics_enabled": False}))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://ocore.test"
    ) as c:
        assert (await c.get("/metrics")).status_code == 404


def test_metrics_stay_out_of_the_api_description(app: FastAPI) -> None:
    assert "/metrics" not in app.openapi()["paths"]


async def test_a_worker_serves_its_metrics_on_its_own_port() -> None:
    port = free_port()
    stop = serve_metrics("127.0.0.1", port, SecretStr("worker-token"))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as c:
            refused = await c.get("/metrics", headers={"Authorization": "Bearer nope"})
            assert refused.status_code == 401
            assert refused.json()["code"] == "unauthorized"
            served = await c.get("/metrics", headers={"Authorization": "Bearer worker-token"})
            assert served.status_code == 200
            assert "ocore_jobs_finished" in served.text
    finally:
        await asyncio.to_thread(stop)


# --- Jobs and streams ------------------------------------------------------------------------


async def test_job_runs_are_counted_by_kind_and_status(
    embedded_app: FastAPI, embedded_client: httpx.AsyncClient, database: Database
) -> None:
    queue = embedded_app.state.jobs.queue
    before = await scrape(embedded_client)
    succeeded = await enqueue_noop(database, queue, sleep=0.1)
    await wait_for_job(database, succeeded, lambda j: j.status == "succeeded")
    # A negative wait is invalid: the job fails for good (no retry for a ValueError).
    failed = await enqueue_noop(database, queue, sleep=-1)
    await wait_for_job(database, failed, lambda j: j.status == "failed")

    finished = "ocore_jobs_finished_total"
    ok = {"kind": NOOP, "status": "succeeded"}
    ko = {"kind": NOOP, "status": "failed"}
    await scrape_until(embedded_client, finished, value(before, finished, **ok) + 1, **ok)
    after = await scrape_until(embedded_client, finished, value(before, finished, **ko) + 1, **ko)
    assert value(after, finished, **ok) - value(before, finished, **ok) == 1
    failures = "ocore_job_failures_total"
    assert value(after, failures, kind=NOOP) - value(before, failures, kind=NOOP) == 1
    runs = "ocore_job_run_duration_seconds_count"
    assert value(after, runs, kind=NOOP) - value(before, runs, kind=NOOP) == 2
    assert str(succeeded) not in after
    assert str(failed) not in after


async def test_an_sse_subscriber_is_counted_while_its_stream_is_open(
    embedded_app: FastAPI, embedded_client: httpx.AsyncClient, database: Database, tenant: Tenant
) -> None:
    job_id = await enqueue_noop(
        database, embedded_app.state.jobs.queue, organization_id=tenant.organization_id
    )
    await wait_for_job(database, job_id, lambda j: j.status == "succeeded")
    gauge = "ocore_sse_subscribers"
    baseline = value(await scrape(embedded_client), gauge, stream="job_events")
    # Driven through ASGI directly: httpx's transport would only return the finished stream.
    during: list[float] = []
    chunks: list[bytes] = []
    headers = [
        (b"host", b"ocore.test"),
        (b"authorization", tenant.headers["Authorization"].encode()),
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": f"/api/jobs/{job_id}/events",
        "raw_path": f"/api/jobs/{job_id}/events".encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("ocore.test", 80),
    }
    requested = False

    async def receive() -> Message:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client stays until the stream ends
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            chunks.append(message["body"])
            during.append(value(await scrape(embedded_client), gauge, stream="job_events"))

    await asyncio.wait_for(embedded_app(scope, receive, send), timeout=20)
    assert b"succeeded" in b"".join(chunks)
    assert during
    assert all(seen == baseline + 1 for seen in during)
    assert value(await scrape(embedded_client), gauge, stream="job_events") == baseline


async def test_the_subscriber_count_falls_when_the_reader_leaves() -> None:
    @counts_subscribers("test_stream")
    async def numbers() -> AsyncIterator[int]:
        for n in range(10):
            yield n

    def live() -> float | None:
        return REGISTRY.get_sample_value("ocore_sse_subscribers", {"stream": "test_stream"})

    stream = numbers()
    assert await anext(stream) == 0
    assert live() == 1
    await stream.aclose()  # type: ignore[attr-defined]
    assert live() == 0


@pytest.fixture(scope="module")
def sshd() -> Iterator[Sshd]:
    with running_sshd() as server:
        yield server


async def test_pooled_ssh_connections_are_reported(sshd: Sshd, client: httpx.AsyncClient) -> None:
    name = "ocore_ssh_pool_connections"
    pool = track_ssh_pool(SSHPool(on_host_key=KeyRecorder(), connect_timeout=5.0))
    baseline = value(await scrape(client), name)
    try:
        await pool.connection(make_target(sshd)).run(["true"])
        assert value(await scrape(client), name) == baseline + 1
    finally:
        await pool.close_all()
    assert value(await scrape(client), name) == baseline


# --- Traces ----------------------------------------------------------------------------------


@pytest.fixture
async def traced(
    settings: Settings, database: Database
) -> AsyncIterator[tuple[httpx.AsyncClient, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = create_app(settings.model_copy(update={"otel_enabled": True}), tracer_provider=provider)
    app.state.database = database
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ocore.test") as c:
            yield c, exporter
    provider.shutdown()


def server_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER]


async def test_a_request_is_traced_under_its_route_template(
    traced: tuple[httpx.AsyncClient, InMemorySpanExporter], tenant: Tenant
) -> None:
    client, exporter = traced
    project_id = str(uuid.uuid4())
    response = await client.get(f"/api/projects/{project_id}?limit=5", headers=tenant.headers)
    assert response.status_code == 404

    [span] = server_spans(exporter)
    assert span.name == "GET /api/projects/{project_id}"
    attributes = dict(span.attributes or {})
    assert attributes["http.route"] == "/api/projects/{project_id}"
    assert attributes.get("http.status_code", attributes.get("http.response.status_code")) == 404
    recorded = repr(attributes) + "".join(repr(dict(e.attributes or {})) for e in span.events)
    assert project_id not in recorded
    assert tenant.owner.token not in recorded
    assert "authorization" not in recorded.lower()


async def test_share_tokens_and_bodies_stay_out_of_spans(
    traced: tuple[httpx.AsyncClient, InMemorySpanExporter],
) -> None:
    client, exporter = traced
    token = "secret-share-token-" + uuid.uuid4().hex
    await client.post(f"/api/share/{token}/login", json={"password": "hunter2-" + token})
    await client.get("/metrics")  # scrapes are not traced

    [span] = server_spans(exporter)
    assert span.name == "POST /api/share/{token}/login"
    everything = "".join(
        repr(dict(s.attributes or {})) + s.name for s in exporter.get_finished_spans()
    )
    assert token not in everything
    assert "hunter2" not in everything


def test_a_job_attempt_gets_a_span() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    job_id = uuid.uuid4()
    with job_span(NOOP, job_id, 2, tracer_provider=provider):
        pass
    [span] = exporter.get_finished_spans()
    assert span.name == f"job {NOOP}"
    assert dict(span.attributes or {}) == {
        "ocore.job.kind": NOOP,
        "ocore.job.id": str(job_id),
        "ocore.job.attempt": 2,
    }
