"""``ocore projects``, ``ocore servers`` and ``ocore instances``."""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from ocore.client.base import Ctx, command, pick
from ocore.client.errors import ClientError, UsageError
from ocore.client.output import Column

projects_app = typer.Typer(
    help="Projects: a repository and its Odoo version.", no_args_is_help=True
)
servers_app = typer.Typer(help="Servers that host Odoo instances.", no_args_is_help=True)
instances_app = typer.Typer(help="Odoo instances.", no_args_is_help=True)

JOB_DONE = ("succeeded", "failed", "cancelled")
Wait = Annotated[bool, typer.Option("--wait", help="Wait for the job to finish.")]
Timeout = Annotated[float, typer.Option(help="Seconds --wait waits at most.")]


def wait_job(ctx: Ctx, job_id: str, timeout: float) -> dict[str, Any]:
    """Poll a job to its end; a failed or cancelled job is a failure (exit 1)."""
    deadline = time.monotonic() + timeout
    status = ""
    while True:
        job: dict[str, Any] = ctx.api.get(f"/jobs/{job_id}")
        if job["status"] != status:
            status = job["status"]
            ctx.out.note(f"job {job_id} ({job.get('kind')}): {status}")
        if status in JOB_DONE:
            if status != "succeeded":
                raise ClientError(f"Job {job.get('kind')} {status}: {job.get('error') or '-'}")
            return job
        if time.monotonic() > deadline:
            raise ClientError(f"Job {job_id} still {status} after {timeout:.0f}s.")
        time.sleep(1)


def latest_job(ctx: Ctx, target_id: str) -> str:
    jobs = ctx.api.get("/jobs", targetId=target_id, limit=1).get("jobs") or []
    if not jobs:
        raise ClientError(f"No job found for {target_id}.")
    return str(jobs[0]["id"])


# Projects

PROJECT_COLUMNS: list[Column] = [
    ("id", "id"),
    ("name", "name"),
    ("odoo", "odooVersion"),
    ("edition", "odooEdition"),
    ("branch", "defaultBranch"),
    ("repository", "repositoryUrl"),
]


@command(projects_app, "list")
def projects_list(ctx: Ctx) -> None:
    """List projects."""
    rows = ctx.api.collect("/projects", "projects")
    ctx.out.table(rows, PROJECT_COLUMNS)


@command(projects_app, "show")
def projects_show(
    ctx: Ctx, project: Annotated[str, typer.Argument(help="Project id or name.")]
) -> None:
    """Show a project."""
    ctx.out.record(ctx.api.get(f"/projects/{ctx.api.project_id(project)}"))


@command(projects_app, "create")
def projects_create(
    ctx: Ctx,
    name: Annotated[str, typer.Option(help="Project name.")],
    repository: Annotated[str, typer.Option("--repo", help="Git repository URL.")],
    odoo_version: Annotated[str, typer.Option("--odoo-version", help="16.0, 17.0 or 18.0.")],
    branch: Annotated[str | None, typer.Option(help="Default branch (main).")] = None,
    edition: Annotated[str | None, typer.Option(help="community or enterprise.")] = None,
    git_provider: Annotated[str | None, typer.Option(help="local, ssh, github, gitlab.")] = None,
    git_token: Annotated[
        str | None, typer.Option(envvar="OCORE_GIT_TOKEN", help="Git host API token.")
    ] = None,
) -> None:
    """Create a project (prints its webhook secret once)."""
    body = pick(
        name=name,
        repositoryUrl=repository,
        odooVersion=odoo_version,
        defaultBranch=branch,
        odooEdition=edition,
        gitProvider=git_provider,
        gitToken=git_token,
    )
    created = ctx.api.post("/projects", body)
    ctx.out.record(created)
    if not ctx.out.json:
        ctx.out.note("The webhook secret is shown once: store it as the repository's webhook.")


# Servers

SERVER_COLUMNS: list[Column] = [
    ("id", "id"),
    ("name", "name"),
    ("host", lambda s: f"{s.get('username')}@{s.get('host')}:{s.get('port')}"),
    ("runtime", "runtime"),
    ("status", "status"),
]


@command(servers_app, "list")
def servers_list(ctx: Ctx) -> None:
    """List servers."""
    ctx.out.table(ctx.api.collect("/servers", "servers"), SERVER_COLUMNS)


@command(servers_app, "show")
def servers_show(
    ctx: Ctx, server: Annotated[str, typer.Argument(help="Server id or name.")]
) -> None:
    """Show a server."""
    ctx.out.record(ctx.api.get(f"/servers/{ctx.api.server_id(server)}"))


@command(servers_app, "create")
def servers_create(
    ctx: Ctx,
    name: Annotated[str, typer.Option(help="Server name.")],
    host: Annotated[str | None, typer.Option(help="Hostname or IP.")] = None,
    port: Annotated[int | None, typer.Option(help="SSH port.")] = None,
    username: Annotated[str | None, typer.Option(help="SSH user.")] = None,
    private_key_file: Annotated[
        Path | None, typer.Option(help="SSH private key file.", exists=True, dir_okay=False)
    ] = None,
    local: Annotated[bool, typer.Option("--local", help="This machine, without SSH.")] = False,
    runtime: Annotated[str | None, typer.Option(help="native or docker.")] = None,
    base_dir: Annotated[str | None, typer.Option(help="Where instances live.")] = None,
    db_host: Annotated[str | None, typer.Option(help="PostgreSQL host.")] = None,
    db_port: Annotated[int | None, typer.Option(help="PostgreSQL port.")] = None,
    db_user: Annotated[str | None, typer.Option(help="PostgreSQL role.")] = None,
    db_password: Annotated[
        str | None, typer.Option(envvar="OCORE_DB_PASSWORD", help="PostgreSQL password.")
    ] = None,
    nginx_sites_dir: Annotated[str | None, typer.Option(help="nginx site files.")] = None,
    nginx_command: Annotated[str | None, typer.Option(help="e.g. 'sudo -n nginx'.")] = None,
    nginx_listen: Annotated[str | None, typer.Option(help="Port or address:port.")] = None,
) -> None:
    """Register a server (then run 'ocore servers check')."""
    try:
        key = private_key_file.read_text(encoding="utf-8") if private_key_file else None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"Cannot read {private_key_file}: {exc}") from None
    body = pick(
        name=name,
        host=host,
        port=port,
        username=username,
        privateKey=key,
        isLocal=local or None,
        runtime=runtime,
        baseDir=base_dir,
        dbHost=db_host,
        dbPort=db_port,
        dbUser=db_user,
        dbPassword=db_password,
        nginxSitesDir=nginx_sites_dir,
        nginxCommand=shlex.split(nginx_command) if nginx_command else None,
        nginxListen=nginx_listen,
    )
    ctx.out.record(ctx.api.post("/servers", body))


@command(servers_app, "check")
def servers_check(
    ctx: Ctx,
    server: Annotated[str, typer.Argument(help="Server id or name.")],
    wait: Wait = False,
    timeout: Timeout = 120,
) -> None:
    """Check that ocore reaches the server (pins its host key on first contact)."""
    job = ctx.api.post(f"/servers/{ctx.api.server_id(server)}/check")
    if wait:
        job = wait_job(ctx, str(job["id"]), timeout)
    ctx.out.done(f"check {job['status']} (job {job['id']})", job)


# Instances

INSTANCE_COLUMNS: list[Column] = [
    ("id", "id"),
    ("slug", "slug"),
    ("name", "name"),
    ("status", "status"),
    ("odoo", "odooVersion"),
    ("colour", "activeColor"),
    ("domain", "autoSubdomain"),
]


@command(instances_app, "list")
def instances_list(
    ctx: Ctx,
    server: Annotated[str | None, typer.Option(help="Only this server's (id or name).")] = None,
) -> None:
    """List instances."""
    server_id = ctx.api.server_id(server) if server else None
    rows = ctx.api.collect("/instances", "instances", server_id=server_id)
    ctx.out.table(rows, INSTANCE_COLUMNS)


@command(instances_app, "show")
def instances_show(
    ctx: Ctx, instance: Annotated[str, typer.Argument(help="Instance id, slug or name.")]
) -> None:
    """Show an instance."""
    ctx.out.record(ctx.api.get(f"/instances/{ctx.api.instance_id(instance)}"))


def _env_vars(values: list[str] | None) -> dict[str, str] | None:
    if not values:
        return None
    pairs = [v.partition("=") for v in values]
    bad = [v for v, (_, eq, _) in zip(values, pairs, strict=True) if not eq]
    if bad:
        raise UsageError(f"--env takes NAME=VALUE, not '{bad[0]}'.")
    return {name: value for name, _, value in pairs}


@command(instances_app, "create")
def instances_create(
    ctx: Ctx,
    name: Annotated[str, typer.Option(help="Instance name.")],
    server: Annotated[str, typer.Option(help="Server id or name.")],
    slug: Annotated[str | None, typer.Option(help="URL-safe id (derived from the name).")] = None,
    odoo_version: Annotated[str | None, typer.Option(help="16.0, 17.0 or 18.0.")] = None,
    edition: Annotated[str | None, typer.Option(help="community or enterprise.")] = None,
    project: Annotated[str | None, typer.Option(help="Link to a project (id or name).")] = None,
    branch: Annotated[str | None, typer.Option(help="The project branch it runs.")] = None,
    environment_type: Annotated[
        str | None, typer.Option("--type", help="development, staging or production.")
    ] = None,
    addons_path: Annotated[str | None, typer.Option(help="Extra addons directories.")] = None,
    env: Annotated[list[str] | None, typer.Option(help="NAME=VALUE (repeatable).")] = None,
    wait: Wait = False,
    timeout: Timeout = 600,
) -> None:
    """Create an instance; provisioning runs as a job (--wait for it)."""
    body = pick(
        name=name,
        serverId=ctx.api.server_id(server),
        slug=slug,
        odooVersion=odoo_version,
        odooEdition=edition,
        projectId=ctx.api.project_id(project) if project else None,
        branch=branch,
        environmentType=environment_type,
        addonsPath=addons_path,
        envVars=_env_vars(env),
    )
    created = ctx.api.post("/instances", body)
    if wait:
        wait_job(ctx, latest_job(ctx, str(created["id"])), timeout)
        created = ctx.api.get(f"/instances/{created['id']}")
    ctx.out.record(created, None if ctx.out.json else INSTANCE_COLUMNS)


@command(instances_app, "control")
def instances_control(
    ctx: Ctx,
    instance: Annotated[str, typer.Argument(help="Instance id, slug or name.")],
    action: Annotated[Literal["start", "stop", "restart"], typer.Argument(help="What to do.")],
    wait: Wait = False,
    timeout: Timeout = 300,
) -> None:
    """Start, stop or restart an instance."""
    answer = ctx.api.post(f"/instances/{ctx.api.instance_id(instance)}/control", {"action": action})
    if wait and answer.get("jobId"):
        wait_job(ctx, str(answer["jobId"]), timeout)
    ctx.out.done(str(answer.get("message")), answer)


@command(instances_app, "delete")
def instances_delete(
    ctx: Ctx,
    instance: Annotated[str, typer.Argument(help="Instance id, slug or name.")],
    drop_database: Annotated[
        bool, typer.Option(help="Also drop its database and filestore.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    wait: Wait = False,
    timeout: Timeout = 300,
) -> None:
    """Delete an instance (asynchronously)."""
    instance_id = ctx.api.instance_id(instance)
    if not yes:
        if not typer.get_text_stream("stdin").isatty():
            raise UsageError("Deleting needs --yes when not run interactively.")
        typer.confirm(f"Delete instance {instance}?", abort=True)
    answer = ctx.api.delete(f"/instances/{instance_id}", dropDatabase=drop_database or None)
    if wait and answer.get("jobId"):
        wait_job(ctx, str(answer["jobId"]), timeout)
    ctx.out.done(str(answer.get("message")), answer)
