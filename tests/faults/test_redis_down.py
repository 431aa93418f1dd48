"""Redis goes away under a running installation (API + worker) and comes back empty.

Redis only carries dispatches and event streams; the jobs themselves are rows
in PostgreSQL. So with Redis down reads keep working, a new job is accepted
(its row is the outbox), and once Redis is back the job runs, without
restarting anything.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from tests.conftest import Tenant
from tests.faults.conftest import Fleet
from tests.faults.helpers import wait_until
from tests.fixtures.redis_server import RedisServer
from tests.fixtures.sshd import Sshd


async def check_job(fleet: Fleet, tenant: Tenant, server_id: str) -> uuid.UUID:
    """Ask for a check of the server (a job); returns the job's id."""
    started = time.monotonic()
    response = await fleet.api.post(f"/api/servers/{server_id}/check", headers=tenant.headers)
    assert response.status_code == 202, response.text
    assert time.monotonic() - started < 10  # answered, not stuck on the missing Redis
    return uuid.UUID(response.json()["id"])


async def job_status(fleet: Fleet, job_id: uuid.UUID, timeout: float = 60) -> str:
    async def done() -> str | None:
        job = await fleet.job(job_id)
        return job.status if job.status not in ("queued", "running") else None

    result: str = await wait_until(done, f"job {job_id} to finish", timeout=timeout)
    return result


async def test_reads_work_and_new_jobs_wait_while_redis_is_down(
    fleet: Fleet, tenant: Tenant, sshd: Sshd, redis_server: RedisServer
) -> None:
    worker = fleet.start_worker()
    response = await fleet.api.post(
        "/api/servers",
        json={
            "name": "host",
            "host": sshd.host,
            "port": sshd.port,
            "username": sshd.username,
            "privateKey": sshd.client_private_key,
            "baseDir": "/srv/odoo",
        },
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    server_id = response.json()["id"]
    first = await check_job(fleet, tenant, server_id)
    assert await job_status(fleet, first) == "succeeded", fleet.logs()

    redis_server.stop()
    for path in ("/api/servers", f"/api/servers/{server_id}", "/api/jobs", f"/api/jobs/{first}"):
        read = await fleet.api.get(path, headers=tenant.headers)
        assert read.status_code == 200, (path, read.text)
    ready = await fleet.api.get("/api/ready")
    assert ready.status_code == 503
    assert ready.headers["content-type"] == "application/problem+json"
    assert "Redis" in ready.json()["detail"]

    second = await check_job(fleet, tenant, server_id)
    await asyncio.sleep(2)  # several polls and reconciles of the worker
    job = await fleet.job(second)
    assert (job.status, job.dispatched_at) == ("queued", None)  # kept, to be dispatched later

    redis_server.start()  # empty: nothing of the old queue survived
    assert await job_status(fleet, second) == "succeeded", fleet.logs()
    assert worker.alive, worker.log[-3000:]
    server = (await fleet.api.get(f"/api/servers/{server_id}", headers=tenant.headers)).json()
    assert server["status"] == "online"
