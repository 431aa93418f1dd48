"""Native runtime: one ``odoo-bin`` process per colour, from a checkout and venv on the host.

Processes are started detached (their own session via ``setsid``, stdio on
the log file) so they outlive the SSH connection that started them. A
colour's process is found through its pid file and recognized by its
command line, which names the colour's ``odoo.conf``: a pid reused by some
other program is never mistaken for Odoo, let alone signalled.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence

from ocore.core.errors import Conflict, HostError, InvalidInput
from ocore.hosts.base import HostConnection
from ocore.hosts.odoo import OdooConfig, check_int, render_odoo_conf
from ocore.hosts.runtime import detached
from ocore.hosts.runtime.base import (
    Colour,
    ColourPorts,
    InstanceLayout,
    ProcessStatus,
    check_colour,
    check_ports,
    colour_python,
    wait_http_healthy,
)
from ocore.hosts.runtime.proxy import NginxProxy, Upstream

_log = logging.getLogger(__name__)


class NativeRuntime:
    """Runs an instance's two colours as detached ``odoo-bin`` processes.

    ``config`` is the instance's Odoo configuration; per colour the runtime
    sets what the layout and the ports decide (ports, pid file, log file, the
    shared data_dir). ``proxy`` and ``domains`` are needed for
    ``switch_traffic`` only.
    """

    def __init__(
        self,
        host: HostConnection,
        layout: InstanceLayout,
        config: OdooConfig,
        ports: Mapping[Colour, ColourPorts],
        *,
        proxy: NginxProxy | None = None,
        domains: Sequence[str] = (),
        colour_addons: Mapping[Colour, Sequence[str]] | None = None,
    ) -> None:
        self.host = host
        self.layout = layout
        self.config = config
        self.ports = check_ports(ports)
        self.proxy = proxy
        self.domains = tuple(domains)
        # The addons directories of the code deployed on each colour (blue and
        # green run different commits during a deploy), ahead of the instance's own.
        self.colour_addons = {c: tuple(p) for c, p in (colour_addons or {}).items()}

    def config_for(self, colour: Colour) -> OdooConfig:
        ports = self.ports[check_colour(colour)]
        return dataclasses.replace(
            self.config,
            addons_path=(*self.colour_addons.get(colour, ()), *self.config.addons_path),
            http_port=ports.http,
            gevent_port=ports.gevent,
            data_dir=self.layout.data_dir,
            logfile=self.layout.log_path(colour),
            pidfile=self.layout.pid_path(colour),
        )

    def command(self, colour: Colour, python: str) -> list[str]:
        """How the colour's Odoo is started (before the detaching wrapper)."""
        return [
            python,
            self.layout.odoo_bin(self.config.version),
            "-c",
            self.layout.conf_path(colour),
        ]

    async def start(self, colour: Colour) -> None:
        if (await self.status(colour)).running:
            return
        conf = render_odoo_conf(self.config_for(colour))
        layout = self.layout
        await self.host.run(
            ["mkdir", "-p", "-m", "0700", "--", layout.colour_dir(colour), layout.data_dir]
        )
        await self.host.write_file(layout.conf_path(colour), conf.encode(), mode=0o600)
        python = await colour_python(self.host, layout, colour, self.config.version)
        launched = await detached.launch(
            self.host,
            layout.pid_path(colour),
            layout.log_path(colour),
            self.command(colour, python),
            name="ocore-odoo",
        )
        pid = launched.stdout.strip()
        # Catches what fails at once (no venv, no checkout); anything later is
        # for wait_healthy to find.
        if not (pid.isdigit() and await self._is_ours(colour, int(pid))):
            # stderr: the launcher's own complaints (pid file not writable...).
            tail = "\n".join([*launched.stderr.splitlines(), *await self.logs(colour, lines=30)])
            raise HostError(
                f"{self._what(colour)} exited right after its start; log tail:\n{tail}",
                log_tail=tail,
            )
        _log.info("started %s (pid %s)", self._what(colour), pid)

    async def stop(self, colour: Colour, *, grace: float = 30.0) -> None:
        if grace < 0:
            raise InvalidInput("grace must not be negative", field="grace")
        status = await self.status(colour)
        if status.running and status.pid is not None:

            async def ours(pid: int) -> bool:
                return await self._is_ours(colour, pid)

            await detached.terminate(
                self.host, status.pid, ours, grace=grace, what=self._what(colour)
            )
        # Odoo removes its pid file on a clean exit, not after SIGKILL or a crash.
        await self.host.run(["rm", "-f", "--", self.layout.pid_path(colour)])

    async def restart(self, colour: Colour) -> None:
        await self.stop(colour)
        await self.start(colour)

    async def status(self, colour: Colour) -> ProcessStatus:
        pid = await self._read_pid(colour)
        if pid is None or not await self._is_ours(colour, pid):
            return ProcessStatus(running=False, pid=None)
        return ProcessStatus(running=True, pid=pid)

    async def logs(self, colour: Colour, *, lines: int = 200) -> list[str]:
        check_int("lines", lines, 1, 100_000)
        return await detached.log_tail(self.host, self.layout.log_path(colour), lines)

    async def wait_healthy(self, colour: Colour, timeout: float = 120.0) -> None:
        async def alive() -> bool:
            return (await self.status(colour)).running

        async def tail() -> list[str]:
            return await self.logs(colour, lines=40)

        await wait_http_healthy(
            self.host,
            self.ports[check_colour(colour)].http,
            timeout=timeout,
            alive=alive,
            log_tail=tail,
            what=self._what(colour),
        )

    async def switch_traffic(self, to_colour: Colour) -> None:
        if self.proxy is None or not self.domains:
            raise InvalidInput("switching traffic needs a proxy and the instance's domains")
        if not (await self.status(to_colour)).running:
            raise Conflict(f"{self._what(to_colour)} is not running; traffic was not switched")
        ports = self.ports[to_colour]
        # The threaded server (workers = 0) has no gevent process: websockets use the HTTP port.
        websocket = ports.gevent if self.config.workers > 0 else ports.http
        await self.proxy.switch(
            self.layout.slug, self.domains, Upstream(to_colour, ports.http, websocket)
        )

    async def active_colour(self) -> Colour | None:
        """The colour the proxy sends traffic to, if a site exists."""
        if self.proxy is None:
            return None
        return await self.proxy.active_colour(self.layout.slug)

    # -- helpers -------------------------------------------------------------

    def _what(self, colour: Colour) -> str:
        return f"Odoo {self.config.version} of {self.layout.slug} ({colour})"

    async def _read_pid(self, colour: Colour) -> int | None:
        return await detached.read_pid(self.host, self.layout.pid_path(colour))

    async def _is_ours(self, colour: Colour, pid: int) -> bool:
        """Alive and running this colour's conf; a zombie's cmdline is empty, so it is not."""
        return await detached.cmdline_has(self.host, pid, self.layout.conf_path(colour))


__all__ = ["NativeRuntime"]
