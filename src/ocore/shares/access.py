"""Who may pass: token and cookie checks, password attempts, and where a link leads.

Everything here reads the database on every call on purpose: a link that was
deactivated, deleted or has expired must stop working on the next request,
on every replica, without any cache to wait for. The one exception is the
nginx share gateway (``gateway``): it may reuse a yes for a link's static
files for about a second.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar

import anyio.to_thread
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ocore.core.crypto import constant_time_equals, sha256_hex, verify_password
from ocore.core.db import utcnow
from ocore.core.errors import NotFound, OcoreError, ServiceUnavailable
from ocore.environments.models import Environment
from ocore.instances.hosting import colour_ports
from ocore.instances.models import Domain, Instance
from ocore.orgs.models import AuditEntry
from ocore.servers.models import Server
from ocore.shares import session as share_session
from ocore.shares.models import ShareLink

# Tokens are secrets.token_urlsafe(32) (43 characters); anything far off that
# shape is refused before it costs a query.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,128}")
# Brute-force bound per link: this many wrong passwords within the window, then 429.
MAX_FAILED_LOGINS = 10
FAILED_LOGIN_WINDOW = timedelta(minutes=15)
LOGIN_FAILED_ACTION = "share.login_failed"


class LinkNotFound(NotFound):
    """Unknown, expired and deactivated links all end here, so they look the same."""

    code = "share_not_found"
    title = "Share link not found"

    def __init__(self) -> None:
        super().__init__("This share link does not exist or is no longer valid.")


class TooManyAttempts(OcoreError):
    status: ClassVar[int] = 429
    code: ClassVar[str] = "too_many_attempts"
    title: ClassVar[str] = "Too many attempts"


class EnvironmentUnavailable(ServiceUnavailable):
    code = "share_environment_unavailable"
    title = "Shared environment unavailable"


@dataclass(frozen=True)
class Target:
    """Where a link's requests go: all of it from the database, nothing from the request."""

    link_id: uuid.UUID
    server: Server
    # The Odoo host's loopback ports of the live colour.
    http_port: int
    websocket_port: int
    # What nginx's server_name and Odoo's dbfilter expect as Host.
    host_header: str
    domains: frozenset[str]


def _usable(link: ShareLink) -> bool:
    return link.is_active and link.expires_at > utcnow()


async def link_for_token(session: AsyncSession, token: str, *, lock: bool = False) -> ShareLink:
    """The usable link the token opens, else ``LinkNotFound``.

    ``lock`` takes the row lock (PostgreSQL) so concurrent password attempts
    on one link are counted one after the other.
    """
    if not _TOKEN.fullmatch(token):
        raise LinkNotFound()
    digest = sha256_hex(token)
    statement = select(ShareLink).where(ShareLink.token_hash == digest)
    if lock:
        statement = statement.with_for_update()
    link = (await session.execute(statement)).scalar_one_or_none()
    # The lookup already matched on the hash; comparing again in constant time
    # costs nothing and keeps the check independent of how the index compares.
    if link is None or not constant_time_equals(link.token_hash, digest) or not _usable(link):
        raise LinkNotFound()
    return link


async def link_for_cookie(
    session: AsyncSession, secret_key: str, cookie: str | None
) -> ShareLink | None:
    """The usable link a share cookie was issued for, or None."""
    claim = share_session.parse(cookie)
    if claim is None:
        return None
    link = await session.get(ShareLink, claim.link_id, populate_existing=True)
    if link is None or not _usable(link):
        return None
    valid = share_session.verify(
        secret_key,
        claim,
        token_hash=link.token_hash,
        expires_at=link.expires_at,
        now=utcnow(),
    )
    return link if valid else None


async def check_password(
    session: AsyncSession, link: ShareLink, password: str, *, request_id: str | None
) -> bool:
    """Check a password attempt; the limit applies before the hash is even looked at.

    Failures are audit rows: they are counted across replicas with no extra
    store, stay as a trail of who tried, and stop being written once the
    limit is reached, so the table cannot be flooded through this endpoint.
    """
    since = utcnow() - FAILED_LOGIN_WINDOW
    failures = await session.scalar(
        select(func.count())
        .select_from(AuditEntry)
        .where(
            AuditEntry.organization_id == link.organization_id,
            AuditEntry.target_id == link.id,
            AuditEntry.action == LOGIN_FAILED_ACTION,
            AuditEntry.created_at > since,
        )
    )
    if (failures or 0) >= MAX_FAILED_LOGINS:
        raise TooManyAttempts(
            "Too many wrong passwords for this link; try again later.",
            retry_after=int(FAILED_LOGIN_WINDOW.total_seconds()),
        )
    # argon2 is deliberately slow CPU work: off the event loop, or every
    # attempt would stall all other requests of this process meanwhile.
    if link.password_hash is not None and await anyio.to_thread.run_sync(
        verify_password, link.password_hash, password
    ):
        return True
    session.add(
        AuditEntry(
            organization_id=link.organization_id,
            action=LOGIN_FAILED_ACTION,
            target_type="share_link",
            target_id=link.id,
            changes={},
            request_id=request_id,
        )
    )
    await session.flush()
    return False


async def record_use(session: AsyncSession, link: ShareLink) -> None:
    # One UPDATE with the increment in SQL: concurrent visits are all counted.
    await session.execute(
        update(ShareLink)
        .where(ShareLink.id == link.id)
        .values(use_count=ShareLink.use_count + 1, last_used_at=utcnow())
        .execution_options(synchronize_session=False)
    )


async def target_of(session: AsyncSession, link: ShareLink) -> Target:
    """Environment → instance → server, each checked to be the link's organization.

    One query (outer joins tell which part is missing): every proxied request
    of a shared page comes through here, so round trips count.
    """
    org = link.organization_id
    rows = (
        await session.execute(
            select(Environment, Instance, Server, Domain.domain)
            .outerjoin(
                Instance,
                (Instance.id == Environment.instance_id) & (Instance.organization_id == org),
            )
            .outerjoin(Server, (Server.id == Instance.server_id) & (Server.organization_id == org))
            .outerjoin(Domain, Domain.instance_id == Instance.id)
            .where(Environment.id == link.environment_id, Environment.organization_id == org)
            .order_by(Domain.is_primary.desc(), Domain.domain)
        )
    ).all()
    if not rows or rows[0].Environment.status == "deleting":
        raise LinkNotFound()
    instance, server = rows[0].Instance, rows[0].Server
    if instance is None or instance.http_port_host is None:
        raise EnvironmentUnavailable("The shared environment has no running instance.")
    if server is None:
        raise EnvironmentUnavailable("The shared environment's server is gone.")
    domains = [row.domain for row in rows if row.domain is not None]
    ports = colour_ports(instance)["green" if instance.active_color == "green" else "blue"]
    # Odoo serves websockets on the gevent port with workers, else on the HTTP port.
    websocket_port = ports.gevent if instance.workers > 0 else ports.http
    host_header = domains[0] if domains else f"{instance.slug}.localhost"
    return Target(
        link_id=link.id,
        server=server,
        http_port=ports.http,
        websocket_port=websocket_port,
        host_header=host_header,
        domains=frozenset([host_header, *domains]),
    )
