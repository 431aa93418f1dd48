"""The SSH connection to the host drops while a deploy runs Odoo on it.

The connection's sshd processes are killed while the module update runs: the
orphaned Odoo ends with them, the step fails saying the connection was lost,
the deploy recovers (over a new connection) and ends failed instead of
hanging, and deploying again works.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import Tenant
from tests.deployments.conftest import manifest, provisioned
from tests.deployments.test_deploy import deploy, serving
from tests.faults.helpers import (
    deployment_outcome,
    gone,
    host_processes,
    installed,
    installing,
    wait_until,
)
from tests.fixtures.gitrepo import GitRepo
from tests.fixtures.nginx import Nginx
from tests.fixtures.sshd import Sshd

# The stand-in Odoo's knob: the module's install takes this long, in its transaction.
SLOW_INSTALL = 2


async def test_a_dropped_connection_fails_the_step_and_deploying_again_works(
    api: httpx.AsyncClient,
    tenant: Tenant,
    sshd: Sshd,
    nginx: Nginx,
    base_dir: Path,
    repo: GitRepo,
) -> None:
    repo.commit({"README": "shop\n"}, "empty")
    env = await provisioned(api, tenant, sshd, nginx, base_dir, repo)
    project, database = env["project"]["id"], env["slug"].replace("-", "_")
    repo.commit(
        {"shop_custom/__manifest__.py": manifest("17.0.1.0.0", standin_delay=SLOW_INSTALL)},
        "Add a module that is slow to install",
    )
    first = await deploy(api, tenant, env, branch="main")

    await wait_until(lambda: installing(database), "the module install to be under way")
    updates = host_processes(str(base_dir / "instances" / env["slug"] / "green" / "run.conf"))
    assert updates
    assert sshd.drop_connections()
    # Orphaned, Odoo ends too: it must not go on updating the database that recover restores.
    await wait_until(lambda: gone(updates), "the orphaned odoo-bin to end", timeout=10)

    failed = await deployment_outcome(api, tenant, project, first["id"])
    assert failed["status"] == "failed"
    # HostUnreachable's message: what was lost, and while doing what.
    lost = f"connection to {sshd.username}@{sshd.host}:{sshd.port} was lost while running"
    assert failed["errorMessage"].startswith(lost)
    assert "odoo-bin" in failed["errorMessage"]
    steps = {s["name"]: s["status"] for s in failed["steps"]}
    assert steps["update modules"] == "failed"
    assert steps["recover"] == "succeeded"
    jobs = (await api.get(f"/api/jobs?targetId={first['id']}", headers=tenant.headers)).json()
    # Ended, not stuck: the build job records its failure on the deployment and returns.
    assert [j["status"] for j in jobs["jobs"]] in (["succeeded"], ["failed"])
    # Blue kept serving and the database is as it was before the deploy.
    assert await serving(nginx, env["slug"]) == 200
    assert await installed(database, "shop_custom") is None
    instance = (
        await api.get(f"/api/instances/{env['instance']['id']}", headers=tenant.headers)
    ).json()
    assert (instance["status"], instance["activeColor"]) == ("running", "blue")

    second = await deploy(api, tenant, env, branch="main")
    done = await deployment_outcome(api, tenant, project, second["id"])
    assert done["status"] == "succeeded", done["errorMessage"]
    assert done["activeColor"] == "green"
    assert await installed(database, "shop_custom") == "installed"
    assert await serving(nginx, env["slug"]) == 200
