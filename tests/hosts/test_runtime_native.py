"""NativeRuntime against real processes: the stand-in Odoo, started over SSH or locally,
real Postgres, and a private nginx switching between the colours."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from ocore.core.errors import CommandFailed, Conflict, HostError
from ocore.hosts import HostConnection, LocalHost, SSHPool
from ocore.hosts.base import HostTarget
from ocore.hosts.runtime import Colour, NativeRuntime, ProcessStatus, Runtime
from tests.fixtures.nginx import Nginx, running_nginx
from tests.fixtures.odoo_runtime import (
    ROOT_WARNING,
    RuntimeFactory,
    colour_serving,
    eventually_serving,
    exists,
    install_odoo,
    log_text,
    mode_of,
    process_running,
    text_of,
    wait_for_log,
    write_standin_knobs,
)
from tests.fixtures.odoo_standin.harness import assert_odoo_log_format, free_port
from tests.fixtures.sshd import Sshd
from tests.hosts.helpers import pid_gone


@pytest.fixture(scope="module")
def odoo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The host's base dir with Odoo 17.0 installed (16.0 and 18.0 deliberately not)."""
    base = tmp_path_factory.mktemp("ocore-home")
    install_odoo(base, "17.0")
    return base


@pytest.fixture(scope="module")
def nginx() -> Iterator[Nginx]:
    with running_nginx() as server:
        yield server


@pytest.fixture
async def make_runtime(odoo_home: Path, nginx: Nginx) -> AsyncIterator[RuntimeFactory]:
    factory = RuntimeFactory(odoo_home, nginx)
    yield factory
    await factory.cleanup()


@pytest.fixture
def ssh_host(pool: SSHPool, ssh_target: HostTarget) -> HostConnection:
    return pool.connection(ssh_target)


def odoo_lines(lines: list[str]) -> str:
    # Odoo writes this one on stderr before logging is set up (the test host runs as root).
    return "\n".join(line for line in lines if line != ROOT_WARNING)


async def test_start_health_logs_stop(host: HostConnection, make_runtime: RuntimeFactory) -> None:
    runtime = make_runtime(host)
    assert isinstance(runtime, Runtime)
    layout = runtime.layout
    assert await runtime.status("blue") == ProcessStatus(running=False, pid=None)

    await runtime.start("blue")
    status = await runtime.status("blue")
    assert status.running
    assert status.pid is not None
    await runtime.start("blue")  # already running: nothing happens
    assert await runtime.status("blue") == status
    await runtime.wait_healthy("blue", timeout=20)

    assert mode_of(layout.conf_path("blue")) == 0o600  # admin and database passwords
    text = text_of(layout.conf_path("blue"))
    assert f"http_port = {runtime.ports['blue'].http}\n" in text
    assert f"gevent_port = {runtime.ports['blue'].gevent}\n" in text
    assert f"data_dir = {layout.data_dir}\n" in text
    assert text_of(layout.pid_path("blue")).strip() == str(status.pid)

    await wait_for_log(runtime, "blue", "Modules loaded.")
    lines = await runtime.logs("blue", lines=500)
    assert_odoo_log_format(odoo_lines(lines))
    assert any("odoo.service.server: HTTP service (werkzeug) running on" in ln for ln in lines)
    assert len(await runtime.logs("blue", lines=3)) == 3

    await runtime.stop("blue", grace=10)
    assert await runtime.status("blue") == ProcessStatus(running=False, pid=None)
    assert pid_gone(status.pid)
    assert "odoo.service.server: Initiating shutdown" in log_text(runtime, "blue")
    assert not exists(layout.pid_path("blue"))
    await runtime.stop("blue")  # stopping a stopped colour is fine
    assert await runtime.status("green") == ProcessStatus(running=False, pid=None)
    assert await runtime.logs("green") == []


async def test_restart_replaces_the_process(
    ssh_host: HostConnection, make_runtime: RuntimeFactory
) -> None:
    runtime = make_runtime(ssh_host)
    await runtime.start("green")
    before = await runtime.status("green")
    await runtime.restart("green")
    after = await runtime.status("green")
    assert after.running
    assert after.pid != before.pid
    assert before.pid is not None
    assert pid_gone(before.pid)
    await runtime.wait_healthy("green", timeout=20)
    await runtime.stop("green")


async def test_process_survives_the_ssh_connection(
    pool: SSHPool, ssh_host: HostConnection, sshd: Sshd, make_runtime: RuntimeFactory
) -> None:
    runtime = make_runtime(ssh_host)
    await runtime.start("blue")
    pid = (await runtime.status("blue")).pid
    assert pid is not None
    await pool.close_all()
    # A dropped link, not just a polite close: every sshd session process dies.
    sshd.kill_connections()
    await asyncio.sleep(0.5)
    assert process_running(pid, runtime.layout.conf_path("blue"))
    # A fresh connection finds the same process and it serves.
    assert await runtime.status("blue") == ProcessStatus(running=True, pid=pid)
    await runtime.wait_healthy("blue", timeout=20)
    await runtime.stop("blue")


async def test_stop_kills_what_ignores_sigterm(
    ssh_host: HostConnection, make_runtime: RuntimeFactory
) -> None:
    runtime = make_runtime(ssh_host, workers=2)
    await runtime.start("blue")
    await runtime.wait_healthy("blue", timeout=20)
    pid = (await runtime.status("blue")).pid
    assert pid is not None
    # A stopped process cannot act on SIGTERM: only the SIGKILL after the grace period ends it.
    os.kill(pid, signal.SIGSTOP)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await runtime.stop("blue", grace=1)
    assert 1 <= loop.time() - started < 10
    assert pid_gone(pid)
    assert await runtime.status("blue") == ProcessStatus(running=False, pid=None)
    assert not exists(runtime.layout.pid_path("blue"))


async def test_unhealthy_colour_reports_the_log_tail(
    ssh_host: HostConnection, make_runtime: RuntimeFactory
) -> None:
    runtime = make_runtime(ssh_host)
    write_standin_knobs(runtime, health="fail")
    await runtime.start("blue")
    with pytest.raises(HostError) as caught:
        await runtime.wait_healthy("blue", timeout=2)
    detail = caught.value.detail
    assert "(blue) did not become healthy within 2s" in detail
    assert "HTTP 500" in detail
    assert '"fail"' in detail
    assert "odoo.service.server: HTTP service (werkzeug) running on" in detail
    assert caught.value.extra["log_tail"] in detail
    await runtime.stop("blue")


async def test_colour_that_exits_is_reported_at_once(
    ssh_host: HostConnection, make_runtime: RuntimeFactory
) -> None:
    # Nothing listens there: Odoo cannot create its database and exits.
    runtime = make_runtime(ssh_host, db_port=free_port())
    loop = asyncio.get_running_loop()
    started = loop.time()
    # Caught by start itself when the process is gone by then, else by wait_healthy.
    with pytest.raises(HostError) as caught:
        await start_healthy(runtime, "blue")
    assert loop.time() - started < 15
    assert "(blue) exited" in caught.value.detail
    assert "ConnectionRefusedError" in caught.value.detail
    assert await runtime.status("blue") == ProcessStatus(running=False, pid=None)
    await runtime.stop("blue")  # a stale pid file is "already stopped"
    assert not exists(runtime.layout.pid_path("blue"))


async def test_missing_odoo_version_fails_clearly(
    ssh_host: HostConnection, make_runtime: RuntimeFactory
) -> None:
    runtime = make_runtime(ssh_host, version="16.0")
    with pytest.raises(HostError) as caught:
        await start_healthy(runtime, "blue")
    assert "not found" in caught.value.detail
    assert runtime.layout.python("16.0") in caught.value.detail


async def test_switch_traffic_between_colours(
    ssh_host: HostConnection, make_runtime: RuntimeFactory, nginx: Nginx
) -> None:
    runtime = make_runtime(ssh_host, workers=2)
    slug = runtime.layout.slug
    assert await runtime.active_colour() is None
    await start_both(runtime)
    async with httpx.AsyncClient(base_url=nginx.url, headers={"Host": f"www.{slug}.test"}) as web:
        await runtime.switch_traffic("blue")
        await eventually_serving(web, runtime, "blue")
        assert await runtime.active_colour() == "blue"

        await runtime.switch_traffic("green")
        await eventually_serving(web, runtime, "green")
        assert await runtime.active_colour() == "green"
        for _ in range(5):
            assert await colour_serving(web, runtime) == "green"
        site = text_of(runtime.proxy.site_path(slug))  # type: ignore[union-attr]
        assert f"server 127.0.0.1:{runtime.ports['green'].http};" in site
        # workers > 0: websockets go to the gevent port, which only green's Odoo listens on.
        assert f"server 127.0.0.1:{runtime.ports['green'].gevent};" in site
        websocket = await web.get("/websocket")
        assert websocket.status_code == 400
        assert "non-websocket" in websocket.text

        await runtime.switch_traffic("green")  # again: idempotent
        assert await colour_serving(web, runtime) == "green"
        other = await web.get("/web/health", headers={"Host": "unknown.test"})
        assert other.status_code == 404  # nginx's default server, not an instance
    await asyncio.gather(runtime.stop("blue"), runtime.stop("green"))


async def test_rejected_nginx_config_keeps_the_old_colour(
    ssh_host: HostConnection, make_runtime: RuntimeFactory, nginx: Nginx
) -> None:
    runtime = make_runtime(ssh_host)
    slug = runtime.layout.slug
    await start_both(runtime)
    await runtime.switch_traffic("blue")
    site = runtime.proxy.site_path(slug)  # type: ignore[union-attr]
    before = text_of(site)
    broken = nginx.sites / "zz-broken.conf"
    await LocalHost().write_file(str(broken), b"server { bogus_directive on; }\n", mode=0o644)
    try:
        async with httpx.AsyncClient(base_url=nginx.url, headers={"Host": f"{slug}.test"}) as web:
            await eventually_serving(web, runtime, "blue")
            with pytest.raises(CommandFailed) as caught:
                await runtime.switch_traffic("green")
            assert "bogus_directive" in caught.value.detail
            assert "nothing was reloaded" in caught.value.detail
            assert text_of(site) == before
            assert await runtime.active_colour() == "blue"
            await asyncio.sleep(0.3)
            for _ in range(5):
                assert await colour_serving(web, runtime) == "blue"
    finally:
        await LocalHost().run(["rm", "-f", str(broken)])
    await asyncio.gather(runtime.stop("blue"), runtime.stop("green"))


async def test_switch_to_a_stopped_colour_is_refused(
    ssh_host: HostConnection, make_runtime: RuntimeFactory
) -> None:
    runtime = make_runtime(ssh_host)
    with pytest.raises(Conflict):
        await runtime.switch_traffic("green")
    assert await runtime.active_colour() is None


async def start_healthy(runtime: NativeRuntime, colour: Colour) -> None:
    await runtime.start(colour)
    await runtime.wait_healthy(colour, timeout=20)


async def start_both(runtime: NativeRuntime) -> None:
    await start_healthy(runtime, "blue")
    # Both colours share the database: let blue finish creating it before green starts.
    await wait_for_log(runtime, "blue", "Modules loaded.")
    await start_healthy(runtime, "green")
