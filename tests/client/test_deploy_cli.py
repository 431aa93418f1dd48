"""`ocore deploy --wait` against a live ocore and a real host: steps, resume, failure."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.client.conftest import Cli, run_ocore_tty
from tests.client.proxy import DroppingProxy
from tests.conftest import Tenant
from tests.deployments.conftest import manifest, provisioned
from tests.fixtures.gitrepo import GitRepo
from tests.fixtures.nginx import Nginx
from tests.fixtures.sshd import Sshd

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
STEPS = ["fetch source", "detect changes", "snapshot database", "build", "update modules"]


def printed_log(stdout: str) -> tuple[list[str], list[str]]:
    """(step names as announced, log lines) from the plain CI output."""
    steps: list[str] = []
    lines: list[str] = []
    inside = False
    for line in stdout.splitlines():
        if line.startswith("==> "):
            steps.append(line[4:])
            inside = True
        elif line.startswith("<== "):
            inside = False
        elif inside:
            lines.append(line)
    return steps, lines


def stored_log(deployment: dict[str, Any]) -> list[str]:
    steps = sorted(deployment["steps"], key=lambda s: s["sortOrder"])
    return [line for step in steps for line in step["output"].splitlines()]


async def fetch(api: httpx.AsyncClient, tenant: Tenant, project: str, deployment: str) -> dict:
    path = f"/api/projects/{project}/deployments/{deployment}"
    response = await api.get(path, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()


def deployment_id(stdout: str) -> str:
    first = next(line for line in stdout.splitlines() if line.startswith("Deployment "))
    return first.split()[1]


async def test_deploy_wait_resume_and_failing_gate(
    api: httpx.AsyncClient,
    cli: Cli,
    live: str,
    home: Path,
    tenant: Tenant,
    sshd: Sshd,
    nginx: Nginx,
    base_dir: Path,
    repo: GitRepo,
) -> None:
    repo.commit({"shop_custom/__manifest__.py": manifest("17.0.1.0.0")}, "Add shop_custom")
    env = await provisioned(api, tenant, sshd, nginx, base_dir, repo)
    project, instance = env["project"]["id"], env["instance"]["id"]
    target = ["--project", project, "--instance", instance]

    # 1. deploy --wait: every step, its log, the summary; exit 0.
    result = await cli("deploy", *target, "--branch", "main", "--wait")
    assert result.code == 0, result.output
    assert "Traceback" not in result.output
    steps, lines = printed_log(result.stdout)
    assert steps == [*STEPS, "switch to green"]
    for name in steps:
        assert f"<== {name}: succeeded" in result.stdout
    first = await fetch(api, tenant, project, deployment_id(result.stdout))
    assert first["status"] == "succeeded"
    assert lines == stored_log(first)
    assert any("Loading module shop_custom" in line for line in lines)
    assert f"Deployment {first['id']}: succeeded" in result.stdout
    assert "Modules updated: shop_custom" in result.stdout
    assert "Verdict: Passed" in result.stdout

    # 2. Through a proxy that drops the log stream mid-way: resumed, nothing twice.
    repo.commit({"shop_custom/__manifest__.py": manifest("17.0.1.1.0")}, "Bump")
    port = urlsplit(live).port
    assert port is not None
    proxy = DroppingProxy("127.0.0.1", port, cut_after=CUT_AFTER)
    proxied = await proxy.start()
    try:
        result = await cli("deploy", *target, "--branch", "main", "--wait", url=proxied)
    finally:
        await proxy.stop()
    print(proxy.delivered_before_cut.decode(errors="replace"))
    print(result.output)
    assert result.code == 0, result.output
    assert proxy.cuts == 1
    assert len(proxy.log_requests) >= 2
    assert b"event: log" in proxy.delivered_before_cut
    assert b"event: complete" not in proxy.delivered_before_cut
    assert b"last-event-id" in proxy.log_requests[1].lower()
    assert "log stream dropped" in result.stderr
    second = await fetch(api, tenant, project, deployment_id(result.stdout))
    steps, lines = printed_log(result.stdout)
    assert steps == [*STEPS, "switch to blue"]
    assert lines == stored_log(second)
    assert len(lines) > 0

    # 3. A module update that fails: exit 3, the gate named.
    broken = repo.commit(
        {"shop_custom/__manifest__.py": manifest("17.0.1.2.0", standin_fail="load")}, "Break"
    )
    result = await cli("deploy", *target, "--commit", broken, "--wait")
    print(result.output)
    assert result.code == 3, result.output
    assert "Gate failed: Module update — " in result.stderr
    assert "Traceback" not in result.stderr  # Odoo's own traceback is in the build log
    failed_id = deployment_id(result.stdout)
    failed = await fetch(api, tenant, project, failed_id)
    assert failed["status"] == "failed"
    assert printed_log(result.stdout)[1] == stored_log(failed)

    # 4. The stored log, a finished build followed (replayed), and --json.
    result = await cli("logs", failed_id, "--project", project)
    assert result.code == 0, result.output
    assert result.stdout.startswith(f"# ocore deployment {failed_id}")
    result = await cli("logs", failed_id, "--project", project, "--follow")
    assert result.code == 3
    assert printed_log(result.stdout)[1] == stored_log(failed)
    assert "Gate failed: Module update" in result.stderr
    result = await cli("logs", first["id"], "--project", project, "--follow", "--json")
    assert result.code == 0, result.output
    assert json.loads(result.stdout)["id"] == first["id"]
    # On a terminal: the progress display (a tick per finished step) instead of markers.
    result = await run_ocore_tty(
        "logs", first["id"], "-p", project, "-f", home=home, url=live, token=tenant.owner.token
    )
    assert result.code == 0, result.output
    screen = ANSI.sub("", result.stdout)
    assert "==> " not in screen
    for name in [*STEPS, "switch to green"]:
        assert f"✓ {name} succeeded" in screen
    assert "Loading module shop_custom" in screen
    assert f"Deployment {first['id']}: succeeded" in screen

    # 5. Roll back to the first deployment and wait for it.
    result = await cli("rollback", "--project", project, "--to", first["id"], "--wait")
    assert result.code == 0, result.output
    assert "rollback" in result.stdout
    result = await cli("deployments", "--project", project, "--json")
    listed = json.loads(result.stdout)["deployments"]
    assert listed[0]["triggerType"] == "rollback"
    assert len(listed) == 4

    # 6. The deployed staging environment is promoted to production.
    result = await cli("envs", "list", "--project", project, "--json")
    staging = next(e for e in json.loads(result.stdout) if e["instanceId"] == instance)
    result = await cli("envs", "promote", staging["id"], "--to", "production", "--json")
    assert result.code == 0, result.output
    assert json.loads(result.stdout)["newStage"] == "production"


CUT_AFTER = 4000
