"""Both event buses keep order, resume after an id, and report idleness."""

from __future__ import annotations

import uuid

import pytest

from ocore.core.events import EventBus, InProcessEventBus, RedisEventBus
from tests.conftest import REDIS_URL


@pytest.fixture(params=["in-process", "redis"])
async def bus(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    event_bus: EventBus = (
        InProcessEventBus() if request.param == "in-process" else RedisEventBus(REDIS_URL)
    )
    yield event_bus
    await event_bus.close()


async def test_order_resume_and_idle(bus: EventBus) -> None:
    stream = f"test:{uuid.uuid4().hex}"
    ids = [await bus.publish(stream, {"n": n}) for n in range(5)]
    assert ids == sorted(ids, key=lambda i: tuple(int(p) for p in i.split("-")))

    seen = []
    async for event in bus.subscribe(stream, block_ms=100):
        if event is None:
            break
        seen.append((event.id, event.data["n"]))
    assert seen == list(zip(ids, range(5), strict=True))

    resumed = []
    async for event in bus.subscribe(stream, ids[2], block_ms=100):
        if event is None:
            break
        resumed.append(event.data["n"])
    assert resumed == [3, 4]


async def test_a_subscriber_sees_later_events(bus: EventBus) -> None:
    import asyncio

    stream = f"test:{uuid.uuid4().hex}"
    received: list[int] = []

    async def read() -> None:
        async for event in bus.subscribe(stream, block_ms=2000):
            assert event is not None
            received.append(event.data["n"])
            if len(received) == 3:
                return

    reader = asyncio.create_task(read())
    await asyncio.sleep(0.1)
    for n in range(3):
        await bus.publish(stream, {"n": n})
    await asyncio.wait_for(reader, 5)
    assert received == [0, 1, 2]


async def test_bad_resume_id(bus: EventBus) -> None:
    subscription = bus.subscribe("x", "not-an-id", block_ms=10)
    with pytest.raises(ValueError, match="stream id"):
        await anext(subscription)


async def test_batches_hold_what_one_read_returns(bus: EventBus) -> None:
    stream = f"test:{uuid.uuid4().hex}"
    ids = await bus.publish_many(stream, [{"n": n} for n in range(7)])
    batches = bus.subscribe_batches(stream, block_ms=100)
    first = await anext(batches)
    assert first is not None
    assert [e.id for e in first] == ids
    assert await anext(batches) is None
    await batches.aclose()
