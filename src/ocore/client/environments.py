"""``ocore envs``, ``ocore share`` and ``ocore neutralize``."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from ocore.client.base import Ctx, command, pick
from ocore.client.errors import UsageError
from ocore.client.output import Column
from ocore.client.resources import Timeout, Wait, latest_job, wait_job

envs_app = typer.Typer(
    help="Environments: a project's branch on an instance.", no_args_is_help=True
)
share_app = typer.Typer(help="Share links to an environment.", no_args_is_help=True)

EnvArg = Annotated[str, typer.Argument(help="Environment id.")]
Stage = Literal["development", "staging", "production"]

ENV_COLUMNS: list[Column] = [
    ("id", "id"),
    ("name", "name"),
    ("type", "environmentType"),
    ("branch", "branch"),
    ("status", "status"),
    ("instance", "instanceSlug"),
    ("neutralized", "isNeutralized"),
    ("domain", lambda e: e.get("primaryDomain") or e.get("autoSubdomain")),
]


@command(envs_app, "list")
def envs_list(
    ctx: Ctx,
    project: Annotated[str | None, typer.Option(help="Only this project's (id or name).")] = None,
) -> None:
    """List environments."""
    path = "/environments"
    if project:
        path = f"/projects/{ctx.api.project_id(project)}/environments"
    ctx.out.table(ctx.api.collect(path, "environments"), ENV_COLUMNS)


@command(envs_app, "show")
def envs_show(ctx: Ctx, environment: EnvArg) -> None:
    """Show an environment."""
    ctx.out.record(ctx.api.get(f"/environments/{environment}"))


@command(envs_app, "clone")
def envs_clone(
    ctx: Ctx,
    environment: EnvArg,
    branch: Annotated[str, typer.Option("--branch", help="The new environment's branch.")],
    target_type: Annotated[Stage | None, typer.Option("--type", help="Its stage.")] = None,
    auto_destroy: Annotated[
        bool | None, typer.Option(help="Destroy it when the branch is merged.")
    ] = None,
    wait: Wait = False,
    timeout: Timeout = 900,
) -> None:
    """Clone an environment (database and filestore) onto a new branch."""
    body = pick(targetBranch=branch, targetType=target_type, autoDestroy=auto_destroy)
    clone = ctx.api.post(f"/environments/{environment}/clone", body)
    if wait:
        wait_job(ctx, latest_job(ctx, str(clone["id"])), timeout)
        clone = ctx.api.get(f"/environments/{clone['id']}")
    ctx.out.record(clone, None if ctx.out.json else ENV_COLUMNS)


@command(envs_app, "promote")
def envs_promote(
    ctx: Ctx,
    environment: EnvArg,
    to: Annotated[Stage, typer.Option("--to", help="The target stage.")],
    force: Annotated[bool, typer.Option(help="Skip test gating (admins).")] = False,
    demotion_db: Annotated[
        Literal["fresh", "clone"] | None,
        typer.Option(help="On demotion: a fresh or a cloned database."),
    ] = None,
) -> None:
    """Promote (or demote) an environment to another stage."""
    body = pick(targetStage=to, forcePromote=force or None, demotionDbOption=demotion_db)
    answer = ctx.api.post(f"/environments/{environment}/promote", body)
    ctx.out.done(str(answer.get("message") or f"promoted to {to}"), answer)


def neutralize(
    ctx: Ctx,
    environment: EnvArg,
    confirm: Annotated[
        str | None,
        typer.Option(help="The environment's name, to confirm (asked on a terminal)."),
    ] = None,
    wait: Wait = False,
    timeout: Timeout = 600,
) -> None:
    """Neutralize an environment's database (mail, crons, payments, …)."""
    if confirm is None:
        if not typer.get_text_stream("stdin").isatty():
            raise UsageError("Pass --confirm with the environment's name.")
        name = ctx.api.get(f"/environments/{environment}").get("name")
        confirm = typer.prompt(f"Type the environment's name ({name}) to neutralize it")
    answer = ctx.api.post(
        f"/environments/{environment}/neutralization/neutralize", {"confirmText": confirm}
    )
    if wait and answer.get("jobId"):
        wait_job(ctx, str(answer["jobId"]), timeout)
    ctx.out.done(str(answer.get("message")), answer)


SHARE_COLUMNS: list[Column] = [
    ("id", "id"),
    ("type", "shareType"),
    ("label", "label"),
    ("active", "isActive"),
    ("expires", "expiresAt"),
    ("uses", "useCount"),
    ("last used", "lastUsedAt"),
]


@command(share_app, "list")
def share_list(ctx: Ctx, environment: EnvArg) -> None:
    """List an environment's share links."""
    answer = ctx.api.get(f"/environments/{environment}/share")
    ctx.out.table(answer.get("shareLinks") or [], SHARE_COLUMNS, raw=answer)


@command(share_app, "create")
def share_create(
    ctx: Ctx,
    environment: EnvArg,
    share_type: Annotated[
        Literal["token", "password"], typer.Option("--type", help="Link kind.")
    ] = "token",
    expires_in: Annotated[
        Literal["24h", "168h", "720h"], typer.Option("--expires", help="Lifetime.")
    ] = "168h",
    label: Annotated[str | None, typer.Option(help="A note for you.")] = None,
    password: Annotated[
        str | None, typer.Option(envvar="OCORE_SHARE_PASSWORD", help="For --type password.")
    ] = None,
) -> None:
    """Create a share link (its URL is shown once)."""
    body = pick(shareType=share_type, expiresIn=expires_in, label=label, password=password)
    created = ctx.api.post(f"/environments/{environment}/share", body)
    ctx.out.record(created)


@command(share_app, "revoke")
def share_revoke(
    ctx: Ctx,
    environment: EnvArg,
    link: Annotated[str, typer.Argument(help="Share link id.")],
    permanent: Annotated[bool, typer.Option(help="Delete the record too.")] = False,
) -> None:
    """Deactivate a share link (or delete it with --permanent)."""
    path = f"/environments/{environment}/share/{link}"
    if permanent:
        ctx.api.delete(path + "/permanent")
        ctx.out.done(f"share link {link} deleted", {"id": link, "deleted": True})
    else:
        answer = ctx.api.delete(path)
        ctx.out.done(str(answer.get("message")), answer)
