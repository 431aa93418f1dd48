"""The ``ocore`` command: serve, migrate, admin and token management."""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, TypeVar
from urllib.parse import urlsplit

import typer
import uvicorn
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ocore.client import register_client
from ocore.core import migrate as migrations
from ocore.core.auth import Role
from ocore.core.db import Database
from ocore.core.errors import OcoreError
from ocore.core.uow import commit
from ocore.orgs import service as orgs
from ocore.orgs.models import ApiToken, Organization
from ocore.settings import Settings, get_settings
from ocore.shares import gateway_nginx

app = typer.Typer(
    help="ocore: a self-hostable control plane for Odoo hosting.", no_args_is_help=True
)
admin_app = typer.Typer(help="Organizations and users.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens (JWT) for people and CI.", no_args_is_help=True)
gateway_app = typer.Typer(help="nginx in front of ocore, serving shares' static files.")
app.add_typer(admin_app, name="admin")
app.add_typer(token_app, name="token")
app.add_typer(gateway_app, name="share-gateway", no_args_is_help=True)
register_client(app)

console = Console()
err = Console(stderr=True)
T = TypeVar("T")
_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(value: str) -> timedelta:
    match = _DURATION.match(value.strip())
    if not match:
        raise typer.BadParameter("use a number and a unit: 30m, 12h, 90d, 4w")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _run(work: Callable[[AsyncSession, Settings], Awaitable[T]], *, migrate: bool = True) -> T:
    """Run one unit of work against the configured database; errors print plainly."""
    settings = get_settings()

    async def main() -> T:
        database = Database(settings.effective_database_url)
        try:
            if migrate:
                await migrations.upgrade(database)
            async with database.sessionmaker() as session:
                result = await work(session, settings)
                await commit(session)
                return result
        finally:
            await database.dispose()

    try:
        return asyncio.run(main())
    except OcoreError as exc:
        err.print(f"[red]error:[/red] {exc.detail}")
        raise typer.Exit(1) from None


def _print_token(token: str, note: str) -> None:
    console.print(f"[bold]{note}[/bold] (shown once; store it now):", soft_wrap=True)
    console.print(token, soft_wrap=True, highlight=False)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (needs Postgres).")] = 1,
) -> None:
    """Migrate the database, create a first owner if it is empty, and serve the API."""

    async def prepare(session: AsyncSession, settings: Settings) -> str | None:
        # Only the embedded default bootstraps itself: a production database gets
        # its first owner from `ocore admin bootstrap`, not a token in service logs.
        if settings.database_url or not await orgs.is_empty(session):
            return None
        _, owner = await orgs.create_organization(
            session, name="Default", owner_email="admin@localhost"
        )
        issued = await orgs.issue_token(
            session, settings, owner, ttl=timedelta(days=30), name="bootstrap"
        )
        return issued.token

    token = _run(prepare)
    if token:
        _print_token(token, "Created organization 'default' and owner admin@localhost. Token")
    console.print(f"API docs: http://{host}:{port}/api/docs")
    uvicorn.run(
        "ocore.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=True,
        log_level="warning",
    )


@app.command()
def worker() -> None:
    """Run jobs from Redis (production); the embedded default runs them in 'ocore serve'."""
    from ocore.worker import create_worker

    try:
        job_worker = create_worker(get_settings())
    except ValueError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    job_worker.run()


@app.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    down: Annotated[bool, typer.Option(help="Downgrade to the revision instead.")] = False,
) -> None:
    """Apply (or revert) database migrations."""
    settings = get_settings()

    async def main() -> None:
        database = Database(settings.effective_database_url)
        try:
            if down:
                await migrations.downgrade(database, revision)
            else:
                await migrations.upgrade(database, revision)
        finally:
            await database.dispose()

    asyncio.run(main())
    console.print(f"database at {'downgraded to' if down else 'upgraded to'} {revision}")


@admin_app.command("bootstrap")
def bootstrap(
    organization: Annotated[str, typer.Option("--org", help="Organization name.")] = "Default",
    email: Annotated[str, typer.Option(help="The owner's email.")] = "admin@localhost",
    ttl: Annotated[str, typer.Option(help="Token lifetime, e.g. 12h, 30d.")] = "30d",
) -> None:
    """Create the first organization and its owner, and print an owner token."""
    lifetime = parse_duration(ttl)

    async def work(session: AsyncSession, settings: Settings) -> str:
        if not await orgs.is_empty(session):
            raise OcoreError("This database already has an organization; use 'ocore token create'.")
        _, owner = await orgs.create_organization(session, name=organization, owner_email=email)
        return (
            await orgs.issue_token(session, settings, owner, ttl=lifetime, name="bootstrap")
        ).token

    _print_token(_run(work), f"Owner token for {email}")


@admin_app.command("add-user")
def add_user(
    email: Annotated[str, typer.Argument(help="The new user's email.")],
    role: Annotated[Role, typer.Option(help="The user's role.")] = Role.DEVELOPER,
    organization: Annotated[str, typer.Option("--org", help="Organization slug.")] = "default",
) -> None:
    """Add a user to an organization."""

    async def work(session: AsyncSession, settings: Settings) -> None:
        org = await session.scalar(select(Organization).where(Organization.slug == organization))
        if org is None:
            raise OcoreError(f"No organization with the slug '{organization}'.")
        await orgs.add_user(session, org.id, email=email, role=role)

    _run(work)
    console.print(f"added {email} as {role.value}")


@token_app.command("create")
def token_create(
    email: Annotated[str, typer.Option(help="The user the token acts as.")] = "admin@localhost",
    role: Annotated[Role | None, typer.Option(help="Role (at most the user's).")] = None,
    ttl: Annotated[str, typer.Option(help="Lifetime, e.g. 12h, 30d.")] = "12h",
    name: Annotated[str, typer.Option(help="A label, e.g. 'github-actions'.")] = "",
    organization: Annotated[str | None, typer.Option("--org", help="Organization slug.")] = None,
) -> None:
    """Mint a token (a revocable JWT) and print it once."""
    lifetime = parse_duration(ttl)

    async def work(session: AsyncSession, settings: Settings) -> orgs.IssuedToken:
        user = await orgs.find_user(session, email, organization)
        return await orgs.issue_token(session, settings, user, role=role, ttl=lifetime, name=name)

    issued = _run(work)
    expires = f"{issued.row.expires_at:%Y-%m-%d %H:%M} UTC"
    err.print(f"token id (jti): {issued.row.id}, role {issued.row.role}, expires {expires}")
    console.print(issued.token, soft_wrap=True, highlight=False)


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[uuid.UUID, typer.Argument(help="The token's id (jti).")],
) -> None:
    """Revoke a token: it is refused from the next request on."""

    async def work(session: AsyncSession, settings: Settings) -> None:
        await orgs.revoke_token(session, token_id)

    _run(work)
    console.print(f"revoked {token_id}")


@token_app.command("list")
def token_list() -> None:
    """List tokens (never their text)."""

    async def work(session: AsyncSession, settings: Settings) -> list[ApiToken]:
        return list((await session.scalars(select(ApiToken).order_by(ApiToken.created_at))).all())

    table = Table("id", "name", "role", "expires", "revoked")
    for row in _run(work):
        revoked = f"{row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else ""
        table.add_row(str(row.id), row.name, row.role, f"{row.expires_at:%Y-%m-%d %H:%M}", revoked)
    console.print(table)


@gateway_app.command("nginx-config")
def gateway_nginx_config(
    listen: Annotated[str, typer.Option(help="nginx listen: a port or address:port.")] = "80",
    server_name: Annotated[
        str | None, typer.Option(help="Host name [default: OCORE_PUBLIC_URL's host].")
    ] = None,
    api: Annotated[str, typer.Option(help="Where ocore serves: host:port.")] = "127.0.0.1:8000",
    static_cache_seconds: Annotated[
        int,
        typer.Option(help="How long nginx keeps a shared page's static file (0: never)."),
    ] = gateway_nginx.DEFAULT_STATIC_CACHE_SECONDS,
    cache_dir: Annotated[
        str, typer.Option(help="Where nginx keeps them (writable by its workers).")
    ] = gateway_nginx.DEFAULT_CACHE_DIR,
    output: Annotated[
        Path | None, typer.Option(help="Write here (mode 0600) instead of printing.")
    ] = None,
) -> None:
    """The nginx include file that puts the share gateway in front of ocore."""
    settings = get_settings()
    if settings.share_gateway_token is None:
        err.print(
            "[red]error:[/red] set OCORE_SHARE_GATEWAY_TOKEN first (for every ocore process), "
            "e.g. to the output of: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
        raise typer.Exit(1)
    try:
        text = gateway_nginx.render(
            gateway_nginx.GatewayConfig(
                listen=listen,
                server_name=server_name or urlsplit(settings.public_url).hostname or "_",
                api=api,
                token=settings.share_gateway_token.get_secret_value(),
                max_body_bytes=settings.max_body_bytes,
                static_cache_seconds=static_cache_seconds,
                cache_dir=cache_dir,
            )
        )
    except ValueError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    if output is None:
        typer.echo(text, nl=False)
        return
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(output, 0o600)
    console.print(
        f"Wrote {output}. nginx.conf's top level needs `pcre_jit on;` and the Lua module "
        "(libnginx-mod-http-lua); then `nginx -t` and reload nginx."
    )


if __name__ == "__main__":
    app()
