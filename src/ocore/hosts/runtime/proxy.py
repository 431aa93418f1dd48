"""The host's nginx in front of an instance: one site file, upstream = the live colour.

Switching colours rewrites the site file, tests the whole configuration and
reloads. If nginx rejects the configuration, the previous file is put back
and nothing is reloaded, so traffic stays on the old colour.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ocore.core.errors import CommandFailed, HostFileError, InvalidInput
from ocore.hosts.base import HostConnection
from ocore.hosts.odoo import check_int, check_path
from ocore.hosts.runtime.base import COLOURS, Colour, check_colour, check_slug

_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_LISTEN = re.compile(r"((?P<addr>[0-9.]+|\[[0-9a-f:.]+\]):)?(?P<port>[0-9]{1,5})")
_BODY_SIZE = re.compile(r"[0-9]{1,6}[kmg]?")
_MARKER = "# ocore-colour: "


def check_domain(value: str) -> str:
    """A hostname of RFC 1123 labels: it goes into ``server_name`` unquoted."""
    if not isinstance(value, str) or not value or len(value) > 253 or value != value.lower():
        raise InvalidInput(f"invalid domain name {value!r} (lower-case only)", field="domains")
    labels = value.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
        raise InvalidInput(f"invalid domain name {value!r}", field="domains")
    return value


def check_listen(value: str) -> str:
    match = _LISTEN.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidInput(f"invalid nginx listen address {value!r}", field="listen")
    check_int("listen port", int(match["port"]), 1, 65535)
    if match["addr"]:
        try:
            ipaddress.ip_address(match["addr"].strip("[]"))
        except ValueError:
            raise InvalidInput(f"invalid nginx listen address {value!r}", field="listen") from None
    return value


@dataclass(frozen=True, kw_only=True)
class NginxSettings:
    """How to drive nginx on one host.

    ``command`` is nginx with whatever has to come first (``sudo -n``,
    ``-p prefix -c conf`` for a private nginx). Production Debian/Ubuntu
    hosts include ``/etc/nginx/conf.d/*.conf`` inside ``http {}``.
    """

    sites_dir: str = "/etc/nginx/conf.d"
    command: tuple[str, ...] = ("nginx",)
    test_argv: tuple[str, ...] | None = None
    reload_argv: tuple[str, ...] | None = None
    listen: tuple[str, ...] = ("80",)
    # Odoo's web client accepts uploads up to 128 MiB by default (web.max_file_upload_size).
    client_max_body_size: str = "128m"
    # Odoo's own nginx example: long requests (reports, imports) must not be cut at 60s.
    proxy_timeout: int = 720

    def __post_init__(self) -> None:
        check_path("sites_dir", self.sites_dir)
        if not self.command:
            raise InvalidInput("the nginx command must not be empty", field="command")
        for listen in self.listen:
            check_listen(listen)
        if not self.listen:
            raise InvalidInput("nginx needs at least one listen address", field="listen")
        if not _BODY_SIZE.fullmatch(self.client_max_body_size):
            raise InvalidInput(
                f"invalid client_max_body_size {self.client_max_body_size!r}",
                field="client_max_body_size",
            )
        check_int("proxy_timeout", self.proxy_timeout, 1, 86400)

    @property
    def test(self) -> tuple[str, ...]:
        return self.test_argv or (*self.command, "-t")

    @property
    def reload(self) -> tuple[str, ...]:
        return self.reload_argv or (*self.command, "-s", "reload")


@dataclass(frozen=True)
class Upstream:
    """Where the live colour listens: websockets go to ``websocket_port``.

    With ``workers > 0`` Odoo serves websockets on its gevent port; with the
    threaded server (``workers = 0``) on the HTTP port itself.
    """

    colour: Colour
    http_port: int
    websocket_port: int

    def __post_init__(self) -> None:
        check_colour(self.colour)
        check_int("http_port", self.http_port, 1, 65535)
        check_int("websocket_port", self.websocket_port, 1, 65535)


_HEADERS = (
    # Set by nginx, never passed through from the client: with proxy_mode
    # Odoo trusts them (client IP, scheme, host for URLs and dbfilter).
    "proxy_set_header Host $host;",
    "proxy_set_header X-Forwarded-Host $host;",
    "proxy_set_header X-Forwarded-For $remote_addr;",
    "proxy_set_header X-Forwarded-Proto $scheme;",
    "proxy_set_header X-Real-IP $remote_addr;",
)


def render_site(
    settings: NginxSettings, slug: str, domains: Sequence[str], upstream: Upstream
) -> str:
    """The nginx site of one instance; every interpolated value was validated."""
    check_slug(slug)
    names = [check_domain(d) for d in domains]
    if not names:
        raise InvalidInput("an instance needs at least one domain", field="domains")
    name = "ocore_" + slug.replace("-", "_")
    timeout = settings.proxy_timeout

    def headers(indent: str) -> str:
        return "".join(f"{indent}{line}\n" for line in _HEADERS)

    # proxy_set_header is inherited only by a block that sets none itself,
    # so the websocket location repeats the common headers.
    return (
        f"# Written by ocore for instance {slug}; changes here are overwritten.\n"
        f"{_MARKER}{upstream.colour}\n"
        f"upstream {name}_http {{\n    server 127.0.0.1:{upstream.http_port};\n}}\n"
        f"upstream {name}_websocket {{\n    server 127.0.0.1:{upstream.websocket_port};\n}}\n"
        "server {\n"
        + "".join(f"    listen {listen};\n" for listen in settings.listen)
        + f"    server_name {' '.join(names)};\n"
        f"    client_max_body_size {settings.client_max_body_size};\n"
        f"    proxy_read_timeout {timeout}s;\n"
        f"    proxy_connect_timeout {timeout}s;\n"
        f"    proxy_send_timeout {timeout}s;\n"
        "    location /websocket {\n"
        f"        proxy_pass http://{name}_websocket;\n"
        "        proxy_http_version 1.1;\n"
        "        proxy_set_header Upgrade $http_upgrade;\n"
        '        proxy_set_header Connection "upgrade";\n' + headers("        ") + "    }\n"
        "    location / {\n"
        f"        proxy_pass http://{name}_http;\n"
        "        proxy_redirect off;\n" + headers("        ") + "    }\n"
        "}\n"
    )


class NginxProxy:
    """Blue/green switching through nginx on one host."""

    def __init__(self, host: HostConnection, settings: NginxSettings | None = None) -> None:
        self.host = host
        self.settings = settings or NginxSettings()

    def site_path(self, slug: str) -> str:
        return posixpath.join(self.settings.sites_dir, f"ocore-{check_slug(slug)}.conf")

    async def active_colour(self, slug: str) -> Colour | None:
        """The colour the site file points at; ``None`` when there is no site yet."""
        current = await self._read(self.site_path(slug))
        if current is None:
            return None
        for line in current.decode(errors="replace").splitlines():
            if line.startswith(_MARKER) and line[len(_MARKER) :] in COLOURS:
                return check_colour(line[len(_MARKER) :])
        return None

    async def switch(self, slug: str, domains: Sequence[str], upstream: Upstream) -> None:
        """Write the site for ``upstream``, test, reload; on a failed test restore and raise."""
        site = render_site(self.settings, slug, domains, upstream).encode()
        path = self.site_path(slug)
        previous = await self._read(path)
        if previous == site:
            # Already in place; reload anyway in case a crash came between write and reload.
            await self.host.run(self.settings.reload)
            return
        # Readable by nginx whatever user its master runs as; the file holds no secrets.
        await self.host.write_file(path, site, mode=0o644)
        await self._test_or_restore(path, previous, f"switching {slug} to {upstream.colour}")
        await self.host.run(self.settings.reload)

    async def remove(self, slug: str) -> None:
        """Take the instance's site out of nginx (idempotent)."""
        path = self.site_path(slug)
        previous = await self._read(path)
        if previous is None:
            return
        await self.host.run(["rm", "-f", "--", path])
        await self._test_or_restore(path, previous, f"removing the site of {slug}")
        await self.host.run(self.settings.reload)

    async def _test_or_restore(self, path: str, previous: bytes | None, what: str) -> None:
        result = await self.host.run(self.settings.test, check=False)
        if result.ok:
            return
        # The running nginx still has the old configuration; put the old file back
        # so a later reload (ours or anyone's) does not pick up the rejected one.
        if previous is None:
            await self.host.run(["rm", "-f", "--", path])
        else:
            await self.host.write_file(path, previous, mode=0o644)
        output = (result.stderr + result.stdout).strip()
        reasons = [ln for ln in output.splitlines() if "[emerg]" in ln or "[alert]" in ln]
        message = "; ".join(reasons) or output[-500:] or f"exit status {result.exit_status}"
        raise CommandFailed(
            f"nginx rejected the configuration while {what}; nothing was reloaded: {message}",
            exit_status=result.exit_status,
            output=output,
        )

    async def _read(self, path: str) -> bytes | None:
        try:
            return await self.host.read_file(path)
        except HostFileError as exc:
            if exc.missing:
                return None
            raise
