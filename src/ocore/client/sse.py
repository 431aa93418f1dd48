"""Server-sent events: a line parser, and a reader that resumes with ``Last-Event-ID``."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from ocore.client.errors import ApiError, ClientError
from ocore.client.http import ApiClient


@dataclass(frozen=True)
class Event:
    event: str
    id: str | None
    data: str

    def json(self) -> Any:
        try:
            return json.loads(self.data)
        except ValueError:
            raise ClientError(f"malformed '{self.event}' event from the server") from None


def parse(lines: Iterable[str]) -> Iterator[Event]:
    """Events from text/event-stream lines (WHATWG rules).

    A blank line dispatches; ``:`` lines are comments (keep-alive pings); an event
    left without its blank line when the stream ends is incomplete and dropped.
    """
    kind, data = "", list[str]()
    last_id: str | None = None  # the spec's "last event ID buffer": it outlives events
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield Event(kind or "message", last_id, "\n".join(data))
            kind, data = "", list[str]()
            continue
        if line.startswith(":"):
            continue
        name, colon, value = line.partition(":")
        value = value[1:] if colon and value.startswith(" ") else value
        if name == "event":
            kind = value
        elif name == "data":
            data.append(value)
        elif name == "id" and "\0" not in value:
            last_id = value or None
        # "retry" and unknown fields are ignored.


Notify = Callable[[str], None]


def follow(
    api: ApiClient,
    path: str,
    *,
    notify: Notify,
    last_event_id: str | None = None,
    until: str = "complete",
    retries: int = 8,
    backoff: float = 0.5,
    max_delay: float = 10.0,
) -> Iterator[Event]:
    """Events of ``path`` until an ``until`` event; a dropped stream is resumed.

    Reconnects send the last id seen, so the server replays nothing twice and skips
    nothing. Attempts back off exponentially and reset once an event arrives; after
    ``retries`` fruitless attempts in a row it gives up with a ClientError.
    """
    failures = 0
    while True:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        try:
            with api.stream(path, headers) as response:
                for event in parse(response.iter_lines()):
                    failures = 0
                    if event.id:
                        last_event_id = event.id
                    yield event
                    if event.event == until:
                        return
            reason = "the stream ended before the build completed"
        except httpx.HTTPError as exc:
            if failures == 0 and last_event_id is None and isinstance(exc, httpx.ConnectError):
                raise api.unreachable(exc) from None
            reason = str(exc) or type(exc).__name__
        except ApiError as exc:
            if exc.status < 500:
                raise
            reason = exc.message  # a proxy or a restarting server: worth another try
        failures += 1
        if failures > retries:
            raise ClientError(f"Lost the log stream after {retries} reconnects: {reason}")
        delay = min(max_delay, backoff * 2 ** (failures - 1))
        resume = f" from event {last_event_id}" if last_event_id else ""
        notify(
            f"log stream dropped ({reason}); reconnecting{resume} in {delay:.1f}s "
            f"(attempt {failures}/{retries})"
        )
        time.sleep(delay)
