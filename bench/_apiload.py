"""A closed-loop load generator for ocore's API, run as a process of its own by ``load.py``.

    python bench/_apiload.py < spec.json

Not a benchmark itself. It reads one JSON spec on stdin and prints one JSON
result line on stdout. Two modes:

* ``mixed``: ``clients`` keep-alive connections, client i on ``ports[i % len]``
  (what a balancer that keeps connections does), each sending its next request
  as soon as the last one is answered: ``list`` / ``detail`` / ``write``
  requests drawn by ``weights``. A client's writes cycle through creating a
  project, renaming it, describing an environment of its own and deleting the
  project, so the organization's size stays put. Requests started during the
  first ``warmup`` seconds are not recorded.
* ``lists``: ``concurrency`` connections to one port, each sending every
  target in turn (shuffled each round), so every target meets the same load;
  the first round is not recorded.

Raw asyncio streams (uvloop when installed) rather than httpx or ``_httpload``:
on a 2-core machine the generator shares the CPU with the API and PostgreSQL,
and this one costs tens of microseconds per request, httpx about a millisecond.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from collections import Counter, defaultdict
from typing import Any

TIMEOUT = 30
OK = {200, 201, 202, 204}


class Connection:
    """One keep-alive HTTP/1.1 connection; reconnects after an error."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.head = f"Host: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        if self.streams is None:
            self.streams = await asyncio.open_connection("127.0.0.1", self.port)
        reader, writer = self.streams
        payload = b"" if body is None else json.dumps(body).encode()
        extra = f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
        head = f"{method} {path} HTTP/1.1\r\n{self.head}{extra if body is not None else ''}\r\n"
        writer.write(head.encode() + payload)
        head_in = await reader.readuntil(b"\r\n\r\n")
        status = int(head_in[9:12])
        length, chunked = 0, False
        for line in head_in.lower().split(b"\r\n"):
            if line.startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
            elif line.startswith(b"transfer-encoding:") and b"chunked" in line:
                chunked = True
        if not chunked:
            return status, await reader.readexactly(length)
        parts = []
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        await reader.readuntil(b"\r\n")
        return status, b"".join(parts)

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


class Recorder:
    def __init__(self, since: float, until: float) -> None:
        self.since, self.until = since, until
        self.latencies: defaultdict[str, list[float]] = defaultdict(list)
        self.errors: Counter[str] = Counter()
        self.requests = 0

    async def send(
        self, conn: Connection, key: str, method: str, path: str, body: Any = None
    ) -> Any:
        """The answer's JSON (or None); records latency in ms, or the error."""
        started = time.monotonic()
        try:
            async with asyncio.timeout(TIMEOUT):
                status, data = await conn.request(method, path, body)
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as exc:
            conn.close()
            outcome: str | None = f"{type(exc).__name__} on {method} {key}"
        else:
            outcome = None if status in OK else f"HTTP {status} on {method} {key}"
        if self.since <= started < self.until:
            self.requests += 1
            if outcome is None:
                self.latencies[key].append((time.monotonic() - started) * 1000)
            else:
                self.errors[outcome] += 1
        return json.loads(data) if outcome is None and data else None


async def mixed_client(n: int, spec: dict[str, Any], recorder: Recorder) -> None:
    rng = random.Random(n)  # noqa: S311 - a workload, not crypto
    conn = Connection(spec["ports"][n % len(spec["ports"])], spec["token"])
    classes = list(spec["weights"])
    weights = list(spec["weights"].values())
    environment = spec["environments"][n % len(spec["environments"])]
    project: str | None = None
    step = made = 0
    prefix = f"load-{spec['run']}-{n}"  # unique across runs on the same database
    while time.monotonic() < recorder.until:
        kind = rng.choices(classes, weights)[0]
        if kind == "list":
            await recorder.send(conn, "list", "GET", rng.choice(spec["lists"]))
        elif kind == "detail":
            template, ids = rng.choice(spec["details"])
            await recorder.send(conn, "detail", "GET", template.format(rng.choice(ids)))
        elif project is None:
            made += 1
            body = {
                "name": f"{prefix}-{made}",
                "repositoryUrl": f"https://git.example.com/{prefix}-{made}.git",
                "odooVersion": "17.0",
            }
            created = await recorder.send(conn, "write", "POST", "/api/projects", body)
            project, step = (created or {}).get("id"), 0
        elif step == 0:
            body = {"name": f"{prefix}-{made}-renamed", "testTags": "/shop"}
            await recorder.send(conn, "write", "PUT", f"/api/projects/{project}", body)
            step = 1
        elif step == 1:
            body = {"description": f"touched by client {n} at {time.time():.3f}"}
            await recorder.send(conn, "write", "PUT", f"/api/environments/{environment}", body)
            step = 2
        else:
            await recorder.send(conn, "write", "DELETE", f"/api/projects/{project}")
            project = None
    conn.close()


async def lists_client(n: int, spec: dict[str, Any], recorder: Recorder, rounds: int) -> None:
    rng = random.Random(n)  # noqa: S311 - a workload, not crypto
    conns = {t["token"]: Connection(spec["port"], t["token"]) for t in spec["targets"]}
    targets = list(spec["targets"])
    for round_ in range(rounds):
        rng.shuffle(targets)
        for target in targets:
            key = f"{target['endpoint']}|{target['size']}" if round_ else "warm-up"
            await recorder.send(conns[target["token"]], key, "GET", target["path"])
    for conn in conns.values():
        conn.close()


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    now = time.monotonic()
    if spec["mode"] == "mixed":
        recorder = Recorder(now + spec["warmup"], now + spec["warmup"] + spec["duration"])
        clients = [mixed_client(n, spec, recorder) for n in range(spec["clients"])]
        await asyncio.gather(*clients)
        seconds = spec["duration"]
    else:
        recorder = Recorder(now, float("inf"))
        rounds = spec["rounds"] + 1
        clients = [lists_client(n, spec, recorder, rounds) for n in range(spec["concurrency"])]
        await asyncio.gather(*clients)
        recorder.latencies.pop("warm-up", None)
        seconds = time.monotonic() - now
    usage = os.times()
    return {
        "latencies": recorder.latencies,
        "errors": recorder.errors,
        "requests": recorder.requests,
        "seconds": seconds,
        "cpu": usage.user + usage.system,
    }


def main() -> None:
    spec = json.loads(sys.stdin.read())
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(run(spec))
    else:
        result = uvloop.run(run(spec))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
