"""An environment's mail catcher: a Mailpit process next to the instance, on its host.

Mailpit (https://mailpit.axllent.org) receives the outgoing mail of a
non-production Odoo over SMTP and shows it in a web UI. One process per
instance, started detached like Odoo (``ocore.hosts.runtime.detached``):

- ``--smtp 127.0.0.1:<smtp_port>``: the neutralized database's outgoing mail
  server points here;
- ``--listen 127.0.0.1:<smtp_port + 1>``: the web UI and JSON API, reached by
  ocore's proxy through an SSH tunnel (loopback only, nothing is exposed);
- ``--webroot``: the path the UI is served under, so its pages and API calls
  work unchanged behind ocore's proxy path;
- ``--database <instance_dir>/mailpit/mailpit.db``: the messages survive a
  restart of the process, and the path (in the command line) is what tells
  this instance's Mailpit from any other process.

The binary is ``<base_dir>/bin/mailpit`` when that is executable (a version
pinned for this ocore), else ``mailpit`` on the host's ``PATH``.

Ports: ``mail_ports`` derives the pair from the instance's port block, which
is unique per server (a database constraint on the instances), so two
instances never get the same pair, with no allocation table, lock or race.
"""

from __future__ import annotations

import asyncio
import logging
import posixpath

import httpx

from ocore.core.errors import HostError, InvalidInput
from ocore.hosts.base import HostConnection
from ocore.hosts.odoo import check_int
from ocore.hosts.runtime import detached
from ocore.hosts.runtime.base import InstanceLayout, ProcessStatus

_log = logging.getLogger(__name__)

BINARY = "mailpit"
# Instance port blocks are four ports wide (blue http/gevent, green http/gevent).
BLOCK = 4
LOWEST_PORT = 1024
READY_TIMEOUT = 30.0
# Finds the binary: the pinned one under the base directory first, then PATH.
_WHICH = 'if [ -f "$1" ] && [ -x "$1" ]; then echo "$1"; else command -v mailpit; fi'


def mail_ports(block_base: int, port_min: int, port_max: int) -> tuple[int, int] | None:
    """(SMTP, web UI) ports of the instance whose port block starts at ``block_base``.

    Instance blocks are ``port_min + 4·i`` (``OCORE_INSTANCE_PORT_MIN/MAX``);
    block ``i`` gets ``M + 2·i`` (SMTP) and ``M + 2·i + 1`` (UI), where the
    mail window ``[M, M + 2·N)`` (N blocks) sits right below the instance
    window, or right above it when there is no room below. Defaults: instances
    20000-29999, mail catchers 15000-19999. None when the block is not in the
    window (the settings changed since) or neither side has room.
    """
    blocks = len(range(port_min, port_max - BLOCK + 2, BLOCK))
    index, offset = divmod(block_base - port_min, BLOCK)
    if offset or not 0 <= index < blocks:
        return None
    width = 2 * blocks
    if port_min - width >= LOWEST_PORT:
        start = port_min - width
    elif port_max + width <= 65535:
        start = port_max + 1
    else:
        return None
    smtp = start + 2 * index
    return smtp, smtp + 1


class MailCatcher:
    """The Mailpit process of one instance: find the binary, start, check, stop."""

    def __init__(
        self,
        host: HostConnection,
        layout: InstanceLayout,
        smtp_port: int | None = None,
        *,
        webroot: str = "/",
    ) -> None:
        """``smtp_port`` (the UI listens on the next port) is needed to start, not to stop."""
        if smtp_port is not None:
            check_int("smtp_port", smtp_port, 1, 65534)
        if not (webroot.startswith("/") and webroot.endswith("/")) or any(
            c.isspace() or c in "\"'\\" for c in webroot
        ):
            raise InvalidInput(f"invalid Mailpit webroot {webroot!r}", field="webroot")
        self.host = host
        self.layout = layout
        self.smtp_port = smtp_port
        self.webroot = webroot

    @property
    def ui_port(self) -> int:
        if self.smtp_port is None:
            raise InvalidInput("the mail catcher's ports are not known", field="smtp_port")
        return self.smtp_port + 1

    # -- where things are --------------------------------------------------

    @property
    def directory(self) -> str:
        return posixpath.join(self.layout.instance_dir, "mailpit")

    @property
    def pid_path(self) -> str:
        return posixpath.join(self.directory, "mailpit.pid")

    @property
    def log_path(self) -> str:
        return posixpath.join(self.directory, "mailpit.log")

    @property
    def database_path(self) -> str:
        return posixpath.join(self.directory, "mailpit.db")

    @property
    def pinned_binary(self) -> str:
        return posixpath.join(self.layout.base_dir, "bin", BINARY)

    def command(self, binary: str) -> list[str]:
        ui_port = self.ui_port
        return [
            binary,
            "--smtp",
            f"127.0.0.1:{ui_port - 1}",
            "--listen",
            f"127.0.0.1:{ui_port}",
            "--webroot",
            self.webroot,
            "--database",
            self.database_path,
        ]

    # -- lifecycle ---------------------------------------------------------

    async def find_binary(self) -> str | None:
        """``<base_dir>/bin/mailpit`` if executable, else ``mailpit`` on PATH, else None."""
        found = await self.host.run(
            ["sh", "-c", _WHICH, "ocore-which", self.pinned_binary], check=False
        )
        path = found.stdout.strip().splitlines()
        return path[0] if found.ok and path else None

    async def status(self) -> ProcessStatus:
        pid = await detached.read_pid(self.host, self.pid_path)
        if pid is None or not await self._is_ours(pid):
            return ProcessStatus(running=False, pid=None)
        return ProcessStatus(running=True, pid=pid)

    async def start(self, binary: str) -> int:
        """Start Mailpit detached (nothing to do when it runs already); returns its pid."""
        status = await self.status()
        if status.running and status.pid is not None:
            return status.pid
        await self.host.run(["mkdir", "-p", "-m", "0700", "--", self.directory])
        launched = await detached.launch(
            self.host, self.pid_path, self.log_path, self.command(binary), name="ocore-mailpit"
        )
        pid = launched.stdout.strip()
        if not (pid.isdigit() and await self._is_ours(int(pid))):
            tail = "\n".join([*launched.stderr.splitlines(), *await self.logs(lines=30)])
            raise HostError(
                f"{self._what()} exited right after its start; log tail:\n{tail}", log_tail=tail
            )
        _log.info("started %s (pid %s)", self._what(), pid)
        return int(pid)

    async def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Return once the web UI answers 200 at the webroot; raise ``HostError`` with the log."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last = "no answer yet"
        pause = 0.1
        async with (
            self.host.open_tunnel("127.0.0.1", self.ui_port) as local_port,
            httpx.AsyncClient(timeout=5.0, trust_env=False) as client,
        ):
            url = f"http://127.0.0.1:{local_port}{self.webroot}"
            while True:
                try:
                    response = await client.get(url)
                except httpx.HTTPError as exc:
                    last = f"{type(exc).__name__}: {exc}".rstrip(": ")
                else:
                    if response.status_code == 200:
                        return
                    last = f"HTTP {response.status_code}"
                if not (await self.status()).running:
                    raise await self._failed(f"{self._what()} exited before its UI answered", last)
                if loop.time() >= deadline:
                    raise await self._failed(
                        f"{self._what()}'s UI did not answer within {timeout:g}s", last
                    )
                await asyncio.sleep(min(pause, max(deadline - loop.time(), 0.0)))
                pause = min(pause * 1.5, 1.0)

    async def stop(self, *, grace: float = 10.0) -> bool:
        """Stop it if it runs; True when there was a process to stop."""
        status = await self.status()
        stopped = False
        if status.running and status.pid is not None:
            await detached.terminate(
                self.host, status.pid, self._is_ours, grace=grace, what=self._what()
            )
            stopped = True
        await self.host.run(["rm", "-f", "--", self.pid_path])
        return stopped

    async def logs(self, *, lines: int = 200) -> list[str]:
        check_int("lines", lines, 1, 100_000)
        return await detached.log_tail(self.host, self.log_path, lines)

    # -- helpers -----------------------------------------------------------

    def _what(self) -> str:
        return f"Mailpit of {self.layout.slug}"

    async def _is_ours(self, pid: int) -> bool:
        return await detached.cmdline_has(self.host, pid, self.database_path)

    async def _failed(self, message: str, last: str) -> HostError:
        try:
            tail = "\n".join(await self.logs(lines=30))
        except HostError as exc:
            tail = f"(log unavailable: {exc.detail})"
        detail = f"{message} (last check: {last})"
        if tail:
            detail += f"; log tail:\n{tail}"
        return HostError(detail, log_tail=tail)


__all__ = ["MailCatcher", "mail_ports"]
