"""One bus reader per stream: each subscriber gets every event once, in order, whenever it joins."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest

from ocore.core.events import Event, EventBus, InProcessEventBus, RedisEventBus
from ocore.core.fanout import Fanout
from tests.conftest import REDIS_URL


@pytest.fixture(params=["in-process", "redis"])
async def bus(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    event_bus: EventBus = (
        InProcessEventBus() if request.param == "in-process" else RedisEventBus(REDIS_URL)
    )
    yield event_bus
    await event_bus.close()


async def collect(fanout: Fanout, stream: str, after: str, until: int) -> list[int]:
    """The ``n`` of every event received until the one numbered ``until``."""
    seen: list[int] = []
    async with contextlib.aclosing(fanout.subscribe(stream, after, idle_seconds=5)) as batches:
        async for item in batches:
            assert item is not None, f"idle after {seen[-3:]}"
            for batch in item:
                seen += [event.data["n"] for event in batch.events]
            if seen and seen[-1] >= until:
                return seen
    return seen


@pytest.mark.parametrize("history_events", [20_000, 25])
async def test_joining_at_any_time_loses_and_repeats_nothing(
    bus: EventBus, history_events: int
) -> None:
    # With a short history, late joiners read part of their catch-up from the bus.
    stream = f"test:{uuid.uuid4().hex}"
    fanout = Fanout(bus, history_events=history_events)
    ids = await bus.publish_many(stream, [{"n": n} for n in range(50)])
    total = 600

    async def publish() -> None:
        for start in range(50, total, 10):
            await bus.publish_many(stream, [{"n": n} for n in range(start, start + 10)])
            await asyncio.sleep(0.002)

    async def join_later(delay: float, after: str) -> list[int]:
        await asyncio.sleep(delay)
        return await collect(fanout, stream, after, total - 1)

    publisher = asyncio.create_task(publish())
    subscribers = [
        asyncio.create_task(join_later(delay, after))
        for delay in (0, 0.01, 0.03, 0.05, 0.08)
        for after in ("0-0", ids[19])
    ]
    results = await asyncio.wait_for(asyncio.gather(*subscribers), 30)
    await publisher
    for index, seen in enumerate(results):
        first = 0 if index % 2 == 0 else 20
        assert seen == list(range(first, total)), (index, seen[:5], len(seen))
    assert fanout.subscribers(stream) == 0


async def test_one_encoding_per_batch_for_every_subscriber(bus: EventBus) -> None:
    stream = f"test:{uuid.uuid4().hex}"
    fanout = Fanout(bus)
    encoded: list[list[str]] = []
    waiting: set[int] = set()

    def encode(events: list[Event]) -> bytes:
        encoded.append([e.id for e in events])
        return b"".join(e.id.encode() for e in events)

    async def follow(index: int) -> bytes:
        out = b""
        async with contextlib.aclosing(fanout.subscribe(stream, idle_seconds=0.05)) as batches:
            async for item in batches:
                if item is None:  # past its catch-up read: waiting on the shared reader
                    waiting.add(index)
                    continue
                out += b"".join(batch.encoded("ids", encode) for batch in item)
                if any(e.data["n"] == 9 for batch in item for e in batch.events):
                    return out
        return out

    followers = [asyncio.create_task(follow(index)) for index in range(20)]
    while len(waiting) < 20:  # noqa: ASYNC110 - waiting for joins, no event to await
        await asyncio.sleep(0.01)
    ids = await bus.publish_many(stream, [{"n": n} for n in range(10)])
    outputs = await asyncio.wait_for(asyncio.gather(*followers), 10)
    assert set(outputs) == {"".join(ids).encode()}
    # The batches the shared reader read, each encoded once, not once per subscriber.
    assert sorted(i for batch in encoded for i in batch) == sorted(ids)


async def test_a_subscriber_that_falls_behind_is_let_go(bus: EventBus) -> None:
    stream = f"test:{uuid.uuid4().hex}"
    fanout = Fanout(bus, max_pending=2)
    slow = fanout.subscribe(stream, idle_seconds=5)
    fast_seen: list[int] = []

    async def fast() -> None:
        fast_seen.extend(await collect(fanout, stream, "0-0", 4))

    follower = asyncio.create_task(fast())
    first = asyncio.create_task(anext(slow))  # joins, then waits for its first batch
    while fanout.subscribers(stream) < 2:  # noqa: ASYNC110 - waiting for joins, no event to await
        await asyncio.sleep(0.01)
    for n in range(5):
        await bus.publish(stream, {"n": n})
        await asyncio.sleep(0.05)  # one batch each
    await asyncio.wait_for(follower, 10)
    assert fast_seen == [0, 1, 2, 3, 4]
    # The slow one gets what it had room for and then its stream ends.
    received = await first
    assert received is not None
    rest = [item async for item in slow]
    assert sum(len(batch.events) for item in rest if item for batch in item) < 4
    assert fanout.subscribers(stream) == 0
