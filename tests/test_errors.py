"""Conventions every route shares: problem+json errors, request ids, probes, body limits."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter

from ocore.app import create_app
from ocore.core.db import Database
from ocore.settings import Settings
from tests.conftest import Tenant


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"urn:ocore:problem:{code}"
    assert body["title"]
    assert body["detail"]
    return body


async def test_unknown_route_and_method(client, tenant: Tenant) -> None:
    body = assert_problem(await client.get("/api/nothing-here"), 404, "not_found")
    assert "/api/nothing-here" in str(body["detail"])
    assert_problem(
        await client.patch("/api/projects", headers=tenant.headers), 405, "method_not_allowed"
    )


async def test_request_id_is_kept_or_made(client) -> None:
    response = await client.get("/api/health", headers={"X-Request-ID": "ci-run-42.step_1"})
    assert response.headers["x-request-id"] == "ci-run-42.step_1"
    response = await client.get("/api/health", headers={"X-Request-ID": "bad id\twith spaces"})
    assert response.headers["x-request-id"] != "bad id\twith spaces"
    assert len(response.headers["x-request-id"]) == 32
    other = await client.get("/api/health")
    assert other.headers["x-request-id"] != response.headers["x-request-id"]


async def test_request_log_line_is_json_with_request_id(client, capsys) -> None:
    import json

    await client.get("/api/health", headers={"X-Request-ID": "trace-me"})
    lines = [
        json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")
    ]
    access = [
        line
        for line in lines
        if line.get("event") == "request" and line.get("request_id") == "trace-me"
    ]
    assert access, lines
    assert access[0]["status"] == 200
    assert access[0]["path"] == "/api/health"


async def test_oversized_body_is_413(client, tenant: Tenant) -> None:
    big = b'{"name": "' + b"x" * (17 * 1024 * 1024) + b'"}'
    response = await client.post(
        "/api/projects", content=big, headers={**tenant.headers, "content-type": "application/json"}
    )
    assert_problem(response, 413, "payload_too_large")

    async def chunks():
        for _ in range(20):
            yield b"x" * (1024 * 1024)

    response = await client.post(
        "/api/projects",
        content=chunks(),
        headers={**tenant.headers, "content-type": "application/json"},
    )
    assert_problem(response, 413, "payload_too_large")


async def test_unexpected_error_is_500_without_a_stack_trace(
    settings: Settings, database: Database
) -> None:
    app = create_app(settings)
    app.state.database = database
    probe = APIRouter()

    @probe.get("/api/test-only/explode")
    async def explode() -> None:
        raise RuntimeError("secret internals: password=hunter2")

    app.include_router(probe)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/api/test-only/explode")
    body = assert_problem(response, 500, "internal_error")
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text
    assert "RuntimeError" not in str(body)


async def test_liveness_and_readiness(client) -> None:
    assert (await client.get("/api/health")).json() == {"status": "ok"}
    response = await client.get("/api/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "database": "postgresql", "queue": "redis"}


async def test_readiness_fails_when_redis_is_unreachable(
    settings: Settings, database: Database
) -> None:
    app = create_app(settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    app.state.database = database
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/api/ready")
    body = assert_problem(response, 503, "service_unavailable")
    assert "Redis" in str(body["detail"])


async def test_readiness_fails_when_the_database_is_unreachable(settings: Settings) -> None:
    url = "postgresql+asyncpg://ocore_test:ocore_test@127.0.0.1:1/nothing"
    app = create_app(settings.model_copy(update={"database_url": url}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/api/ready")
    assert response.status_code in (500, 503)
    assert response.headers["content-type"] == "application/problem+json"
    await app.state.database.dispose()


@pytest.mark.parametrize("origin", ["https://dash.acme.test"])
async def test_cors_for_configured_dashboards(
    settings: Settings, database: Database, origin
) -> None:
    app = create_app(settings.model_copy(update={"cors_origins": [origin]}))
    app.state.database = database
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        preflight = await client.options(
            "/api/projects",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "Authorization",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == origin
        stranger = await client.get("/api/health", headers={"Origin": "https://evil.test"})
        assert "access-control-allow-origin" not in stranger.headers


async def test_openapi_served(client) -> None:
    spec = (await client.get("/api/openapi.json")).json()
    assert "/api/projects" in spec["paths"]
    assert (await client.get("/api/docs")).status_code == 200
