"""Apply the alembic chain from inside the app or the CLI."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection

from ocore.core.db import Database

# Any fixed 64-bit number: replicas starting together take turns migrating.
_MIGRATION_LOCK_ID = 0x6F636F7265


def alembic_config() -> Config:
    root = Path(__file__).resolve().parents[3]
    config = Config(str(root / "alembic.ini"))
    config.set_main_option("script_location", str(root / "migrations"))
    return config


def _run(connection: Connection, revision: str, direction: str) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
    try:
        config = alembic_config()
        config.attributes["connection"] = connection
        if direction == "up":
            command.upgrade(config, revision)
        else:
            command.downgrade(config, revision)
    finally:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _MIGRATION_LOCK_ID})
        connection.commit()


async def upgrade(database: Database, revision: str = "head") -> None:
    async with database.engine.connect() as connection:
        await connection.run_sync(_run, revision, "up")


async def downgrade(database: Database, revision: str) -> None:
    async with database.engine.connect() as connection:
        await connection.run_sync(_run, revision, "down")
