"""The job engine end to end: embedded runner, arq workers on real Redis, crashes and outages."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket

import httpx
import pytest
from sqlalchemy import func, select

from ocore.core.db import Database
from ocore.core.errors import Conflict
from ocore.core.uow import commit
from ocore.jobs import engine
from ocore.jobs.models import Job, JobStep
from ocore.jobs.queue import ArqQueue
from ocore.jobs.runtime import JobSystem
from ocore.settings import Settings
from tests.conftest import Tenant
from tests.jobs.conftest import enqueue_noop, wait_for_job


async def test_embedded_job_runs_and_records_steps(embedded: JobSystem, database: Database) -> None:
    job_id = await enqueue_noop(database, embedded.queue, sleep=0.2)
    job = await wait_for_job(database, job_id, lambda j: j.status == "succeeded")
    assert job.attempt == 1
    assert job.error is None
    assert job.finished_at is not None
    async with database.sessionmaker() as session:
        steps = (await session.scalars(select(JobStep).where(JobStep.job_id == job_id))).all()
    assert [(s.name, s.status) for s in steps] == [("wait", "succeeded")]
    assert steps[0].output.splitlines() == ["waiting 0.2s (attempt 1)", "done"]
    assert steps[0].duration_ms is not None
    assert steps[0].duration_ms >= 200


async def test_rollback_drops_the_job_and_its_dispatch(
    embedded: JobSystem, database: Database
) -> None:
    async with database.sessionmaker() as session:
        await engine.enqueue(
            session,
            embedded.queue,
            database,
            kind="diagnostics.noop",
            target_type="diagnostics",
            target_id=None,
            organization_id=None,
        )
        await session.rollback()
    await asyncio.sleep(0.3)
    async with database.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Job)) == 0


async def test_one_active_job_per_lock(embedded: JobSystem, database: Database) -> None:
    first = await enqueue_noop(database, embedded.queue, sleep=0.5, lock_key="instance:x")
    with pytest.raises(Conflict, match="already queued or running"):
        await enqueue_noop(database, embedded.queue, lock_key="instance:x")
    # Another resource is not blocked.
    await enqueue_noop(database, embedded.queue, lock_key="instance:y")
    await wait_for_job(database, first, lambda j: j.status == "succeeded")
    later = await enqueue_noop(database, embedded.queue, lock_key="instance:x")
    await wait_for_job(database, later, lambda j: j.status == "succeeded")


async def test_a_duplicate_dispatch_runs_the_job_once(
    embedded: JobSystem, database: Database
) -> None:
    job_id = await enqueue_noop(database, embedded.queue, sleep=0.3)
    assert embedded.runner is not None
    await asyncio.gather(embedded.runner.run(job_id), embedded.runner.run(job_id))
    job = await wait_for_job(database, job_id, lambda j: j.status == "succeeded")
    assert job.attempt == 1
    async with database.sessionmaker() as session:
        steps = await session.scalar(select(func.count()).where(JobStep.job_id == job_id))
    assert steps == 1


async def test_cancel_a_running_job(embedded: JobSystem, database: Database) -> None:
    job_id = await enqueue_noop(database, embedded.queue, sleep=30)
    await wait_for_job(database, job_id, lambda j: j.status == "running")
    async with database.sessionmaker() as session:
        job = await session.get(Job, job_id)
        assert job is not None
        await engine.request_cancel(session, job)
        await commit(session)
    job = await wait_for_job(database, job_id, lambda j: j.status == "cancelled", timeout=5)
    assert job.error == "Cancelled on request."
    async with database.sessionmaker() as session:
        step = await session.scalar(select(JobStep).where(JobStep.job_id == job_id))
    assert step is not None
    assert step.status == "failed"


async def test_jobs_api_lists_shows_cancels_and_streams(
    client, tenant: Tenant, other_tenant: Tenant, settings: Settings, database: Database, app
) -> None:
    # The app's own queue is arq (tests run the production stack), with no worker here:
    # the job waits in the queue, so it can be cancelled while queued.
    job_id = await enqueue_noop(
        database, app.state.jobs.queue, organization_id=tenant.organization_id
    )
    listing = (await client.get("/api/jobs", headers=tenant.headers)).json()
    assert [j["id"] for j in listing["jobs"]] == [str(job_id)]
    assert (await client.get("/api/jobs", headers=other_tenant.headers)).json()["total"] == 0
    detail = (await client.get(f"/api/jobs/{job_id}", headers=tenant.headers)).json()
    assert detail["status"] == "queued"
    assert detail["steps"] == []
    for method, path in (("GET", f"/api/jobs/{job_id}"), ("POST", f"/api/jobs/{job_id}/cancel")):
        response = await client.request(method, path, headers=other_tenant.headers)
        assert response.status_code == 404
    response = await client.post(f"/api/jobs/{job_id}/cancel", headers=tenant.headers)
    assert response.status_code == 202
    assert response.json()["status"] == "cancelled"
    response = await client.post(f"/api/jobs/{job_id}/cancel", headers=tenant.headers)
    assert response.status_code == 409
    # The event stream of a finished job replays what there is and ends.
    response = await client.get(f"/api/jobs/{job_id}/events", headers=tenant.headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    response = await client.get(
        f"/api/jobs/{job_id}/events", headers={**tenant.headers, "Last-Event-ID": "garbage"}
    )
    assert response.status_code == 422


async def test_sse_streams_a_live_job_and_resumes(
    embedded: JobSystem, database: Database, tenant: Tenant, settings: Settings
) -> None:
    from ocore.app import create_app

    app = create_app(settings.model_copy(update={"redis_url": None}))
    app.state.database = database
    app.state.jobs = embedded
    transport = httpx.ASGITransport(app=app)
    job_id = await enqueue_noop(
        database, embedded.queue, sleep=0.5, organization_id=tenant.organization_id
    )
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get(f"/api/jobs/{job_id}/events", headers=tenant.headers)
    events = parse_sse(response.text)
    kinds = [(e["event"], json.loads(e["data"]).get("status")) for e in events]
    assert kinds[0] == ("status", "running")
    assert ("step", "running") in kinds
    assert kinds[-1] == ("status", "succeeded")
    logs = [json.loads(e["data"]) for e in events if e["event"] == "log"]
    assert [line for e in logs for line in e["lines"]] == ["waiting 0.5s (attempt 1)", "done"]
    # Resuming after the third event gives exactly the rest.
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        resumed = await client.get(
            f"/api/jobs/{job_id}/events",
            headers={**tenant.headers, "Last-Event-ID": events[2]["id"]},
        )
    assert [e["id"] for e in parse_sse(resumed.text)] == [e["id"] for e in events[3:]]


def parse_sse(text: str) -> list[dict[str, str]]:
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line and not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = value.lstrip(" ")
        if "data" in fields:
            events.append(fields)
    return events


async def test_killed_worker_job_finishes_on_another(
    settings: Settings, database: Database, workers, private_redis
) -> None:
    pool = workers(private_redis.url)
    processes = pool.start(2)
    queue = ArqQueue(private_redis.url, settings.queue_name)
    try:
        job_id = await enqueue_noop(database, queue, sleep=4)
        job = await wait_for_job(database, job_id, lambda j: j.status == "running")
        first_worker = job.worker_id
        assert first_worker is not None
        pid = int(first_worker.rsplit(":", 1)[1])
        assert pid in {p.pid for p in processes}
        os.kill(pid, signal.SIGKILL)
        job = await wait_for_job(database, job_id, lambda j: j.status == "succeeded", timeout=30)
        assert job.attempt == 2
        assert job.worker_id != first_worker
        assert job.worker_id is not None
        assert job.worker_id.endswith(f":{next(p.pid for p in processes if p.pid != pid)}")
    finally:
        await queue.close()


async def test_no_job_is_lost_while_redis_is_down(
    settings: Settings, database: Database, workers, private_redis
) -> None:
    queue = ArqQueue(private_redis.url, settings.queue_name)
    try:
        private_redis.stop()
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", private_redis.port)) != 0
        job_id = await enqueue_noop(database, queue)
        async with database.sessionmaker() as session:
            job = await session.get(Job, job_id)
        assert job is not None
        assert job.status == "queued"
        assert job.dispatched_at is None  # committed, not dispatched: the outbox holds it
        private_redis.start()
        workers(private_redis.url).start(1)  # its reconciler dispatches what was waiting
        job = await wait_for_job(database, job_id, lambda j: j.status == "succeeded", timeout=30)
        assert job.dispatched_at is not None
        assert job.attempt == 1
    finally:
        await queue.close()


async def test_reconciler_fails_a_job_out_of_attempts(
    settings: Settings, database: Database
) -> None:
    from datetime import timedelta

    from ocore.core.db import utcnow
    from ocore.core.events import InProcessEventBus
    from ocore.hosts import SSHPool
    from ocore.jobs.queue import InProcessQueue

    async with database.sessionmaker() as session:
        job = Job(
            kind="diagnostics.noop",
            target_type="diagnostics",
            status="running",
            attempt=3,
            max_attempts=3,
            worker_id="gone:1",
            lease_expires_at=utcnow() - timedelta(seconds=5),
        )
        session.add(job)
        await session.commit()
    queue = InProcessQueue(1)
    result = await engine.reconcile(database, queue, InProcessEventBus(), settings, SSHPool())
    assert result["failed"] == 1
    async with database.sessionmaker() as session:
        failed = await session.get(Job, job.id)
    assert failed is not None
    assert failed.status == "failed"
    assert "stopped responding" in (failed.error or "")


async def test_reconciler_repairs_resources_whose_job_was_lost(
    settings: Settings, database: Database, tenant
) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from ocore.core.db import utcnow
    from ocore.core.events import InProcessEventBus
    from ocore.hosts import SSHPool
    from ocore.instances.models import Instance
    from ocore.jobs.queue import InProcessQueue
    from tests.factories import make_instance

    lost = await make_instance(database, tenant, "lost-one", status="provisioning")
    busy = await make_instance(database, tenant, "busy-one", status="provisioning")
    await make_instance(database, tenant, "fresh-one", status="provisioning")
    long_ago = utcnow() - timedelta(hours=2)
    async with database.sessionmaker() as session:
        await session.execute(
            update(Instance).where(Instance.id.in_([lost.id, busy.id])).values(updated_at=long_ago)
        )
        session.add(
            Job(
                kind="instance.provision",
                target_type="instance",
                target_id=busy.id,
                status="running",
                worker_id="alive:1",
                lease_expires_at=utcnow() + timedelta(minutes=5),
            )
        )
        await session.commit()
    result = await engine.reconcile(
        database, InProcessQueue(1), InProcessEventBus(), settings, SSHPool()
    )
    assert result["orphans"] == 1
    async with database.sessionmaker() as session:
        statuses = {
            i.slug: (i.status, i.status_message)
            for i in (await session.scalars(select(Instance))).all()
        }
    assert statuses["lost-one"][0] == "error"
    assert "was lost" in (statuses["lost-one"][1] or "")
    assert statuses["busy-one"][0] == "provisioning"
    assert statuses["fresh-one"][0] == "provisioning"
