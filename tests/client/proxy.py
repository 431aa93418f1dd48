"""A real TCP proxy that drops the first build-log (SSE) response after N bytes."""

from __future__ import annotations

import asyncio
import contextlib
import re

LOGS_REQUEST = re.compile(rb"GET /api/projects/[^ ]+/deployments/[^ ]+/logs HTTP/1\.1")


class DroppingProxy:
    """Forwards every connection to ``target``; the first time a client asks for a
    deployment's log stream, the connection is closed after ``cut_after`` bytes of
    the response (headers included): a real dropped connection mid-stream."""

    def __init__(self, target_host: str, target_port: int, cut_after: int) -> None:
        self.target = (target_host, target_port)
        self.cut_after = cut_after
        self.log_requests: list[bytes] = []
        self.delivered_before_cut = b""
        self.cuts = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(*self.target)
        streaming = asyncio.Event()

        async def upstream() -> None:
            while data := await client_r.read(65536):
                match = LOGS_REQUEST.search(data)
                if match:
                    self.log_requests.append(data)
                    streaming.set()
                server_w.write(data)
                await server_w.drain()

        async def downstream() -> None:
            sent = 0
            while data := await server_r.read(65536):
                if streaming.is_set() and self.cuts == 0:
                    room = self.cut_after - sent
                    if len(data) >= room:
                        client_w.write(data[:room])
                        await client_w.drain()
                        self.delivered_before_cut += data[:room]
                        self.cuts += 1
                        return  # both sides are closed below: the stream is cut
                    sent += len(data)
                    self.delivered_before_cut += data
                client_w.write(data)
                await client_w.drain()

        pipes = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pipe in pipes:
                pipe.cancel()
            await asyncio.gather(*pipes, return_exceptions=True)
            for writer in (client_w, server_w):
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
