"""How much ocore's database clone costs over the raw PostgreSQL commands.

    python bench/clone.py [--size-mb 1024] [--repeat 3] [--jobs 2]

Builds an Odoo-shaped database of about ``--size-mb`` on the local
PostgreSQL (as the unprivileged role the tests use, from
``OCORE_TEST_DATABASE_URL``), then times, interleaved round by round:

  (a) ``CREATE DATABASE … TEMPLATE`` through psql,
  (b) ocore's ``clone_database`` through ``LocalHost`` (auto, i.e. template),
  (c) ``pg_dump -Fd -j N`` + ``createdb`` + ``pg_restore -j N``,
  (d) ocore's ``clone_database(method="dump", jobs=N)``,

and prints the median seconds and the ratio ocore/raw for both methods.
Everything it creates is dropped at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
from _harness import report
from sqlalchemy.engine import make_url

from ocore.hosts import LocalHost
from ocore.hosts.database import PgServer, clone_database, staging_name

URL = make_url(
    os.environ.get(
        "OCORE_TEST_DATABASE_URL",
        "postgresql+asyncpg://ocore_test:ocore_test@127.0.0.1:5432/postgres",
    )
)
PG = PgServer(
    host=URL.host or "127.0.0.1",
    port=URL.port or 5432,
    user=URL.username or "ocore_test",
    password=URL.password or "",
)

SCHEMA = """
CREATE TABLE res_partner (
    id serial PRIMARY KEY, name varchar NOT NULL, display_name varchar, email varchar,
    phone varchar, street varchar, city varchar, zip varchar, country_id integer,
    company_id integer, is_company boolean, active boolean DEFAULT true,
    create_uid integer, create_date timestamp, write_uid integer, write_date timestamp
);
CREATE INDEX res_partner_name_index ON res_partner (name);
CREATE INDEX res_partner_email_index ON res_partner (email);
CREATE INDEX res_partner_company_id_index ON res_partner (company_id);

CREATE TABLE sale_order (
    id serial PRIMARY KEY, name varchar NOT NULL, partner_id integer NOT NULL,
    date_order timestamp NOT NULL, state varchar, amount_untaxed numeric,
    amount_tax numeric, amount_total numeric, currency_id integer, user_id integer,
    company_id integer, note text, create_date timestamp, write_date timestamp
);
CREATE INDEX sale_order_partner_id_index ON sale_order (partner_id);
CREATE INDEX sale_order_date_order_index ON sale_order (date_order);
CREATE INDEX sale_order_state_index ON sale_order (state);
CREATE INDEX sale_order_name_index ON sale_order (name);

CREATE TABLE sale_order_line (
    id serial PRIMARY KEY, order_id integer NOT NULL, product_id integer, name text,
    sequence integer, product_uom_qty numeric, price_unit numeric, discount numeric,
    price_subtotal numeric, price_tax numeric, price_total numeric,
    create_date timestamp, write_date timestamp
);
CREATE INDEX sale_order_line_order_id_index ON sale_order_line (order_id);
CREATE INDEX sale_order_line_product_id_index ON sale_order_line (product_id);

CREATE TABLE ir_attachment (
    id serial PRIMARY KEY, name varchar NOT NULL, res_model varchar, res_id integer,
    res_field varchar, type varchar, store_fname varchar, checksum varchar(40),
    mimetype varchar, file_size integer, public boolean, index_content text,
    create_date timestamp, write_date timestamp
);
CREATE INDEX ir_attachment_res_idx ON ir_attachment (res_model, res_id);
CREATE INDEX ir_attachment_checksum_index ON ir_attachment (checksum);

CREATE TABLE mail_message (
    id serial PRIMARY KEY, model varchar, res_id integer, record_name varchar,
    message_type varchar NOT NULL, subtype_id integer, author_id integer, subject varchar,
    body text, date timestamp, create_date timestamp, write_date timestamp
);
CREATE INDEX mail_message_model_res_id_idx ON mail_message (model, res_id);
CREATE INDEX mail_message_author_id_index ON mail_message (author_id);
CREATE INDEX mail_message_date_index ON mail_message (date);
"""

# One batch of every table, ``$1`` being the batch number: roughly 20 MB with indexes.
BATCH = [
    """INSERT INTO res_partner (name, display_name, email, phone, street, city, zip,
           country_id, company_id, is_company, create_uid, create_date, write_uid, write_date)
       SELECT 'Partner ' || i, 'Partner ' || i || ', Company ' || (i % 97),
              'partner' || i || '@example.com', '+32 470 ' || lpad((i % 1000000)::text, 6, '0'),
              i || ' Avenue Louise', 'Brussels', lpad((i % 10000)::text, 4, '0'),
              21, 1 + i % 3, i % 5 = 0, 2, now(), 2, now()
       FROM generate_series(($1 - 1) * 2000 + 1, $1 * 2000) i""",
    """INSERT INTO sale_order (name, partner_id, date_order, state, amount_untaxed,
           amount_tax, amount_total, currency_id, user_id, company_id, note,
           create_date, write_date)
       SELECT 'S' || lpad(i::text, 7, '0'), 1 + i % ($1 * 2000),
              timestamp '2020-01-01' + i * interval '7 minutes',
              (ARRAY['draft', 'sent', 'sale', 'cancel'])[1 + i % 4],
              (i % 9973) * 1.5, (i % 9973) * 0.315, (i % 9973) * 1.815, 1, 2, 1 + i % 3,
              'Terms and conditions: ' || md5(i::text), now(), now()
       FROM generate_series(($1 - 1) * 5000 + 1, $1 * 5000) i""",
    """INSERT INTO sale_order_line (order_id, product_id, name, sequence, product_uom_qty,
           price_unit, discount, price_subtotal, price_tax, price_total,
           create_date, write_date)
       SELECT 1 + i / 4, 1 + i % 5000, '[FURN_' || (i % 5000) || '] Desk ' || md5(i::text),
              10 * (i % 4), 1 + i % 7, (i % 997) * 1.1, 0, (i % 997) * 1.1 * (1 + i % 7),
              (i % 997) * 0.231, (i % 997) * 1.331, now(), now()
       FROM generate_series(($1 - 1) * 20000 + 1, $1 * 20000) i""",
    """INSERT INTO ir_attachment (name, res_model, res_id, type, store_fname, checksum,
           mimetype, file_size, public, index_content, create_date, write_date)
       SELECT 'invoice_' || i || '.pdf', 'sale.order', 1 + i % 5000, 'binary',
              substr(md5(i::text), 1, 2) || '/' || md5(i::text) || left(md5((-i)::text), 8),
              md5(i::text) || left(md5((-i)::text), 8), 'application/pdf', 20000 + i % 50000,
              false, repeat(md5(i::text), 3), now(), now()
       FROM generate_series(($1 - 1) * 3000 + 1, $1 * 3000) i""",
    """INSERT INTO mail_message (model, res_id, record_name, message_type, subtype_id,
           author_id, subject, body, date, create_date, write_date)
       SELECT 'sale.order', 1 + i % 5000, 'S' || lpad((1 + i % 5000)::text, 7, '0'),
              (ARRAY['comment', 'notification', 'email'])[1 + i % 3], 1 + i % 3,
              1 + i % 2000, 'Re: your order ' || i,
              '<p>' || repeat(md5(i::text) || ' ', 8) || '</p>',
              timestamp '2020-01-01' + i * interval '1 minute', now(), now()
       FROM generate_series(($1 - 1) * 20000 + 1, $1 * 20000) i""",
]


def pg_env() -> dict[str, str]:
    return {**os.environ, **PG.env()}


def sh(*argv: str) -> None:
    # Fixed programs with arguments this script builds itself; no shell.
    subprocess.run(argv, check=True, env=pg_env(), stdout=subprocess.DEVNULL)  # noqa: S603


async def admin_execute(sql: str) -> None:
    conn = await asyncpg.connect(
        host=PG.host, port=PG.port, user=PG.user, password=PG.password, database="postgres"
    )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def drop(name: str) -> None:
    await admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def build(source: str, size_mb: int) -> int:
    await admin_execute(
        f"CREATE DATABASE \"{source}\" TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C'"
    )
    conn = await asyncpg.connect(
        host=PG.host, port=PG.port, user=PG.user, password=PG.password, database=source
    )
    try:
        await conn.execute(SCHEMA)
        batch = 0
        size = 0
        while size < size_mb * 1024 * 1024:
            batch += 1
            async with conn.transaction():
                for statement in BATCH:
                    await conn.execute(statement, batch)
            size = await conn.fetchval("SELECT pg_database_size(current_database())")
            print(f"\rbuilding {source}: {size / 2**20:7.0f} MB", end="", flush=True)
        await conn.execute("VACUUM ANALYZE")
        size = await conn.fetchval("SELECT pg_database_size(current_database())")
    finally:
        await conn.close()
    print()
    return int(size)


async def timed(run: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await run()
    return time.perf_counter() - started


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()

    tag = uuid.uuid4().hex[:8]
    source, target = f"bench_src_{tag}", f"bench_dst_{tag}"
    host = LocalHost()
    work = tempfile.mkdtemp(prefix="ocore-bench-")
    jobs = str(args.jobs)

    async def raw_template() -> None:
        sql = f'CREATE DATABASE "{target}" TEMPLATE "{source}"'
        await asyncio.to_thread(sh, "psql", "-X", "-q", "-d", "postgres", "-c", sql)

    async def ocore_template() -> None:
        result = await clone_database(host, PG, source, target)
        assert result.method == "template", result

    async def raw_dump() -> None:
        dump = os.path.join(work, "dump")

        def commands() -> None:
            sh("pg_dump", "-Fd", "-j", jobs, "-f", dump, "-d", source)
            sh("createdb", "-T", "template0", target)
            sh("pg_restore", "-j", jobs, "--no-owner", "-d", target, dump)
            shutil.rmtree(dump)

        await asyncio.to_thread(commands)

    async def ocore_dump() -> None:
        await clone_database(host, PG, source, target, method="dump", jobs=args.jobs)

    runs: dict[str, Callable[[], Awaitable[None]]] = {
        "raw template": raw_template,
        "ocore template": ocore_template,
        "raw dump/restore": raw_dump,
        "ocore dump/restore": ocore_dump,
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    try:
        size = await build(source, args.size_mb)
        # Interleaved, and each round starting one further along, so the first
        # copy after the build (cold caches, hint bits) is not always the same method's.
        order = list(runs)
        for round_ in range(1, args.repeat + 1):
            shift = (round_ - 1) % len(order)
            for name in order[shift:] + order[:shift]:
                times[name].append(await timed(runs[name]))
                await drop(target)
            line = ", ".join(f"{name} {t[-1]:.2f}s" for name, t in times.items())
            print(f"round {round_}: {line}", flush=True)
    finally:
        for name in (source, target, staging_name(target)):
            await drop(name)
        shutil.rmtree(work, ignore_errors=True)

    median = {name: statistics.median(t) for name, t in times.items()}
    print(
        f"\ndatabase {size / 2**20:.0f} MB (asked {args.size_mb} MB), "
        f"{args.repeat} repetitions, -j {args.jobs}, median seconds:\n"
    )
    print(f"{'method':<16} {'raw':>9} {'ocore':>9} {'ocore/raw':>10}")
    worst = 0.0
    for method, raw, ours in (
        ("template", "raw template", "ocore template"),
        ("dump/restore", "raw dump/restore", "ocore dump/restore"),
    ):
        ratio = median[ours] / median[raw]
        worst = max(worst, ratio)
        print(f"{method:<16} {median[raw]:>9.2f} {median[ours]:>9.2f} {ratio:>9.2f}x")
        figure = f"clone {size / 2**20:.0f} MB, {method} (median of {args.repeat})"
        report(figure, median[ours], median[raw], "s", "goal ≤ 1.25x")
    goal = "within" if worst <= 1.25 else "OVER"
    print(f"\nworst ratio {worst:.2f}x: {goal} the 1.25x goal")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
