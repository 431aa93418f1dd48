"""Everyday client commands against a live ocore: errors, login, --json, resources."""

from __future__ import annotations

import json
import shlex
import stat
from pathlib import Path

import httpx

from tests.client.conftest import Cli, free_port, run_ocore
from tests.client.proxy import DroppingProxy
from tests.conftest import Tenant
from tests.deployments.conftest import DB, manifest, provisioned
from tests.fixtures.gitrepo import GitRepo
from tests.fixtures.nginx import Nginx
from tests.fixtures.sshd import Sshd


def plain_failure(output: str) -> None:
    assert "Traceback" not in output
    assert len(output.strip().splitlines()) == 1, output


async def test_errors_are_plain_messages(cli: Cli, live: str, tenant: Tenant) -> None:
    # Nothing listens there: the URL is named as unreachable, exit 1.
    dead = f"http://127.0.0.1:{free_port()}"
    result = await cli("projects", "list", url=dead)
    assert result.code == 1
    assert result.stderr.startswith(f"Cannot reach ocore at {dead}")
    assert result.stdout == ""
    plain_failure(result.output)

    # Not a URL, or no URL at all: usage errors, exit 2.
    result = await cli("projects", "list", url="ftp://example.com")
    assert result.code == 2
    assert "is not an http(s) URL" in result.stderr
    plain_failure(result.output)
    result = await cli("projects", "list", url="")
    assert result.code == 2
    assert "No ocore URL" in result.stderr
    plain_failure(result.output)

    # A bad token and no token: the 401 says so.
    result = await cli("projects", "list", token="not-a-jwt")
    assert result.code == 1
    assert result.stderr.startswith("401 Authentication required: ")
    assert "token is missing, invalid or expired" in result.stderr
    plain_failure(result.output)
    result = await cli("servers", "list", token="")
    assert result.code == 1
    assert result.stderr.startswith("401 ")
    assert "no token was sent" in result.stderr

    # Problem documents: title: detail; bad input exits 2, the rest 1.
    result = await cli("projects", "show", "00000000-0000-0000-0000-000000000000")
    assert result.code == 1
    assert result.stderr.startswith("Not found: ")
    plain_failure(result.output)
    result = await cli(
        "projects", "create", "--name", "x", "--repo", "file:///nope", "--odoo-version", "9.0"
    )
    assert result.code == 2
    assert result.stderr.startswith("Invalid input: ")
    plain_failure(result.output)
    result = await cli("projects", "show", "no-such-project")
    assert result.code == 2
    assert "No project with the id or name 'no-such-project'" in result.stderr
    result = await cli("deploy", "-p", "x", "-i", "y", "--branch", "main", "--tag", "v1", "--wait")
    assert result.code == 2
    assert "exactly one of --branch, --commit or --tag" in result.stderr


async def test_login_saves_a_private_profile(
    cli: Cli, live: str, tenant: Tenant, home: Path
) -> None:
    token = tenant.owner.token
    result = await run_ocore("login", "--url", live + "/api/", "--token", token, home=home)
    assert result.code == 0, result.output
    assert token not in result.output
    config = home / ".config" / "ocore" / "config.toml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert f'url = "{live}"' in config.read_text()

    # Without OCORE_URL/OCORE_TOKEN the profile is used.
    result = await run_ocore("projects", "list", "--json", home=home)
    assert result.code == 0, result.output
    assert json.loads(result.stdout) == []

    # The profile's token is never sent to another server.
    proxy = DroppingProxy("127.0.0.1", int(live.rsplit(":", 1)[1]), cut_after=10**9)
    other = await proxy.start()
    try:
        result = await run_ocore("projects", "list", "--url", other, home=home)
    finally:
        await proxy.stop()
    assert result.code == 1
    assert "no token was sent" in result.stderr

    # A bad token is refused at login and nothing is saved.
    result = await run_ocore("login", "--url", live, "--token", "x", "--profile", "bad", home=home)
    assert result.code == 1
    assert result.stderr.startswith("401 ")
    assert "bad" not in config.read_text()


async def test_projects_and_servers(
    cli: Cli,
    tenant: Tenant,
    sshd: Sshd,
    nginx: Nginx,
    base_dir: Path,
    repo: GitRepo,
    tmp_path: Path,
) -> None:
    create = ["create", "--name", "shop", "--repo", repo.url, "--odoo-version", "17.0"]
    result = await cli("projects", *create, "--json")
    assert result.code == 0, result.output
    project = json.loads(result.stdout)
    assert project["webhookSecret"]
    result = await cli("projects", "list", "--json")
    assert [p["id"] for p in json.loads(result.stdout)] == [project["id"]]
    result = await cli("projects", "show", "shop", "--json")  # by name
    assert json.loads(result.stdout)["id"] == project["id"]
    result = await cli("projects", "list")
    assert result.code == 0
    assert "shop" in result.stdout
    assert project["id"] in result.stdout

    key = tmp_path / "id_host"
    key.write_text(sshd.client_private_key)
    result = await cli(
        "servers", "create", "--name", "host-1", "--host", sshd.host, "--port", str(sshd.port),
        "--username", sshd.username, "--private-key-file", str(key),
        "--base-dir", str(base_dir), "--nginx-sites-dir", str(nginx.sites),
        "--nginx-command", shlex.join(nginx.command()),
        "--nginx-listen", f"{nginx.host}:{nginx.port}",
        "--db-host", DB["dbHost"], "--db-port", str(DB["dbPort"]),
        "--db-user", DB["dbUser"], "--db-password", DB["dbPassword"], "--json",
    )  # fmt: skip
    assert result.code == 0, result.output
    server = json.loads(result.stdout)
    assert server["name"] == "host-1"
    assert "privateKey" not in server
    result = await cli("servers", "check", "host-1", "--wait", "--json")
    assert result.code == 0, result.output
    assert json.loads(result.stdout)["status"] == "succeeded"
    result = await cli("servers", "list", "--json")
    assert [s["id"] for s in json.loads(result.stdout)] == [server["id"]]
    result = await cli("servers", "show", server["id"])
    assert result.code == 0
    assert sshd.host in result.stdout
    result = await cli("instances", "list", "--server", "host-1", "--json")
    assert json.loads(result.stdout) == []


async def test_instances_environments_and_shares(
    api: httpx.AsyncClient,
    cli: Cli,
    tenant: Tenant,
    sshd: Sshd,
    nginx: Nginx,
    base_dir: Path,
    repo: GitRepo,
) -> None:
    repo.commit({"shop_custom/__manifest__.py": manifest("17.0.1.0.0")}, "Add shop_custom")
    env = await provisioned(api, tenant, sshd, nginx, base_dir, repo)
    slug = env["slug"]

    result = await cli("instances", "list", "--json")
    assert [i["slug"] for i in json.loads(result.stdout)] == [slug]
    result = await cli("instances", "show", slug, "--json")
    instance = json.loads(result.stdout)
    assert instance["id"] == env["instance"]["id"]
    result = await cli("instances", "list")
    assert slug in result.stdout

    result = await cli("envs", "list", "--json")
    environments = json.loads(result.stdout)
    assert [e["instanceSlug"] for e in environments] == [slug]
    environment = environments[0]
    result = await cli("envs", "list", "--project", "shop", "--json")
    assert [e["id"] for e in json.loads(result.stdout)] == [environment["id"]]
    result = await cli("envs", "show", environment["id"])
    assert result.code == 0
    assert environment["name"] in result.stdout

    # Share links: create (URL shown once), list, revoke.
    result = await cli("share", "create", environment["id"], "--label", "review", "--json")
    assert result.code == 0, result.output
    link = json.loads(result.stdout)
    assert link["url"]
    result = await cli("share", "list", environment["id"], "--json")
    assert [s["id"] for s in json.loads(result.stdout)["shareLinks"]] == [link["id"]]
    result = await cli("share", "revoke", environment["id"], link["id"])
    assert result.code == 0, result.output
    result = await cli("share", "list", environment["id"])
    assert "review" in result.stdout
    assert "no" in result.stdout  # inactive now

    # Neutralize needs the environment's name: a wrong one is bad input (exit 2).
    result = await cli("neutralize", environment["id"], "--confirm", "wrong")
    assert result.code == 2, result.output
    assert "confirmText" in result.stderr
    plain_failure(result.output)
    result = await cli("neutralize", environment["id"], "--confirm", environment["name"], "--wait")
    assert result.code == 0, result.output
    assert "(neutralization.run): succeeded" in result.stderr
    result = await cli("envs", "show", environment["id"], "--json")
    assert json.loads(result.stdout)["isNeutralized"] is True

    # Clone it (database and all) onto a branch; promoting it to its own stage conflicts.
    result = await cli(
        "envs", "clone", environment["id"], "--branch", "feature-x", "--type", "development",
        "--wait", "--json",
    )  # fmt: skip
    assert result.code == 0, result.output
    clone = json.loads(result.stdout)
    assert (clone["clonedFromId"], clone["status"]) == (environment["id"], "ready")
    result = await cli("envs", "promote", clone["id"], "--to", "development")
    assert result.code == 1
    assert result.stderr.startswith("Conflict: ")
    plain_failure(result.output)

    # Lifecycle: restart, then delete (jobs waited for).
    result = await cli("instances", "control", slug, "restart", "--wait", "--json")
    assert result.code == 0, result.output
    assert json.loads(result.stdout)["jobId"]
    result = await cli("instances", "delete", slug)
    assert result.code == 2
    assert "--yes" in result.stderr
    result = await cli("instances", "delete", slug, "--yes", "--wait")
    assert result.code == 0, result.output
    assert slug in result.stdout
