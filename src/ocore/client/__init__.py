"""The ``ocore`` command as a client of a remote ocore API (people and CI).

Connection: ``--url``/``OCORE_URL`` and ``--token``/``OCORE_TOKEN``, or a profile
saved by ``ocore login``. ``--json`` prints the API's objects for scripts.
"""

from __future__ import annotations

import typer

from ocore.client import deploys
from ocore.client.base import command
from ocore.client.environments import envs_app, neutralize, share_app
from ocore.client.resources import instances_app, projects_app, servers_app

CLIENT_PANEL = "Client (talks to a remote ocore API)"


def register_client(app: typer.Typer) -> None:
    """Add the client commands and groups to the main ``ocore`` app."""
    for name, group in (
        ("projects", projects_app),
        ("servers", servers_app),
        ("instances", instances_app),
        ("envs", envs_app),
        ("share", share_app),
    ):
        app.add_typer(group, name=name, rich_help_panel=CLIENT_PANEL)
    app.command("login", rich_help_panel=CLIENT_PANEL)(deploys.login)
    for name, fn in (
        ("deploy", deploys.deploy),
        ("rollback", deploys.rollback),
        ("logs", deploys.logs),
        ("deployments", deploys.deployments),
        ("neutralize", neutralize),
    ):
        command(app, name, rich_help_panel=CLIENT_PANEL)(fn)
