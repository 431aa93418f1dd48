"""SQL on an Odoo database for neutralization: introspection, row scans, row updates.

Every value travels as a ``$n`` parameter. Identifiers (tables, columns, type
names) are not parameters in SQL; they come from ocore's rules or from the
database's own ``information_schema`` and are validated and quoted here.
Values are read as ``col::text`` and written back as ``$n::<column type>``,
so booleans, integers, timestamps and strings share one path and a restore
writes exactly what was read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ocore.neutralization.rules import (
    CATCHER_NAME,
    CRON_NAME,
    DUMMY_HOST,
    DUMMY_NAME,
    RULES,
    TRUE,
    Rule,
    Values,
)

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# Tables read besides the rules' own.
_OTHER_TABLES = ("ir_mail_server", "ir_ui_view", "ir_config_parameter", "res_users")
NEUTRALIZED_FLAG = "database.is_neutralized"
BANNER_VIEWS = ("web.neutralize_banner", "website.neutralize_ribbon")
# After any real server, so a server a user re-enables is the one Odoo picks.
CATCHER_SEQUENCE = "1000"
NAME_COLUMN = "__ocore_name"


def ident(name: str) -> str:
    if not _IDENT.fullmatch(name):
        raise ValueError(f"not an SQL identifier: {name!r}")
    return f'"{name}"'


@dataclass(frozen=True)
class Schema:
    """Column types (``udt_name``) of the tables neutralization touches, read once."""

    columns: dict[str, dict[str, str]]

    def has(self, table: str, column: str | None = None) -> bool:
        found = self.columns.get(table)
        return found is not None and (column is None or column in found)

    def type_of(self, table: str, column: str) -> str:
        return self.columns[table][column]

    def existing(self, table: str, columns: Iterable[str]) -> list[str]:
        found = self.columns.get(table, {})
        return [c for c in columns if c in found]


def all_tables() -> list[str]:
    return sorted({r.table for r in RULES} | set(_OTHER_TABLES))


async def introspect(conn: Any, tables: Iterable[str]) -> Schema:
    rows = await conn.fetch(
        "SELECT table_name::text, column_name::text, udt_name::text"
        " FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = ANY($1::text[])",
        list(tables),
    )
    columns: dict[str, dict[str, str]] = {}
    for table, column, udt in rows:
        columns.setdefault(table, {})[column] = udt
    return Schema(columns)


def applies(rule: Rule, schema: Schema) -> bool:
    """The rule's table and required columns exist, and it can change something there."""
    return (
        schema.has(rule.table, "id")
        and all(schema.has(rule.table, c) for c in rule.requires)
        and all(schema.has(t) for t in rule.requires_tables)
        and bool(schema.existing(rule.table, rule.columns))
    )


def _text(schema: Schema, table: str, alias: str, column: str) -> str:
    """A column as text; a translated (JSONB) name as its English value, as Odoo shows it."""
    ref = f"{alias}.{ident(column)}"
    if schema.type_of(table, column) == "jsonb":
        return f"COALESCE({ref}->>'en_US', {ref}::text)"
    return f"{ref}::text"


def record_name(rule: Rule, schema: Schema) -> str:
    if rule.name == CRON_NAME:
        parts = []
        if schema.has("ir_act_server", "name") and schema.has(rule.table, "ir_actions_server_id"):
            name = _text(schema, "ir_act_server", "a", "name")
            parts.append(
                f"(SELECT {name} FROM ir_act_server a"  # noqa: S608 - quoted identifiers only
                " WHERE a.id = t.ir_actions_server_id)"
            )
        if schema.has(rule.table, "cron_name"):
            parts.append(_text(schema, rule.table, "t", "cron_name"))
        return f"COALESCE({', '.join(parts)})" if parts else "NULL"
    if rule.name is None or not all(schema.has(t, c) for t, c in rule.name_needs):
        return "NULL"
    if _IDENT.fullmatch(rule.name):
        if not schema.has(rule.table, rule.name):
            return "NULL"
        return _text(schema, rule.table, "t", rule.name)
    return rule.name  # a static expression of the rule, its columns checked by name_needs


@dataclass(frozen=True)
class Scanned:
    """A row in the rule's scope: what it holds now, and what neutralizing it changes."""

    record_id: int
    name: str | None
    live: Values
    changes: Values


async def scan(
    conn: Any, schema: Schema, rule: Rule, major: int, record_ids: list[int] | None = None
) -> list[Scanned]:
    """The rule's rows (all, or ``record_ids``), locked until the transaction ends."""
    stored = schema.existing(rule.table, rule.columns)
    read = stored + [c for c in schema.existing(rule.table, rule.reads) if c not in stored]
    select = ", ".join(f"t.{ident(c)}::text AS {ident(c)}" for c in read)
    # Identifiers are quoted by ident(); every value is a $n parameter.
    sql = (
        f"SELECT t.id, {record_name(rule, schema)} AS {NAME_COLUMN}, {select}"  # noqa: S608
        f" FROM {ident(rule.table)} t WHERE true"
    )
    params: list[Any] = []
    if rule.where is not None:
        sql += f" AND {rule.where[0]}"
        params += list(rule.where[1])
    if record_ids is not None:
        params.append(record_ids)
        sql += f" AND t.id = ANY(${len(params)}::int[])"
    # NO KEY: ocore never changes ids, so Odoo's own FK checks on these rows are not blocked.
    rows = await conn.fetch(sql + " ORDER BY t.id FOR NO KEY UPDATE OF t", *params)
    result = []
    for row in rows:
        live: Values = {c: row[c] for c in read}
        neutral = rule.neutral(live, major)
        if neutral is None:
            continue
        changes = {c: v for c, v in neutral.items() if c in stored and live[c] != v}
        result.append(
            Scanned(int(row["id"]), row[NAME_COLUMN], {c: live[c] for c in stored}, changes)
        )
    return result


async def update_row(conn: Any, schema: Schema, table: str, record_id: int, values: Values) -> bool:
    """Write ``values`` (text, cast to each column's type) to one row; False if it is gone.

    Columns the table no longer has are left out: a module uninstalled since
    took them, and there is nothing to restore there.
    """
    columns = schema.existing(table, values)
    if not columns:
        query = f"SELECT 1 FROM {ident(table)} WHERE id = $1"  # noqa: S608 - quoted identifier
        exists = await conn.fetchval(query, record_id)
        return exists is not None
    sets = ", ".join(
        f"{ident(c)} = ${i}::text::{ident(schema.type_of(table, c))}"
        for i, c in enumerate(columns, start=2)
    )
    query = f"UPDATE {ident(table)} SET {sets} WHERE id = $1"  # noqa: S608 - quoted identifiers
    status = await conn.execute(query, record_id, *(values[c] for c in columns))
    return bool(status != "UPDATE 0")


async def insert_row(conn: Any, schema: Schema, table: str, values: Values) -> int:
    columns = schema.existing(table, values)
    casts = ", ".join(
        f"${i}::text::{ident(schema.type_of(table, c))}" for i, c in enumerate(columns, start=1)
    )
    names = ", ".join(ident(c) for c in columns)
    query = f"INSERT INTO {ident(table)} ({names}) VALUES ({casts}) RETURNING id"  # noqa: S608
    return int(await conn.fetchval(query, *(values[c] for c in columns)))


async def seed_parameter(conn: Any, key: str, value: str) -> None:
    await conn.execute(
        "INSERT INTO ir_config_parameter (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        key,
        value,
    )


async def route_mail_to_catcher(conn: Any, schema: Schema, host: str, port: int) -> None:
    """One active ir_mail_server pointing at the environment's mail catcher (kept up to date)."""
    values: Values = {
        "name": CATCHER_NAME,
        "smtp_host": host,
        "smtp_port": str(port),
        "smtp_encryption": "none",
        "smtp_authentication": "login",
        "smtp_user": None,
        "smtp_pass": None,
        "from_filter": None,
        "sequence": CATCHER_SEQUENCE,
        "active": TRUE,
    }
    found = await conn.fetchval(
        "SELECT id FROM ir_mail_server WHERE name = $1 ORDER BY id LIMIT 1", CATCHER_NAME
    )
    if found is None:
        await insert_row(conn, schema, "ir_mail_server", values)
    else:
        await update_row(conn, schema, "ir_mail_server", int(found), values)


async def disable_mail(conn: Any, schema: Schema) -> None:
    """What Odoo does: an active dummy server on host 'invalid', so no fallback SMTP is used."""
    await conn.execute(
        "UPDATE ir_mail_server SET active = false WHERE name = $1 AND active", CATCHER_NAME
    )
    found = await conn.fetchval(
        "SELECT id FROM ir_mail_server WHERE smtp_host = $1 AND active LIMIT 1", DUMMY_HOST
    )
    if found is None:
        await insert_row(
            conn,
            schema,
            "ir_mail_server",
            {
                "name": DUMMY_NAME,
                "smtp_port": "1025",
                "smtp_host": DUMMY_HOST,
                "smtp_encryption": "none",
                "active": TRUE,
                "smtp_authentication": "login",
            },
        )


async def mark_neutralized(conn: Any, schema: Schema) -> None:
    """Odoo's flag (``database.is_neutralized``) and its banner/ribbon views."""
    if schema.has("ir_ui_view", "key") and schema.has("ir_ui_view", "active"):
        await conn.execute(
            "UPDATE ir_ui_view SET active = true WHERE key = ANY($1::text[])", list(BANNER_VIEWS)
        )
    await conn.execute(
        "INSERT INTO ir_config_parameter (key, value) VALUES ($1, $2)"
        " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        NEUTRALIZED_FLAG,
        TRUE,
    )
