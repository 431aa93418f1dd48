"""What only SSH has: host keys, authentication, reachability, the pool, reconnects."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest

from ocore.core.errors import HostAuthFailed, HostError, HostKeyMismatch, HostUnreachable
from ocore.hosts import HostConnection, HostTarget, LocalHost, SSHPool, connect
from tests.fixtures.sshd import Sshd, free_port
from tests.hosts.helpers import (
    KeyRecorder,
    drain,
    eventually,
    make_target,
    pid_gone,
    read_pids,
)


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data.upper())
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def _through(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    writer.write_eof()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    await writer.wait_closed()
    return data


async def test_tunnel_reaches_a_port_on_the_host(host: HostConnection, echo_port: int) -> None:
    async with host.open_tunnel("127.0.0.1", echo_port) as port:
        assert await _through(port, b"ping") == b"PING"
        assert await _through(port, b"again") == b"AGAIN"


async def test_local_tunnel_to_another_address_relays() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"from 127.0.0.2:" + await reader.read())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.2", 0)
    try:
        async with LocalHost().open_tunnel("127.0.0.2", server.sockets[0].getsockname()[1]) as port:
            assert await _through(port, b"hi") == b"from 127.0.0.2:hi"
    finally:
        server.close()
        await server.wait_closed()


async def test_first_contact_learns_the_host_key(
    pool: SSHPool, learned: KeyRecorder, sshd: Sshd
) -> None:
    target = make_target(sshd, pinned_host_key=None)
    assert (await pool.connection(target).run(["echo", "hi"])).stdout == "hi\n"
    assert learned.calls == [(target, sshd.host_public_key, sshd.host_fingerprint)]
    # Once the caller pins what it learned, the same connection keeps serving.
    pinned = dataclasses.replace(target, pinned_host_key=learned.calls[0][1])
    await pool.connection(pinned).run(["true"])
    await pool.connection(target).run(["true"])
    assert len(learned.calls) == 1
    assert len(sshd.connection_pids()) == 1


async def test_pinned_key_is_not_reported_again(
    pool: SSHPool, learned: KeyRecorder, ssh_target: HostTarget
) -> None:
    await pool.connection(ssh_target).run(["true"])
    assert learned.calls == []


async def test_changed_host_key_is_refused(pool: SSHPool, sshd: Sshd) -> None:
    old_key, old_fingerprint = sshd.host_public_key, sshd.host_fingerprint
    sshd.restart(new_host_key=True)
    assert sshd.host_fingerprint != old_fingerprint
    with pytest.raises(HostKeyMismatch) as caught:
        await pool.connection(make_target(sshd, pinned_host_key=old_key)).run(["true"])
    message = caught.value.detail
    assert f"{sshd.host}:{sshd.port}" in message
    assert old_fingerprint in message
    assert sshd.host_fingerprint in message
    # The new key, once pinned, works.
    await pool.connection(make_target(sshd)).run(["true"])


async def test_pinned_key_of_another_type_is_refused(pool: SSHPool, sshd: Sshd) -> None:
    rsa = asyncssh.generate_private_key("ssh-rsa", key_size=2048)
    other = rsa.export_public_key("openssh").decode().strip()
    with pytest.raises(HostKeyMismatch) as caught:
        await pool.connection(make_target(sshd, pinned_host_key=other)).run(["true"])
    assert rsa.get_fingerprint("sha256") in caught.value.detail
    assert sshd.host_fingerprint in caught.value.detail


async def test_invalid_pinned_key(pool: SSHPool, sshd: Sshd) -> None:
    with pytest.raises(HostError, match="not a valid"):
        await pool.connection(make_target(sshd, pinned_host_key="ssh-ed25519 nope")).run(["true"])


async def test_refused_key(pool: SSHPool, sshd: Sshd) -> None:
    stranger = asyncssh.generate_private_key("ssh-ed25519").export_private_key().decode()
    with pytest.raises(HostAuthFailed, match=sshd.username):
        await pool.connection(make_target(sshd, private_key=stranger)).run(["true"])


async def test_unreadable_private_key(pool: SSHPool, sshd: Sshd) -> None:
    with pytest.raises(HostAuthFailed, match="cannot be loaded") as caught:
        await pool.connection(make_target(sshd, private_key="not a key")).run(["true"])
    assert "not a key" not in str(caught.value)


async def test_nothing_listening(pool: SSHPool, sshd: Sshd) -> None:
    with pytest.raises(HostUnreachable, match="refused"):
        await pool.connection(make_target(sshd, port=free_port())).run(["true"])


async def test_unknown_host_name(pool: SSHPool, sshd: Sshd) -> None:
    with pytest.raises(HostUnreachable):
        await pool.connection(make_target(sshd, host="ocore-test.invalid")).run(["true"])


async def test_concurrent_calls_share_one_connection(
    pool: SSHPool, sshd: Sshd, ssh_target: HostTarget
) -> None:
    assert await eventually(lambda: not sshd.connection_pids())
    host = pool.connection(ssh_target)
    results = await asyncio.gather(
        *(host.run(["sh", "-c", "sleep 0.3; echo ok"]) for _ in range(20))
    )
    assert {r.stdout for r in results} == {"ok\n"}
    assert len(sshd.connection_pids()) == 1


async def test_connection_dropped_mid_command(
    pool: SSHPool, sshd: Sshd, ssh_target: HostTarget, tmp_path: Path
) -> None:
    host = pool.connection(ssh_target)
    pidfile = tmp_path / "pid"
    task = asyncio.create_task(host.run(["sh", "-c", f"echo $$ > {pidfile}; exec sleep 30"]))
    assert await eventually(lambda: bool(read_pids(pidfile)))
    (pid,) = read_pids(pidfile)
    # Only the sshd processes, as a dying client (a worker killed mid-job) does.
    assert sshd.drop_connections()
    with pytest.raises(HostUnreachable, match="lost while running"):
        await asyncio.wait_for(task, 10)
    # The orphaned command ends too: nothing runs on without the job that started it.
    assert await eventually(lambda: pid_gone(pid))
    assert (await host.run(["echo", "back"])).stdout == "back\n"


async def test_connection_dropped_mid_stream(
    pool: SSHPool, sshd: Sshd, ssh_target: HostTarget
) -> None:
    host = pool.connection(ssh_target)
    lines: list[str] = []
    with pytest.raises(HostUnreachable):
        await drain(
            host.stream(["sh", "-c", "echo one; exec sleep 30"]), lines, sshd.kill_connections
        )
    assert lines == ["one"]
    assert (await host.run(["echo", "back"])).stdout == "back\n"


async def test_dead_idle_connection_is_replaced_transparently(
    pool: SSHPool, sshd: Sshd, ssh_target: HostTarget, caplog: pytest.LogCaptureFixture
) -> None:
    host = pool.connection(ssh_target)
    await host.run(["true"])
    # Killed without yielding to the event loop, so the client still believes
    # in the connection and the next call trips over it.
    sshd.kill_connections()
    with caplog.at_level(logging.INFO, logger="ocore.hosts.ssh"):
        assert (await host.run(["echo", "again"])).stdout == "again\n"
        assert (await host.read_file("/etc/hostname")).decode() == (
            await host.run(["cat", "/etc/hostname"])
        ).stdout
    assert "reconnecting" in caplog.text


async def test_sshd_restart_between_calls(
    pool: SSHPool, sshd: Sshd, ssh_target: HostTarget
) -> None:
    host = pool.connection(ssh_target)
    await host.run(["true"])
    sshd.restart()
    await asyncio.sleep(0.1)
    assert (await host.run(["echo", "ok"])).stdout == "ok\n"


def test_private_key_never_in_repr(ssh_target: HostTarget) -> None:
    assert "PRIVATE KEY" in ssh_target.private_key
    assert "PRIVATE" not in repr(ssh_target)


def test_connect_picks_the_implementation(pool: SSHPool, ssh_target: HostTarget) -> None:
    assert isinstance(connect(None), LocalHost)
    assert isinstance(connect(HostTarget.local_machine("srv-1")), LocalHost)
    assert isinstance(connect(ssh_target, pool), HostConnection)
    assert not isinstance(connect(ssh_target, pool), LocalHost)
    with pytest.raises(ValueError, match="SSHPool"):
        connect(ssh_target)
    with pytest.raises(ValueError, match="host"):
        HostTarget(key="srv-2", host="", username="root")
