"""The mail catcher's pieces: port derivation, the Mailpit process, the proxy's hygiene."""

from __future__ import annotations

import asyncio
import shutil
import smtplib
import socket
import uuid
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from starlette.requests import Request

from ocore.core.crypto import SecretBox
from ocore.core.errors import HostError
from ocore.core.loopback import loopback_client
from ocore.environments import mail
from ocore.environments.mail import (
    InvalidMailPath,
    MailCatcherTimeout,
    MailCatcherUnreachable,
    MailTarget,
    forward,
    request_headers,
    response_headers,
    upstream_path,
)
from ocore.hosts import LocalHost, SSHPool
from ocore.hosts.mailpit import MailCatcher, mail_ports
from ocore.hosts.runtime import InstanceLayout
from ocore.servers.models import Server
from tests.fixtures import mailpit_standin
from tests.fixtures.odoo_runtime import exists

WEBROOT = "/api/environments/e1/mail/"


# -- ports ---------------------------------------------------------------------


def test_mail_ports_sit_below_the_instance_window_one_pair_per_block() -> None:
    assert mail_ports(20000, 20000, 29999) == (15000, 15001)
    assert mail_ports(20004, 20000, 29999) == (15002, 15003)
    assert mail_ports(29996, 20000, 29999) == (19998, 19999)
    pairs = [mail_ports(base, 20000, 29999) for base in range(20000, 29997, 4)]
    ports = [port for pair in pairs if pair for port in pair]
    assert len(ports) == 2 * 2500 == len(set(ports))  # unique per block, never shared
    assert all(15000 <= port < 20000 for port in ports)  # never an instance port


def test_mail_ports_above_when_no_room_below_and_none_when_nothing_fits() -> None:
    assert mail_ports(1200, 1200, 2199) == (2200, 2201)
    assert mail_ports(2196, 1200, 2199) == (2698, 2699)
    assert mail_ports(1024, 1024, 65535) is None
    assert mail_ports(20002, 20000, 29999) is None  # not a block start
    assert mail_ports(19996, 20000, 29999) is None  # outside the window (settings changed)
    assert mail_ports(30000, 20000, 29999) is None


# -- the process ---------------------------------------------------------------


def _free_pair() -> int:
    """An SMTP port whose successor (the UI port) is free too."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port < 65535:
            with socket.socket() as t:
                try:
                    t.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return port
    raise AssertionError("no free pair of ports")


@pytest.fixture
def catcher(tmp_path: Path) -> MailCatcher:
    layout = InstanceLayout(str(tmp_path), f"t-{uuid.uuid4().hex[:8]}")
    return MailCatcher(LocalHost(), layout, _free_pair(), webroot=WEBROOT)


async def test_binary_pinned_under_base_dir_else_path(catcher: MailCatcher) -> None:
    if shutil.which("mailpit") is None:
        assert await catcher.find_binary() is None
    pinned = mailpit_standin.install(Path(catcher.pinned_binary))
    assert await catcher.find_binary() == str(pinned)


async def test_start_receive_stop(catcher: MailCatcher) -> None:
    binary = str(mailpit_standin.install(Path(catcher.pinned_binary)))
    assert not (await catcher.status()).running
    pid = await catcher.start(binary)
    assert await catcher.start(binary) == pid  # running already: nothing happens
    await catcher.wait_ready(timeout=10)
    assert (await catcher.status()).pid == pid

    assert catcher.smtp_port is not None
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@x.test", "b@y.test", "Hi"
    message.set_content("hello")
    with smtplib.SMTP("127.0.0.1", catcher.smtp_port, timeout=10) as smtp:
        smtp.send_message(message)
    async with httpx.AsyncClient() as client:
        url = f"http://127.0.0.1:{catcher.ui_port}{WEBROOT}api/v1/messages"
        listed = (await client.get(url)).json()
    assert [m["Subject"] for m in listed["messages"]] == ["Hi"]
    assert exists(catcher.database_path)

    assert await catcher.stop(grace=5) is True
    assert not (await catcher.status()).running
    assert not exists(catcher.pid_path)
    assert await catcher.stop() is False  # stopping a stopped catcher is fine


async def test_a_port_in_use_fails_with_the_log(catcher: MailCatcher) -> None:
    binary = str(mailpit_standin.install(Path(catcher.pinned_binary)))
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", catcher.ui_port))
        blocker.listen()

        async def start() -> None:
            await catcher.start(binary)
            await catcher.wait_ready(timeout=10)

        with pytest.raises(HostError) as caught:
            await start()
    assert "Mailpit of" in caught.value.detail
    assert "address already in use" in caught.value.detail.lower()
    assert not (await catcher.status()).running


# -- the proxy -----------------------------------------------------------------


def test_upstream_path_stays_below_the_webroot() -> None:
    assert upstream_path(WEBROOT, None) == "/api/environments/e1/mail"
    assert upstream_path(WEBROOT, "") == WEBROOT
    assert upstream_path(WEBROOT, "api/v1/messages") == WEBROOT + "api/v1/messages"
    assert upstream_path(WEBROOT, "view/a b.html") == WEBROOT + "view/a%20b.html"
    assert upstream_path(WEBROOT, "a%2F..") == WEBROOT + "a%252F.."  # encoded: no traversal
    for bad in ("..", "../x", "a/../../b", "./a", "a/.", "/etc/passwd", "a//b", "a\\..\\b", "a\0"):
        with pytest.raises(InvalidMailPath):
            upstream_path(WEBROOT, bad)


def _request(headers: list[tuple[str, str]]) -> Request:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/environments/e1/mail/api/v1/messages",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
    }
    return Request(scope)


def test_request_headers_keep_what_mailpit_needs_only() -> None:
    request = _request(
        [
            ("Authorization", "Bearer secret-token"),
            ("Cookie", "session=1"),
            ("Host", "ocore.test"),
            ("Connection", "keep-alive, X-Custom"),
            ("X-Custom", "hop"),
            ("Keep-Alive", "timeout=5"),
            ("Transfer-Encoding", "chunked"),
            ("X-Forwarded-For", "1.2.3.4"),
            ("Proxy-Authorization", "Basic x"),
            ("Content-Type", "application/json"),
            ("Content-Length", "12"),
            ("Accept", "application/json"),
            ("Accept-Encoding", "gzip"),
        ]
    )
    names = {k.lower(): v for k, v in request_headers(request)}
    assert names == {
        "content-type": "application/json",
        "accept": "application/json",
        "accept-encoding": "gzip",
        "content-length": "12",
    }


def test_response_headers_drop_what_would_act_on_ocore() -> None:
    upstream = httpx.Response(
        302,
        headers=[
            ("Content-Type", "text/html"),
            ("Content-Security-Policy", "default-src 'self'"),
            ("Set-Cookie", "a=b"),
            ("WWW-Authenticate", 'Basic realm="Login"'),
            ("Connection", "close, X-Hop"),
            ("X-Hop", "1"),
            ("Transfer-Encoding", "chunked"),
            ("Cache-Control", "public, max-age=60"),
            ("Location", WEBROOT + "view/abc"),
        ],
    )
    headers = {k.decode(): v.decode() for k, v in response_headers(upstream, WEBROOT)}
    assert headers == {
        "content-type": "text/html",
        "content-security-policy": "default-src 'self'",
        "cache-control": "private, max-age=60",
        "location": WEBROOT + "view/abc",
    }
    elsewhere = httpx.Response(302, headers=[("Location", "https://evil.test/")])
    headers = {k.decode(): v.decode() for k, v in response_headers(elsewhere, WEBROOT)}
    assert "location" not in headers
    assert headers["cache-control"] == "private"


def test_a_message_s_own_content_is_sandboxed() -> None:
    upstream = httpx.Response(200, headers=[("Content-Type", "text/html")])
    for path in (
        "view/abc.html",
        "view/abc.txt",
        "api/v1/message/abc/raw",
        "api/v1/message/a/part/2",
    ):
        headers = response_headers(upstream, WEBROOT, WEBROOT + path)
        assert (b"content-security-policy", b"sandbox allow-same-origin allow-popups "
                b"allow-popups-to-escape-sandbox") in headers, path  # fmt: skip
        assert (b"x-content-type-options", b"nosniff") in headers
    for path in ("", "view/abc", "search", "api/v1/messages", "api/v1/message/abc", "dist/app.js"):
        headers = response_headers(upstream, WEBROOT, WEBROOT + path)
        assert not any(k == b"content-security-policy" for k, _ in headers), path


async def _forward_to(port: int) -> None:
    request = Request(
        {
            "type": "http",
            "method": "GET",
            "path": f"{WEBROOT}api/v1/messages",
            "query_string": b"",
            "headers": [],
        }
    )
    target = MailTarget(Server(name="here", is_local=True), port, WEBROOT)
    async with loopback_client() as client:
        response = await forward(
            request,
            target,
            WEBROOT + "api/v1/messages",
            box=SecretBox("k" * 32),
            pool=SSHPool(),
            client=client,
        )
        await response._resources.aclose()


async def test_a_catcher_that_is_down_or_hangs_is_a_502_or_504(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = int(s.getsockname()[1])
    with pytest.raises(MailCatcherUnreachable) as down:
        await _forward_to(closed_port)
    assert down.value.status == 502

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers
        writer.close()

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    monkeypatch.setattr(mail, "READ_TIMEOUT", 0.5)
    try:
        with pytest.raises(MailCatcherTimeout) as hung:
            await _forward_to(int(server.sockets[0].getsockname()[1]))
    finally:
        server.close()
    assert hung.value.status == 504
