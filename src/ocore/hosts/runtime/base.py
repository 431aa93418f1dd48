"""What every runtime (native processes, docker containers) offers, and where files live.

An instance runs as two colours, ``blue`` and ``green``, each with its own
ports; a deploy starts the idle colour, waits until it is healthy, switches
the reverse proxy to it and stops the other one.
"""

from __future__ import annotations

import asyncio
import json
import posixpath
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import httpx

from ocore.core.errors import HostError, InvalidInput
from ocore.hosts.base import HostConnection
from ocore.hosts.odoo import SUPPORTED_VERSIONS, check_int, check_path

Colour = Literal["blue", "green"]
COLOURS: tuple[Colour, ...] = ("blue", "green")
SLUG = re.compile(r"[a-z][a-z0-9-]{1,62}")
HEALTH_PATH = "/web/health"


def check_colour(value: str) -> Colour:
    if value not in COLOURS:
        raise InvalidInput(f"colour must be 'blue' or 'green', got {value!r}", field="colour")
    return value


def other_colour(colour: Colour) -> Colour:
    return "green" if check_colour(colour) == "blue" else "blue"


def check_slug(value: str) -> str:
    if not isinstance(value, str) or not SLUG.fullmatch(value):
        raise InvalidInput(
            f"invalid instance slug {value!r} (expected ^[a-z][a-z0-9-]{{1,62}}$)", field="slug"
        )
    return value


@dataclass(frozen=True)
class ProcessStatus:
    running: bool
    pid: int | None = None


@dataclass(frozen=True)
class ColourPorts:
    """The ports one colour's Odoo listens on (loopback of the host)."""

    http: int
    gevent: int

    def __post_init__(self) -> None:
        check_int("http_port", self.http, 1, 65535)
        check_int("gevent_port", self.gevent, 1, 65535)
        if self.http == self.gevent:
            raise InvalidInput("a colour's http and gevent ports must differ", field="ports")


def check_ports(ports: Mapping[Colour, ColourPorts]) -> dict[Colour, ColourPorts]:
    if set(ports) != set(COLOURS):
        raise InvalidInput("ports are needed for both blue and green", field="ports")
    used = [p for cp in ports.values() for p in (cp.http, cp.gevent)]
    if len(set(used)) != len(used):
        raise InvalidInput("blue and green must not share a port", field="ports")
    return dict(ports)


@dataclass(frozen=True)
class InstanceLayout:
    """Where an instance's files live on its host.

    ``<base>/instances/<slug>/data`` is the one data_dir (filestore, sessions)
    both colours share: a colour switch must not lose attachments. Per
    colour: ``odoo.conf``, pid file, log file and the addons it runs.
    Odoo itself: ``<base>/odoo/<version>/`` is the checkout (``odoo-bin``)
    with its virtualenv in ``<base>/odoo/<version>/venv``.
    """

    base_dir: str
    slug: str

    def __post_init__(self) -> None:
        check_path("base_dir", self.base_dir)
        check_slug(self.slug)
        # One spelling of the base, so paths compare equal (the pid check relies on it).
        object.__setattr__(self, "base_dir", posixpath.normpath(self.base_dir))

    @property
    def instance_dir(self) -> str:
        return posixpath.join(self.base_dir, "instances", self.slug)

    @property
    def data_dir(self) -> str:
        return posixpath.join(self.instance_dir, "data")

    def colour_dir(self, colour: Colour) -> str:
        return posixpath.join(self.instance_dir, check_colour(colour))

    def conf_path(self, colour: Colour) -> str:
        return posixpath.join(self.colour_dir(colour), "odoo.conf")

    def pid_path(self, colour: Colour) -> str:
        return posixpath.join(self.colour_dir(colour), "odoo.pid")

    def log_path(self, colour: Colour) -> str:
        return posixpath.join(self.colour_dir(colour), "odoo.log")

    def colour_venv(self, colour: Colour) -> str:
        """The project's Python packages for the code a colour runs (built by deploys)."""
        return posixpath.join(self.colour_dir(colour), "venv")

    def colour_python(self, colour: Colour) -> str:
        return posixpath.join(self.colour_venv(colour), "bin", "python")

    def addons_dir(self, colour: Colour) -> str:
        """The custom code a colour runs: a deploy checks the new commit out here."""
        return posixpath.join(self.colour_dir(colour), "addons")

    def checkout(self, version: str) -> str:
        if version not in SUPPORTED_VERSIONS:
            raise InvalidInput(f"unsupported Odoo version {version!r}", field="version")
        return posixpath.join(self.base_dir, "odoo", version)

    def odoo_bin(self, version: str) -> str:
        return posixpath.join(self.checkout(version), "odoo-bin")

    def python(self, version: str) -> str:
        return posixpath.join(self.checkout(version), "venv", "bin", "python")


async def colour_python(
    host: HostConnection, layout: InstanceLayout, colour: Colour, version: str
) -> str:
    """The colour's own venv when a deploy built one, else the Odoo version's shared venv.

    Read off the host rather than the records: a colour only ever runs code
    checked out by a deploy together with its venv, or no code of the project.
    """
    own = layout.colour_python(colour)
    if (await host.run(["test", "-x", own], check=False)).ok:
        return own
    return layout.python(version)


@runtime_checkable
class Runtime(Protocol):
    """One instance's Odoo, run as two colours behind the host's reverse proxy.

    Every method is idempotent, so a job retried after a crash ends in the
    same state: starting a running colour or stopping a stopped one does
    nothing.
    """

    async def start(self, colour: Colour) -> None: ...

    async def stop(self, colour: Colour, *, grace: float = 30.0) -> None:
        """Ask Odoo to shut down, and kill it if it has not within ``grace`` seconds."""
        ...

    async def restart(self, colour: Colour) -> None: ...

    async def status(self, colour: Colour) -> ProcessStatus: ...

    async def logs(self, colour: Colour, *, lines: int = 200) -> list[str]:
        """The last ``lines`` lines of the colour's Odoo log."""
        ...

    async def wait_healthy(self, colour: Colour, timeout: float = 120.0) -> None:
        """Return once ``/web/health`` answers 200 "pass"; raise ``HostError`` with the log tail."""
        ...

    async def switch_traffic(self, to_colour: Colour) -> None:
        """Point the reverse proxy at ``to_colour``; on failure traffic stays where it was."""
        ...


async def wait_http_healthy(
    host: HostConnection,
    port: int,
    *,
    timeout: float,
    alive: Callable[[], Awaitable[bool]],
    log_tail: Callable[[], Awaitable[list[str]]],
    what: str,
    interval: float = 1.0,
) -> None:
    """Poll ``GET /web/health`` on the host's loopback ``port`` through a tunnel.

    Odoo listens on the host's loopback only, hence the tunnel. A process
    that died is reported at once instead of after the whole timeout; either
    way the error carries the log tail, which is where Odoo says why.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last = "no answer yet"
    # Quick first retries (a starting Odoo is often up within a second), backing off to `interval`.
    pause = min(0.1, interval)
    async with (
        host.open_tunnel("127.0.0.1", port) as local_port,
        httpx.AsyncClient(timeout=5.0, trust_env=False) as client,
    ):
        url = f"http://127.0.0.1:{local_port}{HEALTH_PATH}"
        while True:
            try:
                response = await client.get(url)
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}".rstrip(": ")
            else:
                if response.status_code == 200 and _passes(response):
                    return
                last = f"HTTP {response.status_code}: {response.text[:200]}"
            if not await alive():
                raise await _unhealthy(f"{what} exited before it became healthy", last, log_tail)
            if loop.time() >= deadline:
                raise await _unhealthy(
                    f"{what} did not become healthy within {timeout:g}s", last, log_tail
                )
            await asyncio.sleep(min(pause, max(deadline - loop.time(), 0.0)))
            pause = min(pause * 1.5, interval)


def _passes(response: httpx.Response) -> bool:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return isinstance(body, dict) and body.get("status") == "pass"


async def _unhealthy(
    message: str, last: str, log_tail: Callable[[], Awaitable[list[str]]]
) -> HostError:
    try:
        tail = await log_tail()
    except HostError as exc:
        tail = [f"(log unavailable: {exc.detail})"]
    text = "\n".join(tail)
    detail = f"{message} (last health check: {last})"
    if text:
        detail += f"; log tail:\n{text}"
    return HostError(detail, health=last, log_tail=text)
