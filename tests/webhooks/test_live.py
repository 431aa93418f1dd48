"""Over real HTTP (uvicorn on a loopback port): the webhook's own size bound, read as it streams,
and the shipped post-receive hook of a real bare repository notifying ocore on every push."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from ocore.app import create_app
from ocore.core.db import Database
from ocore.git.webhooks import post_receive_hook
from ocore.settings import Settings
from tests.conftest import Tenant
from tests.fixtures.gitrepo import git
from tests.fixtures.http_server import serving
from tests.webhooks.conftest import make_shop

Serve = Callable[..., Awaitable[httpx.AsyncClient]]
LIMIT = 5 * 1024 * 1024  # ocore.git.webhooks.DEFAULT_MAX_PAYLOAD


@pytest.fixture
async def serve(settings: Settings, database: Database) -> AsyncIterator[Serve]:
    """Start ocore (jobs to Redis, no worker) with some settings changed; a client for it."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(**overrides: Any) -> httpx.AsyncClient:
            app = create_app(settings.model_copy(update=overrides))
            app.state.database = database
            port = await stack.enter_async_context(serving(app))
            return await stack.enter_async_context(
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30)
            )

        yield start


async def test_webhook_bound_stops_reading_a_streamed_body(
    serve: Serve, database: Database, tenant: Tenant, tmp_path: Path
) -> None:
    # The app-wide limit raised above the webhook's: the webhook route bounds on its own.
    api = await serve(max_body_bytes=64 * 1024 * 1024)
    shop = await make_shop(api, database, tenant, tmp_path)
    url = f"/api/webhooks/github/{shop.project_id}"
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        # Chunked: no Content-Length, so only counting while reading can catch it.
        nonlocal sent
        for _ in range(3 * LIMIT // 65536):
            sent += 65536
            yield b"x" * 65536

    headers = {"Content-Type": "application/json", "X-GitHub-Event": "push"}
    response = await api.post(url, content=chunks(), headers=headers)
    assert response.status_code == 413, response.text
    assert response.json()["code"] == "payload_too_large"
    assert str(LIMIT) in response.json()["detail"]

    declared = await api.post(url, content=b"x" * (LIMIT + 1), headers=headers)
    assert declared.status_code == 413
    assert "declares" in declared.json()["detail"]
    # A body at the limit is read (and then refused for its signature, not its size).
    at_limit = await api.post(url, content=b" " * LIMIT, headers=headers)
    assert at_limit.status_code == 401


async def test_post_receive_hook_notifies_ocore(
    serve: Serve, database: Database, tenant: Tenant, tmp_path: Path
) -> None:
    api = await serve()
    shop = await make_shop(api, database, tenant, tmp_path)
    await shop.environment("dev", behavior="do_nothing")
    await shop.environment("staging", environment_type="staging", behavior="create_new_build")
    hook = shop.repo.origin / "hooks" / "post-receive"
    hook.write_text(post_receive_hook())
    hook.chmod(0o755)
    secret = tmp_path / "webhook-secret"
    secret.write_text(shop.forge.secret + "\n")
    secret.chmod(0o600)
    base_url = str(api.base_url).rstrip("/")
    git("config", "ocore.webhookUrl", f"{base_url}/api/webhooks/git/{shop.project_id}",
        cwd=shop.repo.origin)  # fmt: skip
    git("config", "ocore.webhookSecretFile", str(secret), cwd=shop.repo.origin)

    # git push waits for the hook, which waits for ocore: push from a thread.
    first = await asyncio.to_thread(shop.commit, "Two commits", push=None)
    second = await asyncio.to_thread(shop.commit, "in one push")

    dev = await shop.get("dev")
    assert (dev["pendingCommitSha"], dev["pendingCommitCount"]) == (second.sha, 2)
    assert dev["lastCommitAuthor"] == "Ada Lovelace"
    [deployment] = await shop.deployments("staging")
    assert (deployment["commitSha"], deployment["triggerType"]) == (second.sha, "webhook")
    assert deployment["commitMessage"] == "in one push"
    assert first.sha != second.sha
