"""The ``ocore`` client as CI runs it: a subprocess talking HTTP to a live ocore.

The live server (uvicorn on a loopback port, jobs in-process) and the real Odoo
host come from the deployments fixtures; the CLI runs as ``python -m ocore.cli``
without blocking the event loop that serves it.
"""

from __future__ import annotations

import asyncio
import os
import pty
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from ocore.app import create_app
from ocore.core.db import Database
from ocore.settings import Settings
from tests.conftest import Tenant
from tests.deployments.conftest import (  # noqa: F401 - fixtures
    api,
    base_dir,
    nginx,
    repo,
    sshd,
)
from tests.fixtures.http_server import serving
from tests.fixtures.ports import free_port_window

OCORE = [sys.executable, "-m", "ocore.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def live(settings: Settings, database: Database) -> AsyncIterator[str]:
    """ocore over real HTTP on a loopback port, jobs in-process (the deployments
    pattern), with instance ports of their own: other test sessions on this machine
    allocate from the default range and would collide with ours."""
    base = free_port_window(200)
    app = create_app(
        settings.model_copy(
            update={
                "redis_url": None,
                "reconcile_interval_seconds": 1,
                "instance_port_min": base,
                "instance_port_max": base + 199,
            }
        )
    )
    app.state.database = database
    async with serving(app) as port:
        yield f"http://127.0.0.1:{port}"


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


Cli = Callable[..., Awaitable[Result]]


async def run_ocore(
    *args: str,
    home: Path,
    url: str | None = None,
    token: str | None = None,
    timeout: float = 300,
) -> Result:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCORE_")}
    env.update(
        {
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "COLUMNS": "200",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if url is not None:
        env["OCORE_URL"] = url
    if token is not None:
        env["OCORE_TOKEN"] = token
    process = await asyncio.create_subprocess_exec(
        *OCORE,
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return Result(process.returncode, stdout.decode(), stderr.decode())


async def run_ocore_tty(*args: str, home: Path, url: str, token: str) -> Result:
    """The CLI with its stdout on a pseudo-terminal, as a person at a terminal runs it."""
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCORE_")}
    env.update(
        {
            "HOME": str(home),
            "OCORE_URL": url,
            "OCORE_TOKEN": token,
            "TERM": "xterm",
            "COLUMNS": "200",
        }
    )
    process = await asyncio.create_subprocess_exec(
        *OCORE,
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=slave,
        stderr=asyncio.subprocess.PIPE,
    )
    os.close(slave)
    loop = asyncio.get_running_loop()
    chunks: list[bytes] = []
    closed = asyncio.Event()

    def readable() -> None:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            data = b""
        if data:
            chunks.append(data)
        else:
            loop.remove_reader(master)
            closed.set()

    loop.add_reader(master, readable)
    try:
        assert process.stderr is not None
        stderr = await asyncio.wait_for(process.stderr.read(), 120)
        await asyncio.wait_for(process.wait(), 120)
        await asyncio.wait_for(closed.wait(), 10)
    finally:
        loop.remove_reader(master)
        os.close(master)
    assert process.returncode is not None
    return Result(process.returncode, b"".join(chunks).decode(errors="replace"), stderr.decode())


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def cli(live: str, tenant: Tenant, home: Path) -> Cli:
    """``await cli("projects", "list")``: the CLI against the live server as the tenant."""

    async def run(*args: str, url: str | None = live, token: str | None = None) -> Result:
        return await run_ocore(
            *args, home=home, url=url, token=token if token is not None else tenant.owner.token
        )

    return run
