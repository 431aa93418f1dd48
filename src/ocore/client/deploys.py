"""``ocore deploy``, ``ocore rollback``, ``ocore logs`` and ``ocore login``."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from ocore.client.base import Ctx, fail, pick
from ocore.client.config import Connection, Profile, normalize_url, save_profile
from ocore.client.errors import ClientError, UsageError
from ocore.client.http import ApiClient
from ocore.client.output import Column, Output
from ocore.client.watch import watch

ProjectOpt = Annotated[str, typer.Option("--project", "-p", help="Project id or name.")]
WaitOpt = Annotated[
    bool, typer.Option("--wait", help="Stream the build, print a summary, exit 3 if it fails.")
]
DEPLOYMENT_FIELDS: list[Column] = [
    ("id", "id"),
    ("status", "status"),
    ("trigger", "triggerType"),
    ("branch", "branch"),
    ("commit", "commitSha"),
    ("message", "commitMessage"),
    ("instance", "instanceId"),
    ("created", "createdAt"),
]


def _started(ctx: Ctx, deployment: dict[str, Any], wait: bool) -> int:
    if wait:
        if not ctx.out.json:
            ctx.out.out.print(
                f"Deployment {deployment['id']} ({deployment.get('triggerType')}) of "
                f"{str(deployment.get('commitSha') or '')[:12] or '-'} queued",
                markup=False,
            )
        return watch(ctx.api, deployment, ctx.out)
    ctx.out.record(deployment, DEPLOYMENT_FIELDS)
    if not ctx.out.json:
        ctx.out.note(f"follow it: ocore logs {deployment['id']} -p {deployment['projectId']} -f")
    return 0


def deploy(
    ctx: Ctx,
    project: ProjectOpt,
    instance: Annotated[str, typer.Option("--instance", "-i", help="Instance id or slug.")],
    branch: Annotated[str | None, typer.Option("--branch", "-b", help="Deploy a branch.")] = None,
    commit: Annotated[str | None, typer.Option("--commit", help="Deploy a commit SHA.")] = None,
    tag: Annotated[str | None, typer.Option("--tag", help="Deploy a tag.")] = None,
    wait: WaitOpt = False,
) -> int:
    """Deploy a branch, commit or tag to an instance (CI: add --wait)."""
    targets = pick(branch=branch, commitSha=commit, tag=tag)
    if len(targets) != 1:
        raise UsageError("Give exactly one of --branch, --commit or --tag.")
    project_id = ctx.api.project_id(project)
    body = {"instanceId": ctx.api.instance_id(instance), **targets}
    return _started(ctx, ctx.api.post(f"/projects/{project_id}/deploy", body), wait)


def rollback(
    ctx: Ctx,
    project: ProjectOpt,
    to: Annotated[str, typer.Option("--to", help="The earlier successful deployment's id.")],
    wait: WaitOpt = False,
) -> int:
    """Roll back to an earlier successful deployment: its code and its database."""
    project_id = ctx.api.project_id(project)
    return _started(
        ctx, ctx.api.post(f"/projects/{project_id}/rollback", {"deploymentId": to}), wait
    )


def logs(
    ctx: Ctx,
    deployment: Annotated[str, typer.Argument(help="Deployment id.")],
    project: ProjectOpt,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Stream a running build to its end.")
    ] = False,
) -> int:
    """Print a deployment's build log; --follow streams it like 'deploy --wait'."""
    project_id = ctx.api.project_id(project)
    path = f"/projects/{project_id}/deployments/{deployment}"
    if follow:
        return watch(ctx.api, ctx.api.get(path), ctx.out)
    if ctx.out.json:
        ctx.out.print_json(ctx.api.get(path))
        return 0
    text = ctx.api.get(path + "/logs/download")
    sys.stdout.write(text if str(text).endswith("\n") else f"{text}\n")
    return 0


DEPLOYMENTS_COLUMNS: list[Column] = [
    ("id", "id"),
    ("status", "status"),
    ("trigger", "triggerType"),
    ("branch", "branch"),
    ("commit", lambda d: str(d.get("commitSha") or "")[:12]),
    ("verdict", lambda d: (d.get("successVerdict") or {}).get("label")),
    ("created", "createdAt"),
]


def deployments(
    ctx: Ctx,
    project: ProjectOpt,
    limit: Annotated[int, typer.Option(help="How many (newest first).")] = 20,
) -> None:
    """List a project's deployments, newest first."""
    answer = ctx.api.get(f"/projects/{ctx.api.project_id(project)}/deployments", limit=limit)
    ctx.out.table(answer.get("deployments") or [], DEPLOYMENTS_COLUMNS, raw=answer)


def login(
    url: Annotated[str, typer.Option("--url", help="The ocore server URL.")],
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="OCORE_TOKEN", help="API token (asked if left out)."),
    ] = None,
    profile: Annotated[str, typer.Option(help="Profile name.")] = "default",
    default: Annotated[bool, typer.Option(help="Make it the default profile.")] = True,
    verify: Annotated[bool, typer.Option(help="Check the URL and token first.")] = True,
) -> None:
    """Save a URL and token as a profile (~/.config/ocore/config.toml, mode 0600)."""
    out = Output(as_json=False)
    try:
        base = normalize_url(url)
        if token is None:
            if not sys.stdin.isatty():
                raise UsageError("Pass --token or set OCORE_TOKEN.")
            token = str(typer.prompt("Token", hide_input=True))
        token = token.strip()
        if not token:
            raise UsageError("The token is empty.")
        if verify:
            with ApiClient(Connection(url=base, token=token, source="login")) as api:
                api.get("/projects", limit=1)
        path = save_profile(Profile(name=profile, url=base, token=token), make_default=default)
    except ClientError as exc:
        raise fail(exc) from None
    # Never echo the token: only where it went.
    out.out.print(f"Saved profile '{profile}' for {base} in {path} (mode 0600).", markup=False)
