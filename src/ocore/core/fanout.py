"""Live subscribers of one stream share one bus reader per process.

With a reader per subscriber, 500 dashboards on one build meant 500 Redis
reads, 500 JSON parses and 500 SSE encodings of every line. Here one task
per stream reads the bus and hands each batch, parsed once, to every
subscriber's queue; ``Batch.encoded`` lets the first subscriber that writes a
batch encode it for all the others.

A subscriber joins the reader first, then reads what came before (from its
``after`` to now) straight from the bus, then takes the shared batches,
skipping what its catch-up already had: events ids only grow, so nothing is
lost or repeated across the hand-over. One that falls ``max_pending`` batches
behind is let go (its stream ends); an SSE client reconnects with
``Last-Event-ID`` and resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog

from ocore.core.events import Event, EventBus, parse_event_id

T = TypeVar("T")
log = structlog.get_logger("ocore.events")


@dataclass(eq=False)
class Batch:
    """Events one bus read returned, with what subscribers derived from them once."""

    events: list[Event]
    _encoded: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def last_position(self) -> tuple[int, int]:
        return parse_event_id(self.events[-1].id)

    def encoded(self, key: str, encode: Callable[[list[Event]], T]) -> T:
        if key not in self._encoded:
            self._encoded[key] = encode(self.events)
        value: T = self._encoded[key]
        return value


class _Overflow:
    """Put in a subscriber's queue instead of the batch that did not fit."""


_OVERFLOW = _Overflow()


@dataclass(eq=False)
class _Reader:
    queues: set[asyncio.Queue[Batch | _Overflow]]
    task: asyncio.Task[None] | None = None


class Fanout:
    def __init__(self, bus: EventBus, *, max_pending: int = 1000) -> None:
        self._bus = bus
        self._max_pending = max_pending
        self._readers: dict[str, _Reader] = {}

    def subscribers(self, stream: str) -> int:
        reader = self._readers.get(stream)
        return len(reader.queues) if reader else 0

    async def subscribe(
        self, stream: str, after: str = "0-0", *, idle_seconds: float = 15
    ) -> AsyncIterator[list[Batch] | None]:
        """The batches after ``after``, as they come; None after ``idle_seconds`` without any.

        Each item is every batch that was waiting, so a subscriber that fell
        behind catches up in one write.
        """
        position = parse_event_id(after)
        queue: asyncio.Queue[Batch | _Overflow] = asyncio.Queue(self._max_pending)
        await self._join(stream, queue)
        try:
            backlog = await self._bus.read_after(stream, after)
            if backlog:
                yield [Batch(backlog)]
                position = parse_event_id(backlog[-1].id)
            while True:
                try:
                    first = await asyncio.wait_for(queue.get(), idle_seconds)
                except TimeoutError:
                    yield None
                    continue
                waiting = [first]
                while not queue.empty():
                    waiting.append(queue.get_nowait())
                if any(isinstance(item, _Overflow) for item in waiting):
                    return
                fresh: list[Batch] = []
                for batch in waiting:
                    assert isinstance(batch, Batch)
                    if batch.last_position <= position:
                        continue
                    if parse_event_id(batch.events[0].id) <= position:
                        # Only at the hand-over: part of it came with the catch-up.
                        batch = Batch([e for e in batch.events if parse_event_id(e.id) > position])
                    fresh.append(batch)
                    position = batch.last_position
                if fresh:
                    yield fresh
        finally:
            await self._leave(stream, queue)

    async def _join(self, stream: str, queue: asyncio.Queue[Batch | _Overflow]) -> None:
        reader = self._readers.get(stream)
        if reader is not None:
            reader.queues.add(queue)
            return
        reader = self._readers[stream] = _Reader({queue})
        try:
            # The reader starts after the newest event now; the subscriber's own
            # catch-up (read after this) covers everything up to at least here.
            start = await self._bus.last_id(stream)
        except BaseException:
            self._end(stream, reader)
            raise
        reader.task = asyncio.create_task(self._read(stream, reader, start))

    async def _leave(self, stream: str, queue: asyncio.Queue[Batch | _Overflow]) -> None:
        reader = self._readers.get(stream)
        if reader is None:
            return
        reader.queues.discard(queue)
        if not reader.queues:
            del self._readers[stream]
            if reader.task is not None and not reader.task.done():
                reader.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader.task

    async def _read(self, stream: str, reader: _Reader, start: str) -> None:
        try:
            async for events in self._bus.subscribe_batches(stream, start, block_ms=5_000):
                if events is None:
                    continue
                batch = Batch(events)
                for queue in list(reader.queues):
                    try:
                        queue.put_nowait(batch)
                    except asyncio.QueueFull:
                        reader.queues.discard(queue)
                        _let_go(queue)
        except Exception as exc:
            # The bus is gone (Redis down): every subscriber's stream ends, and
            # the next one to come starts a new reader.
            log.warning("event_reader_failed", stream=stream, error=type(exc).__name__)
            self._end(stream, reader)

    def _end(self, stream: str, reader: _Reader) -> None:
        if self._readers.get(stream) is reader:
            del self._readers[stream]
        for queue in reader.queues:
            _let_go(queue)
        reader.queues.clear()


def _let_go(queue: asyncio.Queue[Batch | _Overflow]) -> None:
    """End a subscriber: the overflow mark replaces a batch if there is no room."""
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(_OVERFLOW)
