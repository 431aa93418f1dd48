"""The event bus: job step output and status changes, readable from any replica.

Redis Streams in production (a reader resumes from the last id it saw, which is
what SSE's ``Last-Event-ID`` needs); an in-process bus in the embedded default.
Stream ids compare as ``(milliseconds, sequence)`` on both.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from redis.asyncio import Redis

# Enough for a long build log; older lines stay in the step rows.
STREAM_MAX_LENGTH = 20_000
STREAM_TTL_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class Event:
    id: str
    data: dict[str, Any]


class EventBus(Protocol):
    async def publish(self, stream: str, data: dict[str, Any]) -> str: ...

    async def publish_many(self, stream: str, items: list[dict[str, Any]]) -> list[str]:
        """Publish in order, in one round trip where the bus has them."""
        ...

    def subscribe(
        self, stream: str, after: str = "0-0", *, block_ms: int = 15_000
    ) -> AsyncIterator[Event | None]:
        """Events after ``after``, then new ones as they come; None after ``block_ms`` idle."""
        ...

    def subscribe_batches(
        self, stream: str, after: str = "0-0", *, block_ms: int = 15_000
    ) -> AsyncIterator[list[Event] | None]:
        """Like ``subscribe``, but the events available at once come together (one write for
        an SSE reader instead of one per line)."""
        ...

    async def last_id(self, stream: str) -> str:
        """The id of the newest event of ``stream`` ("0-0" when it has none)."""
        ...

    async def read_after(self, stream: str, after: str, until: str = "+") -> list[Event]:
        """The events after ``after`` up to ``until`` (included) there are now, without waiting."""
        ...

    async def close(self) -> None: ...


def parse_event_id(event_id: str) -> tuple[int, int]:
    try:
        ms, _, seq = event_id.partition("-")
        return int(ms), int(seq or 0)
    except ValueError:
        raise ValueError(f"'{event_id}' is not a stream id like 1700000000000-0") from None


class InProcessEventBus:
    def __init__(self) -> None:
        self._streams: dict[str, list[Event]] = {}
        self._changed = asyncio.Condition()
        self._last = (0, 0)

    def _next_id(self) -> str:
        ms = int(time.time() * 1000)
        last_ms, last_seq = self._last
        self._last = (ms, 0) if ms > last_ms else (last_ms, last_seq + 1)
        return f"{self._last[0]}-{self._last[1]}"

    async def publish(self, stream: str, data: dict[str, Any]) -> str:
        return (await self.publish_many(stream, [data]))[0]

    async def publish_many(self, stream: str, items: list[dict[str, Any]]) -> list[str]:
        events = self._streams.setdefault(stream, [])
        fresh = [Event(self._next_id(), data) for data in items]
        events.extend(fresh)
        del events[:-STREAM_MAX_LENGTH]
        async with self._changed:
            self._changed.notify_all()
        return [e.id for e in fresh]

    async def subscribe(
        self, stream: str, after: str = "0-0", *, block_ms: int = 15_000
    ) -> AsyncIterator[Event | None]:
        async for batch in self.subscribe_batches(stream, after, block_ms=block_ms):
            if batch is None:
                yield None
            else:
                for event in batch:
                    yield event

    async def subscribe_batches(
        self, stream: str, after: str = "0-0", *, block_ms: int = 15_000
    ) -> AsyncIterator[list[Event] | None]:
        position = parse_event_id(after)
        while True:
            idle = False
            # Checked under the condition's lock: a publish cannot slip in between.
            async with self._changed:
                fresh = [
                    e for e in self._streams.get(stream, []) if parse_event_id(e.id) > position
                ]
                if not fresh:
                    try:
                        await asyncio.wait_for(self._changed.wait(), block_ms / 1000)
                    except TimeoutError:
                        idle = True
            if fresh:
                yield fresh
                position = parse_event_id(fresh[-1].id)
            elif idle:
                yield None

    async def last_id(self, stream: str) -> str:
        events = self._streams.get(stream)
        return events[-1].id if events else "0-0"

    async def read_after(self, stream: str, after: str, until: str = "+") -> list[Event]:
        position = parse_event_id(after)
        last = (2**63, 0) if until == "+" else parse_event_id(until)
        return [e for e in self._streams.get(stream, []) if position < parse_event_id(e.id) <= last]

    async def close(self) -> None:
        return None


class RedisEventBus:
    def __init__(self, url: str) -> None:
        self._redis = Redis.from_url(url, decode_responses=True)

    async def publish(self, stream: str, data: dict[str, Any]) -> str:
        return (await self.publish_many(stream, [data]))[0]

    async def publish_many(self, stream: str, items: list[dict[str, Any]]) -> list[str]:
        key = f"ocore:events:{stream}"
        async with self._redis.pipeline(transaction=False) as pipe:
            for data in items:
                pipe.xadd(
                    key, {"data": json.dumps(data)}, maxlen=STREAM_MAX_LENGTH, approximate=True
                )
            pipe.expire(key, STREAM_TTL_SECONDS)
            replies = await pipe.execute()
        return [str(event_id) for event_id in replies[:-1]]

    async def subscribe(
        self, stream: str, after: str = "0-0", *, block_ms: int = 15_000
    ) -> AsyncIterator[Event | None]:
        async for batch in self.subscribe_batches(stream, after, block_ms=block_ms):
            if batch is None:
                yield None
            else:
                for event in batch:
                    yield event

    async def subscribe_batches(
        self, stream: str, after: str = "0-0", *, block_ms: int = 15_000
    ) -> AsyncIterator[list[Event] | None]:
        parse_event_id(after)
        key = f"ocore:events:{stream}"
        position = after
        while True:
            reply = await self._redis.xread({key: position}, count=500, block=block_ms)
            if not reply:
                yield None
                continue
            batch = [
                Event(event_id, json.loads(fields["data"]))
                for _, entries in reply
                for event_id, fields in entries
            ]
            position = batch[-1].id
            yield batch

    async def last_id(self, stream: str) -> str:
        newest = await self._redis.xrevrange(f"ocore:events:{stream}", count=1)
        return str(newest[0][0]) if newest else "0-0"

    async def read_after(self, stream: str, after: str, until: str = "+") -> list[Event]:
        parse_event_id(after)
        key = f"ocore:events:{stream}"
        events: list[Event] = []
        while True:
            # "(" makes the start exclusive (Redis 6.2+).
            page = await self._redis.xrange(key, min=f"({after}", max=until, count=1000)
            events += [Event(event_id, json.loads(fields["data"])) for event_id, fields in page]
            if len(page) < 1000:
                return events
            after = page[-1][0]

    async def close(self) -> None:
        await self._redis.aclose()


def create_event_bus(redis_url: str | None) -> EventBus:
    return RedisEventBus(redis_url) if redis_url else InProcessEventBus()
