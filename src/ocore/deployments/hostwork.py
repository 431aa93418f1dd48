"""What a deploy does on the host: check out, find modules, run Odoo once, switch colours."""

from __future__ import annotations

import dataclasses
import posixpath

from ocore.core.errors import CommandFailed
from ocore.deployments.steps import StepLog
from ocore.git.checkout import checkout
from ocore.hosts.odoo import odoo_command, render_odoo_conf
from ocore.hosts.runtime import Colour
from ocore.hosts.runtime.base import colour_python
from ocore.instances.hosting import Hosting

ODOO_RUN_TIMEOUT = 4 * 3600
HEALTH_TIMEOUT = 180


def cache_root(hosting: Hosting) -> str:
    return posixpath.join(hosting.server.base_dir, "git-cache")


async def check_out(hosting: Hosting, repository_url: str, sha: str, colour: Colour) -> str:
    """The commit's code in the colour's addons directory; returns the full SHA."""
    return await checkout(
        hosting.host,
        repository_url,
        sha,
        hosting.layout.addons_dir(colour),
        cache_root=cache_root(hosting),
    )


async def find_modules(hosting: Hosting, colour: Colour) -> tuple[list[str], list[str]]:
    """Module names and the addons directories holding them (modules sit at depth 1 or 2)."""
    root = hosting.layout.addons_dir(colour)
    found = await hosting.host.run(
        [
            "find",
            root,
            "-mindepth",
            "2",
            "-maxdepth",
            "3",
            "-name",
            "__manifest__.py",
            "-not",
            "-path",
            "*/.git/*",
        ],
    )
    module_dirs = sorted(posixpath.dirname(p) for p in found.stdout.split())
    names = sorted({posixpath.basename(d) for d in module_dirs})
    # A depth-1 module's parent is the checkout itself, a depth-2 one's its group dir.
    addons = sorted({posixpath.dirname(d) for d in module_dirs})
    return names, addons


async def run_odoo(
    hosting: Hosting,
    step: StepLog,
    colour: Colour,
    *,
    install: list[str],
    update: list[str],
    test_tags: str | None = None,
) -> int:
    """One ``--stop-after-init`` run of the colour's code against the database; the exit code.

    The colour's configuration minus its log file, so Odoo's output streams into the step.
    """
    layout, instance = hosting.layout, hosting.instance
    conf_path = posixpath.join(layout.colour_dir(colour), "run.conf")
    config = dataclasses.replace(hosting.runtime.config_for(colour), logfile=None, pidfile=None)
    await hosting.host.write_file(conf_path, render_odoo_conf(config).encode(), mode=0o600)
    argv = odoo_command(
        layout.checkout(instance.odoo_version),
        await colour_python(hosting.host, layout, colour, instance.odoo_version),
        conf_path,
        database=instance.database_name,
        install=install,
        update=update,
        stop_after_init=True,
        test_tags=test_tags,
        http_port=hosting.runtime.ports[colour].http if test_tags else None,
    )
    await step.log("$ odoo-bin " + " ".join(argv[2:]))
    try:
        async for line in hosting.host.stream(argv, timeout=ODOO_RUN_TIMEOUT):
            await step.log(line)
    except CommandFailed as exc:
        return exc.exit_status if exc.exit_status is not None else 1
    finally:
        await hosting.host.run(["rm", "-f", "--", conf_path], check=False)
    return 0


async def go_live(hosting: Hosting, step: StepLog, idle: Colour, old: Colour) -> None:
    """Start the idle colour, wait for health, send traffic to it, stop the old one."""
    runtime = hosting.runtime
    await runtime.restart(idle)
    await runtime.wait_healthy(idle, timeout=HEALTH_TIMEOUT)
    await step.log(f"{idle} answers /web/health")
    await runtime.switch_traffic(idle)
    await step.log(f"nginx now sends {', '.join(hosting.domains)} to {idle}")
    await runtime.stop(old)
    await step.log(f"{old} stopped")
