"""Re-enabling or neutralizing single records, synchronously, on the environment's database.

A toggle writes SQL straight to the Odoo database (through the hosts layer,
one transaction, bounded in time) and then records who did it. Because it
bypasses Odoo's ORM, re-enabling a cron works while ``database.is_neutralized``
is set, although Odoo's own ``ir.cron.toggle()`` refuses that: a user who
asks ocore for one cron on a staging copy gets exactly that cron.

Enabling writes back the sealed original values of the columns ocore changed,
and nothing else, so later edits to other columns survive. Neutralizing again
applies the record's rule to its current row, adding any newly changed column
to the stored originals (never replacing one).
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ocore.core.auth import Principal
from ocore.core.crypto import SecretBox
from ocore.core.db import utcnow
from ocore.core.errors import CommandTimeout, Conflict, HostError
from ocore.environments.models import Environment
from ocore.hosts import SSHPool
from ocore.jobs.engine import ACTIVE
from ocore.jobs.models import Job
from ocore.neutralization import odoo_db
from ocore.neutralization.models import NeutralizationItem
from ocore.neutralization.odoo_db import Schema
from ocore.neutralization.rules import Rule, major_of, rule_of
from ocore.neutralization.service import lock_key
from ocore.neutralization.target import connect, load_target, refuse_production, seal, unseal
from ocore.orgs import audit

# A request waits this long at most for the host, the database and row locks.
TOGGLE_TIMEOUT = 45.0
CONNECT_TIMEOUT = 15.0
STATEMENT_TIMEOUT = 30.0
# A row held by a running Odoo transaction (a cron, a neutralization) is a conflict.
LOCK_TIMEOUT = "5s"


async def toggle(
    session: AsyncSession,
    box: SecretBox,
    pool: SSHPool,
    principal: Principal,
    environment: Environment,
    items: list[NeutralizationItem],
    enable: bool,
) -> None:
    """Enable (restore) or neutralize ``items`` in one Odoo transaction, then record it."""
    refuse_production(environment)
    await _refuse_while_running(session, environment)
    if not items:
        return
    target = await load_target(session, environment)
    major = major_of(target.instance.odoo_version)
    rules = {item.id: _rule(item) for item in items}
    try:
        async with (
            asyncio.timeout(TOGGLE_TIMEOUT),
            connect(
                target,
                box,
                pool,
                connect_timeout=CONNECT_TIMEOUT,
                command_timeout=STATEMENT_TIMEOUT,
            ) as conn,
            conn.transaction(),
        ):
            await conn.execute("SELECT set_config('lock_timeout', $1, true)", LOCK_TIMEOUT)
            schema = await odoo_db.introspect(conn, odoo_db.all_tables())
            for item in items:
                if enable:
                    await _restore(conn, schema, box, rules[item.id], item)
                else:
                    await _neutralize(conn, schema, box, rules[item.id], item, major)
    except TimeoutError:
        raise CommandTimeout(
            f"The database of environment {environment.name} did not answer in time; "
            "nothing was changed."
        ) from None
    except asyncpg.LockNotAvailableError:
        raise Conflict(
            "A record is locked by another transaction in the Odoo database (a running cron "
            "or neutralization); nothing was changed, try again in a moment."
        ) from None
    except (OSError, asyncpg.InterfaceError) as exc:
        raise HostError(
            f"Lost the connection to the database of environment {environment.name} "
            f"({type(exc).__name__}); the change may not have been applied, toggle again."
        ) from None
    except asyncpg.PostgresError as exc:
        # The message only: a DETAIL line can quote a row, secrets included.
        message = exc.args[0] if exc.args else type(exc).__name__
        raise HostError(
            f"The Odoo database refused the change ({exc.sqlstate}): {message}"
        ) from None

    now = utcnow()
    for item in items:
        item.is_enabled = enable
        item.enabled_at = now if enable else None
        item.enabled_by = principal.user_id if enable else None
    await session.flush()


async def audit_toggle(
    session: AsyncSession,
    principal: Principal,
    environment: Environment,
    items: list[NeutralizationItem],
    enable: bool,
    category: str | None = None,
) -> None:
    """Who switched which records (ids and names only, never values)."""
    if category is None and len(items) == 1:
        item = items[0]
        await audit.record(
            session,
            principal,
            "neutralization.item.enable" if enable else "neutralization.item.disable",
            "neutralization_item",
            item.id,
            {
                "environmentId": str(environment.id),
                "category": item.category,
                "odooModel": item.odoo_model,
                "odooRecordId": item.odoo_record_id,
            },
        )
        return
    await audit.record(
        session,
        principal,
        "neutralization.category.enable" if enable else "neutralization.category.disable",
        "environment",
        environment.id,
        {"category": category, "itemIds": [str(i.id) for i in items]},
    )


def _rule(item: NeutralizationItem) -> Rule:
    rule = rule_of(item.category, item.odoo_model)
    if rule is None:
        raise Conflict(f"ocore does not know how to toggle {item.odoo_model} records.")
    return rule


async def _refuse_while_running(session: AsyncSession, environment: Environment) -> None:
    running = await session.scalar(
        select(Job.id).where(Job.lock_key == lock_key(environment), Job.status.in_(ACTIVE))
    )
    if running is not None:
        raise Conflict(
            f"Job {running} is working on this environment's database; toggle once it has finished."
        )


def _gone(item: NeutralizationItem) -> Conflict:
    return Conflict(
        f"{item.odoo_model} record {item.odoo_record_id} ({item.record_name or 'unnamed'}) "
        "no longer exists in the environment's database."
    )


async def _restore(
    conn: Any, schema: Schema, box: SecretBox, rule: Rule, item: NeutralizationItem
) -> None:
    values = unseal(box, item.original_state_encrypted)
    if not schema.has(rule.table):
        raise _gone(item)
    if not await odoo_db.update_row(conn, schema, rule.table, item.odoo_record_id, values):
        raise _gone(item)


async def _neutralize(
    conn: Any, schema: Schema, box: SecretBox, rule: Rule, item: NeutralizationItem, major: int
) -> None:
    if not odoo_db.applies(rule, schema):
        raise _gone(item)
    rows = await odoo_db.scan(conn, schema, rule, major, [item.odoo_record_id])
    if not rows:
        # Out of the rule's scope now (e.g. a webhook action turned into code): nothing
        # to switch off, unless the record is gone.
        if not await odoo_db.update_row(conn, schema, rule.table, item.odoo_record_id, {}):
            raise _gone(item)
        return
    row = rows[0]
    if not row.changes:
        return
    stored = unseal(box, item.original_state_encrypted)
    merged = {**{c: row.live[c] for c in row.changes}, **stored}
    if merged != stored:
        item.original_state_encrypted = seal(box, rule.table, merged)
    await odoo_db.update_row(conn, schema, rule.table, item.odoo_record_id, row.changes)
