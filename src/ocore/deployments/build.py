"""The build job: fetch, detect changes, snapshot, build, update, test, go live — or roll back.

Every failure leaves the old colour serving; once the database was touched it
is restored from the snapshot taken before. A retried job starts over from the
first step: each step is safe to repeat.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from sqlalchemy import select, update

from ocore.core.db import utcnow
from ocore.deployments.gates import Gates
from ocore.deployments.hostwork import cache_root, check_out, find_modules, go_live, run_odoo
from ocore.deployments.models import Deployment, Snapshot
from ocore.deployments.steps import DeploymentRecorder, StepFailed
from ocore.deployments.venv import build_colour_venv
from ocore.environments.models import Environment
from ocore.git.cli import GitCliProvider
from ocore.git.modules import detect_module_changes
from ocore.hosts.database import (
    database_exists,
    drop_snapshot,
    restore_snapshot,
    snapshot_database,
)
from ocore.hosts.runtime import Colour, check_colour, other_colour
from ocore.instances.hosting import Hosting, load_hosting
from ocore.instances.models import Instance
from ocore.jobs.context import JobContext
from ocore.jobs.registry import JobKind, OrphanCheck, register, register_orphan_check
from ocore.projects.models import Project


def snapshot_name(deployment_id: uuid.UUID) -> str:
    return f"ocore_snap_{deployment_id.hex[:20]}"


async def _load(context: JobContext) -> tuple[Deployment, Project, str]:
    async with context.session() as session:
        deployment = await session.get(Deployment, context.target_id)
        if deployment is None:
            raise StepFailed("The deployment no longer exists.")
        project = await session.get(Project, deployment.project_id)
        assert project is not None
        environment_type = await session.scalar(
            select(Environment.environment_type).where(
                Environment.instance_id == deployment.instance_id
            )
        )
        deployment.status = "running"
        deployment.started_at = utcnow()
        deployment.error_message = None
    return deployment, project, environment_type or "staging"


async def _finish(context: JobContext, deployment_id: uuid.UUID, **values: Any) -> None:
    async with context.session() as session:
        deployment = await session.get(Deployment, deployment_id)
        assert deployment is not None
        now = utcnow()
        for name, value in values.items():
            setattr(deployment, name, value)
        deployment.completed_at = now
        if deployment.started_at is not None:
            deployment.duration_ms = int((now - deployment.started_at).total_seconds() * 1000)


async def _take_snapshot(context: JobContext, hosting: Hosting, deployment: Deployment) -> bool:
    """Snapshot the database unless an earlier attempt of this build did; True if kept.

    A retry must not snapshot again: the attempt before it may have changed the
    database already (the Odoo run of a worker that died goes on by itself on
    the host), and this snapshot is what a failed deploy restores.
    """
    name = snapshot_name(deployment.id)
    async with context.session() as session:
        earlier = await session.scalar(
            select(Snapshot.id).where(
                Snapshot.instance_id == deployment.instance_id, Snapshot.location == name
            )
        )
    # The row is written only once the copy is complete (built aside, then renamed into place).
    kept = earlier is not None and await database_exists(hosting.host, hosting.pg, name)
    result = None
    if not kept:
        result = await snapshot_database(
            hosting.host, hosting.pg, hosting.instance.database_name, name
        )
    async with context.session() as session:
        snapshot = await session.get(Snapshot, earlier) if earlier is not None else None
        if snapshot is None:
            snapshot = Snapshot(
                organization_id=deployment.organization_id,
                instance_id=deployment.instance_id,
                location=name,
            )
            session.add(snapshot)
        if result is not None:
            snapshot.method = result.method
            snapshot.size_bytes = result.size_bytes
        snapshot.status = "ready"
        await session.flush()
        await session.execute(
            update(Deployment).where(Deployment.id == deployment.id).values(snapshot_id=snapshot.id)
        )
    return kept


async def _record_live(
    context: JobContext, hosting: Hosting, colour: Colour, addons: list[str]
) -> None:
    async with context.session() as session:
        instance = await session.get(Instance, hosting.instance.id)
        assert instance is not None
        instance.colour_addons = {**instance.colour_addons, colour: addons}
        instance.active_color = colour
        instance.status = "running"
        instance.status_message = None
        instance.last_seen_at = utcnow()
        instance.restart_required = False


async def build(context: JobContext) -> None:
    assert context.target_id is not None
    deployment, project, environment_type = await _load(context)
    recorder = DeploymentRecorder(context.database, context.events, deployment.id)
    await recorder.reset()
    gates = Gates(project, environment_type)
    hosting = await load_hosting(context, deployment.instance_id)
    old = check_colour(hosting.instance.active_color)
    idle = other_colour(old)
    sha = deployment.commit_sha or ""
    snapshot_taken: str | None = None
    database_touched = False
    try:
        async with recorder.step("fetch source") as step:
            sha = await check_out(hosting, project.repository_url, sha, idle)
            await step.log(f"{sha} checked out for {idle}")
        async with recorder.step("detect changes") as step:
            modules, addons = await find_modules(hosting, idle)
            hosting.runtime.colour_addons[idle] = tuple(addons)
            if deployment.previous_commit_sha:
                changes = await detect_module_changes(
                    GitCliProvider(
                        hosting.host, project.repository_url, cache_root=cache_root(hosting)
                    ),
                    deployment.previous_commit_sha,
                    sha,
                )
                install = list(changes.to_install)
                upgrade = sorted(set(changes.changed) | set(changes.to_update) - set(install))
                gates.note_changes(changes)
            else:
                install, upgrade = modules, []
                gates.note_first_deploy(modules)
            await step.log(
                f"modules: {len(modules)}; install {install or '-'}; update {upgrade or '-'}"
            )
        async with recorder.step("snapshot database") as step:
            kept = await _take_snapshot(context, hosting, deployment)
            snapshot_taken = snapshot_name(deployment.id)
            if kept:
                await step.log(f"snapshot {snapshot_taken} kept from an earlier attempt")
            else:
                await step.log(f"snapshot {snapshot_taken} of {hosting.instance.database_name}")
        async with recorder.step("build") as step:
            python = await build_colour_venv(hosting, idle, step)
            compiled = await hosting.host.run(
                [
                    python,
                    "-m",
                    "compileall",
                    "-q",
                    hosting.layout.addons_dir(idle),
                ],
                check=False,
                timeout=600,
            )
            for line in (compiled.stdout + compiled.stderr).splitlines()[-50:]:
                await step.log(line)
            if not compiled.ok:
                raise StepFailed("The addons do not compile; see the build step's output.")
            await step.log("native runtime: the checkout and its venv are the build")
        if install or upgrade:
            async with recorder.step("update modules") as step:
                database_touched = True
                started = time.perf_counter()
                code = await run_odoo(hosting, step, idle, install=install, update=upgrade)
                gates.record_odoo_run("module_update", code, step.lines, started)
                if gates.blocked("module_update"):
                    raise StepFailed(gates.failure("module_update"))
        if project.test_tags:
            async with recorder.step("run tests") as step:
                database_touched = True
                started = time.perf_counter()
                code = await run_odoo(
                    hosting,
                    step,
                    idle,
                    install=[],
                    update=upgrade or install or modules,
                    test_tags=project.test_tags,
                )
                gates.record_odoo_run("tests", code, step.lines, started)
                if gates.blocked("tests"):
                    raise StepFailed(gates.failure("tests"))
        async with recorder.step(f"switch to {idle}") as step:
            started = time.perf_counter()
            try:
                await go_live(hosting, step, idle, old)
            except Exception as exc:
                gates.record_health(False, str(exc), started)
                raise
            gates.record_health(True, f"{idle} healthy and serving", started)
        await _record_live(context, hosting, idle, list(hosting.runtime.colour_addons[idle]))
    except Exception as exc:
        message = exc.args[0] if isinstance(exc, StepFailed) else _describe(exc)
        await _recover(
            context, recorder, hosting, idle, snapshot_taken if database_touched else None
        )
        await _conclude(context, recorder, gates, deployment.id, sha, old, error=message)
        return
    await _conclude(context, recorder, gates, deployment.id, sha, idle)


async def _conclude(
    context: JobContext,
    recorder: DeploymentRecorder,
    gates: Gates,
    deployment_id: uuid.UUID,
    sha: str,
    serving: Colour,
    *,
    error: str | None = None,
) -> None:
    """Store the gates' evidence and the outcome, then tell the stream readers."""
    await gates.save(context, deployment_id)
    await _finish(
        context,
        deployment_id,
        status="failed" if error else "succeeded",
        error_message=error,
        commit_sha=sha,
        active_color=serving,
        **gates.outcome(failed=error is not None),
    )
    if error:
        await recorder.complete({"status": "failed", "errorMessage": error})
    else:
        await recorder.complete({"status": "succeeded", "activeColor": serving})


def _describe(exc: BaseException) -> str:
    return str(getattr(exc, "detail", None) or exc or type(exc).__name__)


async def _recover(
    context: JobContext,
    recorder: DeploymentRecorder,
    hosting: Hosting,
    idle: Colour,
    snapshot: str | None,
) -> None:
    """Keep the old colour serving; put the database back if this deploy changed it."""
    async with recorder.step("recover") as step:
        await hosting.runtime.stop(idle)
        await step.log(f"{idle} stopped; {other_colour(idle)} keeps serving")
        if snapshot is not None:
            await restore_snapshot(
                hosting.host, hosting.pg, snapshot, hosting.instance.database_name
            )
            await step.log(f"database restored from {snapshot}")


async def mark_failed(context: JobContext, message: str) -> None:
    """The job itself failed for good (worker lost, host unreachable): say so on the deployment."""
    async with context.session() as session:
        await session.execute(
            update(Deployment)
            .where(Deployment.id == context.target_id, Deployment.status.in_(("queued", "running")))
            .values(status="failed", error_message=message, completed_at=utcnow())
        )
    assert context.target_id is not None
    await DeploymentRecorder(context.database, context.events, context.target_id).complete(
        {"status": "failed", "errorMessage": message}
    )


register_orphan_check(
    OrphanCheck(
        Deployment,
        ("queued", "running"),
        {"status": "failed", "error_message": "The build job was lost; deploy again."},
    )
)
BUILD = register(JobKind("deployment.build", build, on_failure=mark_failed))


async def rollback(context: JobContext) -> None:
    """Re-deploy an earlier deployment's commit with the database as it was then.

    The restored snapshot is the one taken just before the next deployment
    (chosen by the service, on this deployment's ``snapshot_id`` field before the
    job starts). The current database is snapshotted first so a failed rollback
    can be undone.
    """
    assert context.target_id is not None
    deployment, project, _ = await _load(context)
    restore_from = await _snapshot_location(context, deployment.snapshot_id)
    recorder = DeploymentRecorder(context.database, context.events, deployment.id)
    await recorder.reset()
    gates = Gates(project, "staging")
    hosting = await load_hosting(context, deployment.instance_id)
    old = check_colour(hosting.instance.active_color)
    idle = other_colour(old)
    sha = deployment.commit_sha or ""
    safety: str | None = None
    try:
        async with recorder.step("fetch source") as step:
            sha = await check_out(hosting, project.repository_url, sha, idle)
            _, addons = await find_modules(hosting, idle)
            hosting.runtime.colour_addons[idle] = tuple(addons)
            await step.log(f"{sha} checked out for {idle}")
        async with recorder.step("build") as step:
            await build_colour_venv(hosting, idle, step)
        async with recorder.step("snapshot database") as step:
            safety = snapshot_name(deployment.id)
            # Every attempt drops it when it ends: one left is an earlier attempt's that
            # died, maybe after restoring. Taken again, it would hold the restored data.
            if await database_exists(hosting.host, hosting.pg, safety):
                await step.log(f"current database kept as {safety} by an earlier attempt")
            else:
                await snapshot_database(
                    hosting.host, hosting.pg, hosting.instance.database_name, safety
                )
                await step.log(f"current database kept as {safety}")
        async with recorder.step("restore database") as step:
            await restore_snapshot(
                hosting.host, hosting.pg, restore_from, hosting.instance.database_name
            )
            await step.log(f"database restored from {restore_from}")
        async with recorder.step(f"switch to {idle}") as step:
            started = time.perf_counter()
            try:
                await go_live(hosting, step, idle, old)
            except Exception as exc:
                gates.record_health(False, str(exc), started)
                raise
            gates.record_health(True, f"{idle} healthy and serving", started)
        await _record_live(context, hosting, idle, list(hosting.runtime.colour_addons[idle]))
        await drop_snapshot(hosting.host, hosting.pg, safety)
    except Exception as exc:
        message = exc.args[0] if isinstance(exc, StepFailed) else _describe(exc)
        await _recover(context, recorder, hosting, idle, safety)
        if safety is not None:
            await drop_snapshot(hosting.host, hosting.pg, safety)
        await _conclude(context, recorder, gates, deployment.id, sha, old, error=message)
        return
    await _conclude(context, recorder, gates, deployment.id, sha, idle)


async def _snapshot_location(context: JobContext, snapshot_id: uuid.UUID | None) -> str:
    async with context.session() as session:
        snapshot = await session.get(Snapshot, snapshot_id) if snapshot_id else None
    if snapshot is None or snapshot.status != "ready":
        raise StepFailed("The snapshot to restore is gone; this rollback cannot run.")
    return snapshot.location


ROLLBACK = register(JobKind("deployment.rollback", rollback, on_failure=mark_failed))
