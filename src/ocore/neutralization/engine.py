"""Neutralizing an environment's database: discover, record, change, flag (one transaction).

Order matters for a crash at any line:

1. scan every rule's rows in the Odoo database, locking them (transaction open);
2. store the items with their original values in ocore's database and commit
   that, *before* anything changes in Odoo: an original value is never lost;
   new items are stored enabled, which is the truth until step 3 commits;
3. change the rows, route or disable mail, set ``database.is_neutralized``,
   commit the Odoo transaction;
4. mark the items neutralized and the environment ``is_neutralized``.

Run again (retry, or on an already neutralized database), rows that are
already neutral change nothing, stored originals are kept (the first one
wins, so neutralized values never overwrite them) and step 4 catches up.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy import delete, select

from ocore.core.errors import NotFound
from ocore.environments.models import Environment
from ocore.jobs.context import JobContext
from ocore.neutralization import odoo_db
from ocore.neutralization.models import NeutralizationItem, NeutralizationProfile
from ocore.neutralization.odoo_db import Scanned
from ocore.neutralization.rules import ALWAYS_CATEGORIES, Rule, major_of, rules_for
from ocore.neutralization.service import get_or_create_profile
from ocore.neutralization.target import connect, load_target, refuse_production, seal, unseal

Log = Callable[[str], Awaitable[None]]
ItemKey = tuple[str, str, int]
MAIL_CATCHER_HOST = "127.0.0.1"  # Mailpit runs next to the instance, on the Odoo host
FAILED_PREFIX = "Neutralization failed: "


@dataclass
class Report:
    changed: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    mail: str | None = None

    def lines(self) -> list[str]:
        lines = [f"{category}: {count} record(s) neutralized" for category, count in
                 sorted(self.changed.items())]  # fmt: skip
        lines += [f"skipped {what}" for what in self.skipped]
        if self.mail:
            lines.append(f"outgoing mail: {self.mail}")
        return lines


def enabled_categories(profile: NeutralizationProfile) -> set[str]:
    chosen = {
        "crons": profile.neutralize_crons,
        "mail": profile.neutralize_mail,
        "payments": profile.neutralize_payments,
        "carriers": profile.neutralize_carriers,
        "social": profile.neutralize_social,
    }
    return {name for name, on in chosen.items() if on} | set(ALWAYS_CATEGORIES)


def _key(rule: Rule, row: Scanned) -> ItemKey:
    return (rule.category, rule.model, row.record_id)


async def neutralize_environment(
    context: JobContext,
    environment_id: uuid.UUID,
    *,
    fresh_copy: bool = False,
    log: Log | None = None,
) -> Report:
    """Neutralize the environment's database as its project's profile says.

    ``fresh_copy``: the database was just copied from production (a clone), so
    items of an earlier copy are dropped and its live values recorded anew.
    Safe to call again at any point; production environments are refused.
    """
    async with context.session() as session:
        environment = await session.get(Environment, environment_id)
        if environment is None:
            raise NotFound(f"Environment {environment_id} no longer exists.")
        refuse_production(environment)
        target = await load_target(session, environment)
        profile = await get_or_create_profile(
            session, environment.organization_id, environment.project_id
        )
        categories = enabled_categories(profile)
        strategy, mailpit_port = profile.mail_strategy, environment.mailpit_port
        organization_id = environment.organization_id
        if fresh_copy:
            await session.execute(
                delete(NeutralizationItem).where(
                    NeutralizationItem.environment_id == environment_id
                )
            )

    report = Report()
    major = major_of(target.instance.odoo_version)
    scans: list[tuple[Rule, list[Scanned]]] = []
    async with (
        connect(target, context.secret_box, context.ssh_pool) as conn,
        conn.transaction(),
    ):
        schema = await odoo_db.introspect(conn, odoo_db.all_tables())
        for rule in rules_for(categories, major):
            if not odoo_db.applies(rule, schema):
                if not schema.has(rule.table):
                    report.skipped.append(f"{rule.table} ({rule.category}): not in this database")
                continue
            if rule.seed is not None:
                await odoo_db.seed_parameter(conn, *rule.seed)
            scans.append((rule, await odoo_db.scan(conn, schema, rule, major)))

        await _store_originals(context, organization_id, environment_id, scans)

        for rule, rows in scans:
            for row in rows:
                if row.changes:
                    await odoo_db.update_row(conn, schema, rule.table, row.record_id, row.changes)
                    report.changed[rule.category] = report.changed.get(rule.category, 0) + 1
        if "mail" in categories and schema.has("ir_mail_server", "active"):
            if strategy == "mailpit" and mailpit_port:
                await odoo_db.route_mail_to_catcher(conn, schema, MAIL_CATCHER_HOST, mailpit_port)
                report.mail = f"sent to the mail catcher at {MAIL_CATCHER_HOST}:{mailpit_port}"
            else:
                # No catcher to send to (or 'disable' chosen): do what Odoo does.
                await odoo_db.disable_mail(conn, schema)
                report.mail = "disabled (dummy server 'invalid')"
        await odoo_db.mark_neutralized(conn, schema)

    done = {_key(rule, row) for rule, rows in scans for row in rows}
    async with context.session() as session:
        items = await session.scalars(
            select(NeutralizationItem).where(NeutralizationItem.environment_id == environment_id)
        )
        for item in items:
            if (item.category, item.odoo_model, item.odoo_record_id) in done:
                item.is_enabled, item.enabled_at, item.enabled_by = False, None, None
        environment = await session.get(Environment, environment_id)
        if environment is not None:
            environment.is_neutralized = True
            if (environment.status_message or "").startswith(FAILED_PREFIX):
                environment.status_message = None  # an earlier failure is resolved
    if log is not None:
        for line in report.lines():
            await log(line)
    return report


async def _store_originals(
    context: JobContext,
    organization_id: uuid.UUID,
    environment_id: uuid.UUID,
    scans: list[tuple[Rule, list[Scanned]]],
) -> None:
    """Record every row about to change, keeping originals stored by an earlier run."""
    box = context.secret_box
    async with context.session() as session:
        existing = {
            (i.category, i.odoo_model, i.odoo_record_id): i
            for i in await session.scalars(
                select(NeutralizationItem).where(
                    NeutralizationItem.environment_id == environment_id
                )
            )
        }
        for rule, rows in scans:
            for row in rows:
                item = existing.get(_key(rule, row))
                name = row.name[:255] if row.name else None
                if item is None:
                    if not row.changes:
                        continue  # already neutral and never recorded: not ours to list
                    session.add(
                        NeutralizationItem(
                            organization_id=organization_id,
                            environment_id=environment_id,
                            category=rule.category,
                            odoo_model=rule.model,
                            odoo_record_id=row.record_id,
                            record_name=name,
                            is_enabled=True,  # still live until the Odoo transaction commits
                            original_state_encrypted=seal(
                                box, rule.table, {c: row.live[c] for c in row.changes}
                            ),
                        )
                    )
                    continue
                item.record_name = name or item.record_name
                stored = unseal(box, item.original_state_encrypted)
                # The first original wins: a column stored earlier is never replaced.
                merged = {**{c: row.live[c] for c in row.changes}, **stored}
                if merged != stored:
                    item.original_state_encrypted = seal(box, rule.table, merged)
