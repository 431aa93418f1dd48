"""Running an instance's Odoo on a host: native processes or containers, blue/green."""

from __future__ import annotations

from ocore.hosts.runtime.base import (
    COLOURS,
    Colour,
    ColourPorts,
    InstanceLayout,
    ProcessStatus,
    Runtime,
    check_colour,
    check_slug,
    other_colour,
    wait_http_healthy,
)
from ocore.hosts.runtime.native import NativeRuntime
from ocore.hosts.runtime.proxy import NginxProxy, NginxSettings, Upstream, check_domain, render_site

__all__ = [
    "COLOURS",
    "Colour",
    "ColourPorts",
    "InstanceLayout",
    "NativeRuntime",
    "NginxProxy",
    "NginxSettings",
    "ProcessStatus",
    "Runtime",
    "Upstream",
    "check_colour",
    "check_domain",
    "check_slug",
    "other_colour",
    "render_site",
    "wait_http_healthy",
]
