"""`server.check` over real SSH: first contact pins the host key, a changed key is refused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import Tenant, wait_for_job
from tests.fixtures.sshd import Sshd, running_sshd


@pytest.fixture(scope="module")
def sshd() -> Iterator[Sshd]:
    with running_sshd() as server:
        yield server


async def register(client, tenant: Tenant, sshd: Sshd, **overrides: object) -> dict:
    body = {
        "name": "test-host",
        "host": sshd.host,
        "port": sshd.port,
        "username": sshd.username,
        "privateKey": sshd.client_private_key,
        **overrides,
    }
    response = await client.post("/api/servers", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def check(client, tenant: Tenant, server_id: str) -> dict:
    response = await client.post(f"/api/servers/{server_id}/check", headers=tenant.headers)
    assert response.status_code == 202, response.text
    assert response.json()["kind"] == "server.check"
    return await wait_for_job(client, tenant.headers, response.json()["id"])


async def test_first_contact_pins_and_a_changed_key_is_refused(
    embedded_client, tenant: Tenant, sshd: Sshd
) -> None:
    server = await register(embedded_client, tenant, sshd)
    assert server["hostKeyFingerprint"] is None

    job = await check(embedded_client, tenant, server["id"])
    assert job["status"] == "succeeded", job
    output = job["steps"][0]["output"]
    assert "Linux" in output
    assert "psql: found" in output
    assert "setpriv: found" in output
    server = (
        await embedded_client.get(f"/api/servers/{server['id']}", headers=tenant.headers)
    ).json()
    assert server["status"] == "online"
    assert server["lastSeenAt"] is not None
    assert server["hostKeyFingerprint"] == sshd.host_fingerprint

    old_fingerprint = sshd.host_fingerprint
    sshd.restart(new_host_key=True)
    try:
        job = await check(embedded_client, tenant, server["id"])
        assert job["status"] == "failed"
        assert "host key" in job["error"].lower()
        server = (
            await embedded_client.get(f"/api/servers/{server['id']}", headers=tenant.headers)
        ).json()
        assert server["status"] == "unreachable"
        assert "host key" in server["statusMessage"].lower()
        # The pinned key is kept: a changed key is never accepted silently.
        assert server["hostKeyFingerprint"] == old_fingerprint
    finally:
        sshd.restart()


async def test_unreachable_server(embedded_client, tenant: Tenant, sshd: Sshd) -> None:
    from tests.fixtures.sshd import free_port

    server = await register(embedded_client, tenant, sshd, name="nowhere", port=free_port())
    job = await check(embedded_client, tenant, server["id"])
    assert job["status"] == "failed"
    server = (
        await embedded_client.get(f"/api/servers/{server['id']}", headers=tenant.headers)
    ).json()
    assert server["status"] == "unreachable"
    assert server["statusMessage"]


async def test_a_second_check_while_one_runs_conflicts(client, tenant: Tenant, sshd: Sshd) -> None:
    # The app under `client` dispatches to Redis with no worker: the first check stays queued.
    server = await register(client, tenant, sshd)
    first = await client.post(f"/api/servers/{server['id']}/check", headers=tenant.headers)
    assert first.status_code == 202
    second = await client.post(f"/api/servers/{server['id']}/check", headers=tenant.headers)
    assert second.status_code == 409
    assert second.json()["code"] == "conflict"
