"""Live subscribers of one stream share one bus reader per process.

With a reader per subscriber, 500 dashboards on one build meant 500 Redis
reads, 500 JSON parses and 500 SSE encodings of every line. Here one task
per stream reads the bus and hands each batch, parsed once, to every
subscriber's queue; ``Batch.encoded`` lets the first subscriber that writes a
batch encode it for all the others.

A subscriber joins the reader and takes a snapshot of the reader's recent
batches in the same step; only what came before those (from its ``after``)
is read from the bus by the subscriber itself. It then takes the shared
batches, skipping what it already had: event ids only grow, so nothing is
lost or repeated across the hand-over. One that falls ``max_pending`` batches
behind (a hundred seconds of a busy build) is let go (its stream ends); an SSE
client reconnects with ``Last-Event-ID`` and resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
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
    started: asyncio.Future[str]
    queues: set[asyncio.Queue[Batch | _Overflow]] = field(default_factory=set)
    # The latest batches, so that a subscriber joining late catches up from
    # events already parsed instead of reading the bus itself.
    history: deque[Batch] = field(default_factory=deque)
    history_events: int = 0
    task: asyncio.Task[None] | None = None


class Fanout:
    def __init__(
        self, bus: EventBus, *, max_pending: int = 10_000, history_events: int = 20_000
    ) -> None:
        self._bus = bus
        self._max_pending = max_pending
        self._history_events = history_events
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
        start, history = await self._join(stream, queue)
        try:
            # What the shared reader never had (before its start, or trimmed from
            # its history) comes from the bus; the rest is already parsed.
            bus_until = history[0].events[0].id if history else start
            if position < parse_event_id(bus_until):
                backlog = await self._bus.read_after(stream, after, bus_until)
                if backlog:
                    yield [Batch(backlog)]
                    position = parse_event_id(backlog[-1].id)
            waiting: list[Batch | _Overflow] = list(history)
            while True:
                if not waiting:
                    try:
                        waiting.append(await asyncio.wait_for(queue.get(), idle_seconds))
                    except TimeoutError:
                        yield None
                        continue
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
                waiting = []
                if fresh:
                    yield fresh
        finally:
            await self._leave(stream, queue)

    async def _join(
        self, stream: str, queue: asyncio.Queue[Batch | _Overflow]
    ) -> tuple[str, list[Batch]]:
        """Register ``queue``; the reader's start and its history at that very moment."""
        while True:
            reader = self._readers.get(stream)
            if reader is None:
                reader = self._readers[stream] = _Reader(asyncio.get_running_loop().create_future())
                try:
                    # The reader starts after the newest event now.
                    reader.started.set_result(await self._bus.last_id(stream))
                except BaseException as exc:
                    if isinstance(exc, Exception):
                        reader.started.set_exception(exc)
                        # Retrieved here: no waiter may be there to see it.
                        reader.started.exception()
                    else:
                        reader.started.cancel()
                    self._end(stream, reader)
                    raise
                reader.task = asyncio.create_task(
                    self._read(stream, reader, reader.started.result())
                )
            start = await asyncio.shield(reader.started)
            if self._readers.get(stream) is not reader:
                continue  # it failed while this one waited: start a new one
            # No await from here on: every batch is in the snapshot or will be in the queue.
            reader.queues.add(queue)
            return start, list(reader.history)

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
                reader.history.append(batch)
                reader.history_events += len(events)
                while reader.history_events > self._history_events and len(reader.history) > 1:
                    reader.history_events -= len(reader.history.popleft().events)
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
