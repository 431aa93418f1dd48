"""The nginx fixture works: a written upstream plus a reload switches traffic."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from ocore.hosts import HostConnection, LocalHost
from tests.fixtures.nginx import Nginx, running_nginx


@pytest.fixture(scope="module")
def nginx() -> Iterator[Nginx]:
    with running_nginx() as server:
        yield server


async def _backend(colour: str) -> asyncio.Server:
    body = colour.encode()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (len(body), body)
        )
        await writer.drain()
        writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0)


@pytest.fixture
async def backends() -> AsyncIterator[dict[str, int]]:
    servers = {colour: await _backend(colour) for colour in ("blue", "green")}
    yield {colour: server.sockets[0].getsockname()[1] for colour, server in servers.items()}
    for server in servers.values():
        server.close()
        await server.wait_closed()


def _site(nginx: Nginx, upstream_port: int) -> bytes:
    return (
        f"upstream ocore_app {{ server 127.0.0.1:{upstream_port}; }}\n"
        f"server {{\n"
        f"    listen {nginx.host}:{nginx.port};\n"
        f"    server_name app.test;\n"
        f"    location / {{ proxy_pass http://ocore_app; }}\n"
        f"}}\n"
    ).encode()


async def test_upstream_switch_takes_effect_after_reload(
    nginx: Nginx, backends: dict[str, int]
) -> None:
    host: HostConnection = LocalHost()
    site = str(nginx.sites / "app.conf")
    async with httpx.AsyncClient(base_url=nginx.url, headers={"Host": "app.test"}) as client:
        for colour in ("blue", "green"):
            await host.write_file(site, _site(nginx, backends[colour]), mode=0o644)
            await host.run(nginx.command("-t"))
            await host.run(nginx.command("-s", "reload"))
            # A reload hands over to new workers asynchronously.
            assert await _serves(client, colour)
        other = await client.get("/", headers={"Host": "unknown.test"})
        assert other.status_code == 404


async def test_broken_site_fails_the_config_test(nginx: Nginx) -> None:
    host = LocalHost()
    broken = str(nginx.sites / "broken.conf")
    await host.write_file(broken, b"server { bogus_directive on; }\n")
    try:
        result = await host.run(nginx.command("-t"), check=False)
        assert result.exit_status != 0
        assert "bogus_directive" in result.stderr
    finally:
        (nginx.sites / "broken.conf").unlink()


async def _serves(client: httpx.AsyncClient, expected: str) -> bool:
    for _ in range(100):
        if (await client.get("/")).text == expected:
            return True
        await asyncio.sleep(0.05)
    return False
