"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from redis.asyncio import Redis
from sqlalchemy import text

from ocore.core.deps import SettingsDep
from ocore.core.errors import ServiceUnavailable
from ocore.core.schemas import Schema
from ocore.core.uow import SessionDep

router = APIRouter(tags=["health"])


class Liveness(Schema):
    status: Literal["ok"]


class Readiness(Schema):
    status: Literal["ready"]
    database: str
    queue: str


@router.get("/health", response_model=Liveness, summary="Liveness")
async def health() -> Liveness:
    return Liveness(status="ok")


@router.get("/ready", response_model=Readiness, summary="Readiness: database and queue reachable")
async def ready(session: SessionDep, settings: SettingsDep) -> Readiness:
    try:
        await session.execute(text("SELECT 1"))
    except Exception as exc:
        raise ServiceUnavailable(f"The database is not reachable: {type(exc).__name__}.") from exc
    queue = "in-process"
    if settings.redis_url:
        redis = Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
        try:
            await redis.ping()
        except Exception as exc:
            raise ServiceUnavailable(f"Redis is not reachable: {type(exc).__name__}.") from exc
        finally:
            await redis.aclose()
        queue = "redis"
    return Readiness(status="ready", database=session.get_bind().dialect.name, queue=queue)
