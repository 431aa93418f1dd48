"""The nginx site of an instance: rendering, validation, and what reaches the upstream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from ocore.core.errors import CommandFailed, InvalidInput
from ocore.hosts import LocalHost
from ocore.hosts.runtime import NginxProxy, NginxSettings, Upstream, render_site
from ocore.hosts.runtime.proxy import check_domain
from tests.fixtures.nginx import Nginx, running_nginx
from tests.fixtures.odoo_runtime import exists, mode_of, nginx_settings, text_of


@pytest.fixture(scope="module")
def nginx() -> Iterator[Nginx]:
    with running_nginx() as server:
        yield server


@pytest.fixture
def proxy(nginx: Nginx) -> Iterator[NginxProxy]:
    proxy = NginxProxy(LocalHost(), nginx_settings(nginx))
    yield proxy
    for site in nginx.sites.glob("*.conf"):
        site.unlink()
    nginx.reload()


async def _echo(name: str) -> asyncio.Server:
    """An upstream that answers with its name and the request headers it received."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        lines = head.split("\r\n")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                key, value = line.split(":", 1)
                headers[key.strip().lower()] = value.strip()
        body = json.dumps({"name": name, "path": lines[0].split()[1], "headers": headers}).encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0)


async def _json_once_live(client: httpx.AsyncClient, path: str) -> dict[str, Any]:
    """nginx hands over to new workers asynchronously after a reload."""
    for _ in range(100):
        response = await client.get(path)
        if response.status_code == 200:
            answer: dict[str, Any] = response.json()
            return answer
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} never reached the upstream: {response.status_code}")


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    http, ws = await _echo("http"), await _echo("websocket")
    yield Upstream("green", http.sockets[0].getsockname()[1], ws.sockets[0].getsockname()[1])
    for server in (http, ws):
        server.close()
        await server.wait_closed()


def test_render_site() -> None:
    settings = NginxSettings(listen=("80", "[::]:80"), client_max_body_size="256m")
    site = render_site(settings, "acme-prod", ["acme.example.com", "www.acme.example.com"],
                       Upstream("blue", 9001, 9002))  # fmt: skip
    assert "# ocore-colour: blue\n" in site
    assert "upstream ocore_acme_prod_http {\n    server 127.0.0.1:9001;\n}" in site
    assert "upstream ocore_acme_prod_websocket {\n    server 127.0.0.1:9002;\n}" in site
    assert "    listen 80;\n    listen [::]:80;\n" in site
    assert "server_name acme.example.com www.acme.example.com;" in site
    assert "client_max_body_size 256m;" in site
    # Both locations set the forwarding headers (a location with its own
    # proxy_set_header inherits none from the server block).
    assert site.count("proxy_set_header X-Forwarded-For $remote_addr;") == 2
    assert site.count("proxy_set_header X-Forwarded-Proto $scheme;") == 2


@pytest.mark.parametrize(
    "domain",
    [
        "acme.test; return 200",
        "acme.test\nserver {",
        "ACME.test",
        "-acme.test",
        "acme-.test",
        "acme..test",
        "localhost",
        "*.acme.test",
        "acme.test ",
        "ac$me.test",
        "a" * 64 + ".test",
        "",
    ],
)
def test_hostile_domains_are_refused(domain: str) -> None:
    with pytest.raises(InvalidInput):
        check_domain(domain)
    with pytest.raises(InvalidInput):
        render_site(NginxSettings(), "acme", [domain], Upstream("blue", 9001, 9002))


@pytest.mark.parametrize(
    "changes",
    [
        {"listen": ("80; include /etc/shadow",)},
        {"listen": ("99999",)},
        {"listen": ()},
        {"client_max_body_size": "1g; deny all"},
        {"sites_dir": "relative/conf.d"},
        {"command": ()},
    ],
)
def test_bad_settings_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        NginxSettings(**changes)  # type: ignore[arg-type]


def test_bad_upstream_and_slug_are_refused() -> None:
    with pytest.raises(InvalidInput):
        Upstream("purple", 9001, 9002)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        render_site(NginxSettings(), "Acme;", ["acme.test"], Upstream("blue", 9001, 9002))


async def test_nginx_sets_the_forwarding_headers(
    proxy: NginxProxy, nginx: Nginx, upstream: Upstream
) -> None:
    await proxy.switch("acme", ["acme.test"], upstream)
    assert mode_of(proxy.site_path("acme")) == 0o644
    assert await proxy.active_colour("acme") == "green"
    spoofed = {"Host": "acme.test", "X-Forwarded-For": "6.6.6.6", "X-Forwarded-Host": "evil.test"}
    async with httpx.AsyncClient(base_url=nginx.url, headers=spoofed) as client:
        answer = await _json_once_live(client, "/web/login")
        assert answer["name"] == "http"
        headers = answer["headers"]
        assert headers["host"] == "acme.test"
        assert headers["x-forwarded-host"] == "acme.test"
        assert headers["x-forwarded-for"] == "127.0.0.1"  # the client nginx saw, nothing spoofed
        assert headers["x-forwarded-proto"] == "http"

        upgrade = {"Upgrade": "websocket", "Connection": "Upgrade"}
        answer = (await client.get("/websocket", headers=upgrade)).json()
        assert answer["name"] == "websocket"
        headers = answer["headers"]
        assert headers["upgrade"] == "websocket"
        assert headers["connection"] == "upgrade"
        assert headers["x-forwarded-for"] == "127.0.0.1"
        assert headers["host"] == "acme.test"


async def test_first_site_rejected_by_nginx_is_removed(proxy: NginxProxy, nginx: Nginx) -> None:
    broken = nginx.sites / "zz-broken.conf"
    await LocalHost().write_file(str(broken), b"server { bogus_directive on; }\n", mode=0o644)
    with pytest.raises(CommandFailed) as caught:
        await proxy.switch("acme", ["acme.test"], Upstream("blue", 9001, 9002))
    assert "bogus_directive" in caught.value.detail
    assert not exists(proxy.site_path("acme"))
    assert await proxy.active_colour("acme") is None


async def test_remove_site(proxy: NginxProxy, nginx: Nginx, upstream: Upstream) -> None:
    await proxy.switch("acme", ["acme.test"], upstream)
    assert "server_name acme.test;" in text_of(proxy.site_path("acme"))
    await proxy.remove("acme")
    await proxy.remove("acme")  # idempotent
    assert not exists(proxy.site_path("acme"))
    async with httpx.AsyncClient(base_url=nginx.url, headers={"Host": "acme.test"}) as client:
        for _ in range(100):
            if (await client.get("/")).status_code == 404:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the removed site still answers")
