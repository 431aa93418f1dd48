"""kill -9 the worker running a job: another worker finishes it once the lease lapses.

Each test waits for a natural slow point of the job (PostgreSQL holding
pg_dump on a lock, the stand-in Odoo installing a slow module or starting
slowly), kills the worker that claimed it, and then checks the whole
installation: the job done by the other worker, no half-made database left on
the host, nothing left in a transitional status. What the dead worker had
started on the host dies with its SSH connection (a pg_dump, an ``odoo-bin -u``),
but what it finished stays done, so a retry must not trust the state it finds:
the snapshots a deploy or a rollback restores on failure are kept from the
first attempt, not taken again.
"""

from __future__ import annotations

import glob
import json
import uuid
from pathlib import Path

from sqlalchemy import func, select

from ocore.deployments.build import snapshot_name
from ocore.deployments.models import DeploymentStep, Snapshot
from ocore.environments.models import Environment
from ocore.hosts.database_copy import staging_name
from ocore.instances.models import Instance
from ocore.jobs.models import Job
from tests.conftest import Tenant, drop_database
from tests.deployments.conftest import manifest, provisioned
from tests.deployments.test_deploy import add_marker, deploy, marker_rows, serving
from tests.environments.test_lifecycle import environment_of
from tests.faults.conftest import Fleet
from tests.faults.helpers import (
    connect,
    deployment_outcome,
    gone,
    host_databases,
    host_processes,
    installed,
    installing,
    sessions,
    wait_until,
)
from tests.fixtures.gitrepo import GitRepo
from tests.fixtures.nginx import Nginx
from tests.fixtures.ocore_process import OcoreProcess, worker_id
from tests.fixtures.sshd import Sshd

# The stand-in Odoo's knob: installing the module takes this long (inside its
# transaction), long enough to kill the worker in the middle of it.
SLOW_INSTALL = 2


async def kill_claimer(fleet: Fleet, job_id: uuid.UUID) -> OcoreProcess:
    """SIGKILL the worker holding the job; returns the one left."""
    job = await fleet.job(job_id)
    assert job.status == "running", job.status
    victim = next(w for w in fleet.workers if worker_id(w.pid) == job.worker_id)
    victim.kill()
    return next(w for w in fleet.workers if w is not victim)


async def finished_job(fleet: Fleet, job_id: uuid.UUID) -> Job:
    async def done() -> Job | None:
        job = await fleet.job(job_id)
        return job if job.status in ("succeeded", "failed", "cancelled") else None

    return await wait_until(done, f"job {job_id} to finish", timeout=120, interval=0.3)


async def assert_settled(fleet: Fleet, tenant: Tenant) -> None:
    """No job left unfinished and no resource in a transitional status."""
    async with fleet.database.sessionmaker() as session:
        org = tenant.organization_id
        jobs = await session.scalar(
            select(func.count()).where(Job.organization_id == org, Job.status != "succeeded")
        )
        instances = (
            await session.scalars(select(Instance.status).where(Instance.organization_id == org))
        ).all()
        environments = (
            await session.scalars(
                select(Environment.status).where(Environment.organization_id == org)
            )
        ).all()
    assert jobs == 0
    assert set(instances) == {"running"}, instances
    assert set(environments) == {"ready"}, environments


async def test_clone_survives_its_worker_being_killed(
    fleet: Fleet, tenant: Tenant, sshd: Sshd, nginx: Nginx, base_dir: Path, repo: GitRepo
) -> None:
    fleet.start_worker()
    fleet.start_worker()
    repo.commit({"shop_custom/__manifest__.py": manifest("17.0.1.0.0")}, "first")
    env = await provisioned(fleet.api, tenant, sshd, nginx, base_dir, repo)
    source_db = env["slug"].replace("-", "_")
    source_env = await environment_of(fleet.api, tenant, env["instance"]["id"])

    # A client of the source holding a lock: the clone must dump (the source is
    # busy), and pg_dump waits on the lock for as long as the test wants.
    holder = await connect(source_db)
    lock = holder.transaction()
    await lock.start()
    await holder.execute("LOCK TABLE ir_module_module IN ACCESS EXCLUSIVE MODE")
    try:
        response = await fleet.api.post(
            f"/api/environments/{source_env['id']}/clone",
            json={"targetBranch": "dev", "targetType": "development"},
            headers=tenant.headers,
        )
        assert response.status_code == 202, response.text
        clone = response.json()
        job = await fleet.job_for(clone["id"])
        async with fleet.database.sessionmaker() as session:
            target_db = await session.scalar(
                select(Instance.database_name).where(Instance.id == uuid.UUID(clone["instanceId"]))
            )
        assert target_db is not None
        staging = staging_name(target_db)

        async def copying() -> bool:
            waiting = await sessions(
                source_db, "application_name = 'pg_dump' AND wait_event_type = 'Lock'"
            )
            return waiting > 0 and staging in await host_databases()

        await wait_until(copying, "pg_dump to wait on the lock, its staging database made")
        dumps = host_processes("pg_dump", source_db)
        assert dumps
        dump_dirs = f"/tmp/ocore-pg.{staging}.*"
        assert len(glob.glob(dump_dirs)) == 1
        survivor = await kill_claimer(fleet, job.id)
        # It ends with its worker's connection, though the lock it waits on is still held.
        await wait_until(lambda: gone(dumps), "the dead worker's pg_dump to end", timeout=10)

        async def retried() -> bool:
            return (await fleet.job(job.id)).attempt == 2

        await wait_until(retried, "another worker to take the job over", timeout=30)
    finally:
        await lock.rollback()
        await holder.close()

    done = await finished_job(fleet, job.id)
    assert done.status == "succeeded", (done.error, fleet.logs())
    assert (done.attempt, done.worker_id) == (2, worker_id(survivor.pid))
    clone = (await fleet.api.get(f"/api/environments/{clone['id']}", headers=tenant.headers)).json()
    assert clone["status"] == "ready"
    assert clone["isNeutralized"] is True
    databases = await host_databases()
    assert target_db in databases
    assert staging not in databases  # the dead worker's half-made copy was dropped
    assert glob.glob(dump_dirs) == []  # and its dump was removed
    await assert_settled(fleet, tenant)


async def test_deploy_survives_its_worker_being_killed(
    fleet: Fleet, tenant: Tenant, sshd: Sshd, nginx: Nginx, base_dir: Path, repo: GitRepo
) -> None:
    fleet.start_worker()
    fleet.start_worker()
    repo.commit({"README": "shop\n"}, "empty")
    env = await provisioned(fleet.api, tenant, sshd, nginx, base_dir, repo)
    database = env["slug"].replace("-", "_")
    repo.commit(
        {"shop_custom/__manifest__.py": manifest("17.0.1.0.0", standin_delay=SLOW_INSTALL)},
        "Add a module that is slow to install",
    )
    project = env["project"]["id"]
    response = await fleet.api.post(
        f"/api/projects/{project}/deploy",
        json={"instanceId": env["instance"]["id"], "branch": "main"},
        headers=tenant.headers,
    )
    assert response.status_code == 202, response.text
    deployment_id = uuid.UUID(response.json()["id"])
    job = await fleet.job_for(str(deployment_id))

    await wait_until(lambda: installing(database), "the module install to be under way")
    run_conf = str(base_dir / "instances" / env["slug"] / "green" / "run.conf")
    updates = host_processes(run_conf)
    assert updates
    survivor = await kill_claimer(fleet, job.id)
    # The dead worker's Odoo ends with its connection, its install rolled back.
    await wait_until(lambda: gone(updates), "the dead worker's odoo-bin to end", timeout=10)

    done = await finished_job(fleet, job.id)
    assert done.status == "succeeded", (done.error, fleet.logs())
    assert (done.attempt, done.worker_id) == (2, worker_id(survivor.pid))
    path = f"/api/projects/{project}/deployments/{deployment_id}"
    deployment = (await fleet.api.get(path, headers=tenant.headers)).json()
    assert deployment["status"] == "succeeded", deployment["errorMessage"]
    assert deployment["activeColor"] == "green"
    # The retry's steps replace the dead attempt's: one run of each, all done.
    assert [s["status"] for s in deployment["steps"]] == ["succeeded"] * 6

    # The snapshot a failed retry would restore is the database from before the
    # deploy, kept from the first attempt; one row for it, not one per attempt.
    snapshot = snapshot_name(deployment_id)
    async with fleet.database.sessionmaker() as session:
        rows = (await session.scalars(select(Snapshot).where(Snapshot.location == snapshot))).all()
    assert [r.id for r in rows] == [uuid.UUID(deployment["snapshotId"])]
    assert await installed(snapshot, "shop_custom") is None
    assert await installed(database, "shop_custom") == "installed"

    databases = await host_databases()
    assert snapshot in databases
    assert staging_name(database) not in databases
    assert staging_name(snapshot) not in databases
    await assert_settled(fleet, tenant)


async def test_retried_rollback_keeps_the_database_it_saved(
    fleet: Fleet, tenant: Tenant, sshd: Sshd, nginx: Nginx, base_dir: Path, repo: GitRepo
) -> None:
    fleet.start_worker()
    fleet.start_worker()
    first = repo.commit({"shop_custom/__manifest__.py": manifest("17.0.1.0.0")}, "first")
    env = await provisioned(fleet.api, tenant, sshd, nginx, base_dir, repo)
    project, database = env["project"]["id"], env["slug"].replace("-", "_")
    ids = []
    for sha in (
        first,
        repo.commit({"shop_custom/__manifest__.py": manifest("17.0.1.1.0")}, "bump"),
    ):
        started = await deploy(fleet.api, tenant, env, commitSha=sha)
        done = await deployment_outcome(fleet.api, tenant, project, started["id"])
        assert done["status"] == "succeeded", done["errorMessage"]
        ids.append(started["id"])
    await add_marker(database, "written after the second deploy")
    # The stand-in's knob: the colour the rollback starts is slow to listen, so the
    # worker can be killed after it restored the database, while it switches.
    (base_dir / "instances" / env["slug"] / "data" / "standin.json").write_text(
        json.dumps({"start_delay": 5})
    )
    response = await fleet.api.post(
        f"/api/projects/{project}/rollback", json={"deploymentId": ids[0]}, headers=tenant.headers
    )
    assert response.status_code == 202, response.text
    rollback_id = uuid.UUID(response.json()["id"])
    job = await fleet.job_for(str(rollback_id))

    async def switching() -> bool:
        async with fleet.database.sessionmaker() as session:
            step = await session.scalar(
                select(DeploymentStep.name).where(
                    DeploymentStep.deployment_id == rollback_id, DeploymentStep.status == "running"
                )
            )
        return step == "switch to green"

    await wait_until(switching, "the rollback to switch colours")
    assert await marker_rows(database) == []  # restored to before the second deploy
    survivor = await kill_claimer(fleet, job.id)
    # The retry cannot restore again (its source is gone): it fails, and must put
    # back the database as it was before the rollback, which the first attempt saved.
    await drop_database(snapshot_name(uuid.UUID(ids[1])))

    failed = await deployment_outcome(fleet.api, tenant, project, str(rollback_id))
    assert failed["status"] == "failed"
    done_job = await finished_job(fleet, job.id)
    assert (done_job.attempt, done_job.worker_id) == (2, worker_id(survivor.pid))
    assert await marker_rows(database) == ["written after the second deploy"]
    assert await serving(nginx, env["slug"]) == 200
    databases = await host_databases()
    safety = snapshot_name(rollback_id)
    assert safety not in databases
    assert staging_name(database) not in databases
    assert staging_name(safety) not in databases
    await assert_settled(fleet, tenant)
