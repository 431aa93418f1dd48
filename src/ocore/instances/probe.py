"""The health probe: every running instance's ``/web/health``, recorded as history."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from datetime import timedelta

import httpx
import structlog
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ocore.core.crypto import SecretBox
from ocore.core.db import Database, utcnow
from ocore.hosts import SSHPool
from ocore.instances import health
from ocore.instances.hosting import colour_ports
from ocore.instances.models import HealthCheck, Instance
from ocore.jobs.models import Job
from ocore.servers.hosts import connect_server
from ocore.servers.models import Server

log = structlog.get_logger("ocore.health")
PROBE_TIMEOUT = 10.0
HISTORY = timedelta(days=7)
PROBED = ("running", "unhealthy")


async def probe_instances(database: Database, box: SecretBox, pool: SSHPool) -> int:
    """Probe each running (or unhealthy) instance that no job is working on; returns how many."""
    async with database.sessionmaker() as session:
        busy = select(Job.id).where(
            Job.target_id == Instance.id, Job.status.in_(("queued", "running"))
        )
        ids = list(
            (
                await session.scalars(
                    select(Instance.id).where(Instance.status.in_(PROBED), ~busy.exists())
                )
            ).all()
        )
    slots = asyncio.Semaphore(8)

    async def one(instance_id: uuid.UUID) -> None:
        async with slots:
            try:
                await probe_instance(database, box, pool, instance_id)
            except Exception:
                log.exception("probe_failed", instance_id=str(instance_id))

    await asyncio.gather(*(one(i) for i in ids))
    async with database.sessionmaker() as session:
        await session.execute(
            delete(HealthCheck).where(HealthCheck.checked_at < utcnow() - HISTORY)
        )
        await session.commit()
    return len(ids)


async def _check(
    instance: Instance, server: Server, box: SecretBox, pool: SSHPool
) -> tuple[bool, int | None, str]:
    port = colour_ports(instance)["green" if instance.active_color == "green" else "blue"].http
    started = time.perf_counter()
    try:
        host = connect_server(server, box, pool)
        async with (
            host.open_tunnel("127.0.0.1", port) as local,
            httpx.AsyncClient(timeout=PROBE_TIMEOUT, trust_env=False) as client,
        ):
            response = await client.get(f"http://127.0.0.1:{local}/web/health")
    except Exception as exc:
        return False, None, f"{type(exc).__name__}: {getattr(exc, 'detail', exc)}"[:500]
    elapsed = int((time.perf_counter() - started) * 1000)
    passes = response.status_code == 200 and '"pass"' in response.text
    return passes, elapsed, f"HTTP {response.status_code}"


async def probe_instance(
    database: Database, box: SecretBox, pool: SSHPool, instance_id: uuid.UUID
) -> bool:
    async with database.sessionmaker() as session:
        instance = await session.get(Instance, instance_id)
        server = await session.get(Server, instance.server_id) if instance else None
    if instance is None or server is None:
        return False
    ok, response_ms, detail = await _check(instance, server, box, pool)
    now = utcnow()
    async with database.sessionmaker() as session:
        session.add(
            HealthCheck(
                organization_id=instance.organization_id,
                instance_id=instance.id,
                checked_at=now,
                ok=ok,
                response_ms=response_ms,
                detail=detail,
            )
        )
        await session.flush()
        stats = await history_stats(session, instance.id)
        values: dict[str, object] = (
            {"status": "running", "status_message": None, "last_seen_at": now}
            if ok
            else {"status": "unhealthy", "status_message": f"Health check failed: {detail}"}
        )
        instance.status = str(values["status"])
        instance.last_seen_at = now if ok else instance.last_seen_at
        score, grade, _ = health.compute(instance, stats, now)
        values.update(health_score=score, health_score_grade=grade, health_score_updated_at=now)
        # Only while nothing else changed the status meanwhile (a deploy, a stop).
        await session.execute(
            update(Instance)
            .where(Instance.id == instance.id, Instance.status.in_(PROBED))
            .values(**values)
        )
        await session.commit()
    return ok


async def history_stats(session: AsyncSession, instance_id: uuid.UUID) -> health.History:
    since = utcnow() - timedelta(hours=24)
    rows = (
        await session.execute(
            select(HealthCheck.ok, HealthCheck.response_ms).where(
                HealthCheck.instance_id == instance_id, HealthCheck.checked_at >= since
            )
        )
    ).all()
    times = [r.response_ms for r in rows if r.response_ms is not None]
    return health.History(
        checks=len(rows),
        passed=sum(1 for r in rows if r.ok),
        median_ms=int(statistics.median(times)) if times else None,
    )
