"""An open-loop HTTP load generator, run as a process of its own by ``deploy.py``.

    python bench/_httpload.py URL HOST RATE OUT

Sends RATE requests a second to URL (alternating the PATHS) with ``Host: HOST``,
whatever the earlier ones are doing; prints "ready" once the first one is
answered; on SIGTERM waits for those in flight and writes one line per request
to OUT: ``sent_at seconds path outcome`` (a status code or an error's name).
Only httpx is imported, so it starts in a moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from pathlib import Path

import httpx

PATHS = ("/web/health", "/web/login")
TIMEOUT = 10


async def generate(url: str, host: str, rate: float) -> list[str]:
    results: list[str] = []
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    tasks: set[asyncio.Task[None]] = set()

    async def one(client: httpx.AsyncClient, path: str) -> None:
        sent = time.time()
        try:
            response = await client.get(path, headers={"Host": host})
            outcome = str(response.status_code)
        except httpx.HTTPError as exc:
            outcome = type(exc).__name__
        if not results:
            print("ready", flush=True)
        results.append(f"{sent:.6f} {time.time() - sent:.6f} {path} {outcome}")

    limits = httpx.Limits(max_connections=200, max_keepalive_connections=20)
    async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT, limits=limits) as client:
        start = time.monotonic()
        n = 0
        while not stop.is_set():
            task = asyncio.create_task(one(client, PATHS[n % len(PATHS)]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, start + n / rate - time.monotonic()))
        await asyncio.gather(*tasks)
    return results


def main() -> None:
    url, host, rate, out = sys.argv[1:]
    lines = asyncio.run(generate(url, host, float(rate)))
    Path(out).write_text("".join(f"{line}\n" for line in lines))


if __name__ == "__main__":
    main()
