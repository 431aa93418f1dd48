"""The one alembic chain builds the models' schema on PostgreSQL and SQLite, and unwinds."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from ocore.core import migrate
from ocore.core.db import Database
from ocore.models import Base
from tests.conftest import create_database, drop_database


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


def _schema_drift(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def _round_trip(database: Database) -> None:
    expected = set(Base.metadata.tables)
    await migrate.upgrade(database)
    async with database.engine.connect() as connection:
        assert expected <= await connection.run_sync(_tables)
        assert await connection.run_sync(_schema_drift) == []
    await migrate.downgrade(database, "base")
    async with database.engine.connect() as connection:
        assert await connection.run_sync(_tables) <= {"alembic_version"}
    await migrate.upgrade(database)
    async with database.engine.connect() as connection:
        assert expected <= await connection.run_sync(_tables)


async def test_chain_on_postgresql() -> None:
    name = f"ocore_migrations_{uuid.uuid4().hex[:10]}"
    database = Database(await create_database(name))
    try:
        await _round_trip(database)
    finally:
        await database.dispose()
        await drop_database(name)


async def test_chain_on_sqlite(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'ocore.db'}")
    try:
        await _round_trip(database)
    finally:
        await database.dispose()


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
async def test_one_production_environment_per_project_is_enforced_by_the_database(
    kind: str, tmp_path: Path
) -> None:
    """The partial unique index exists on both backends (not only in the models)."""
    from sqlalchemy.exc import IntegrityError

    from ocore.environments.models import Environment
    from ocore.orgs.models import Organization
    from ocore.projects.models import Project

    name = f"ocore_partial_{uuid.uuid4().hex[:10]}"
    url = (
        await create_database(name)
        if kind == "postgresql"
        else f"sqlite+aiosqlite:///{tmp_path / 'p.db'}"
    )
    database = Database(url)
    try:
        await migrate.upgrade(database)
        async with database.sessionmaker() as session:
            org = Organization(name="o", slug="o")
            session.add(org)
            await session.flush()
            project = Project(
                organization_id=org.id,
                name="p",
                repository_url="/srv/p.git",
                git_provider="local",
                odoo_version="17.0",
                webhook_secret_encrypted="x",
            )
            session.add(project)
            await session.flush()

            def environment(kind: str, branch: str) -> Environment:
                return Environment(
                    organization_id=org.id,
                    project_id=project.id,
                    name=branch,
                    environment_type=kind,
                    branch=branch,
                )

            session.add_all([environment("production", "main"), environment("staging", "s1")])
            session.add(environment("staging", "s2"))
            await session.flush()
            session.add(environment("production", "other"))
            with pytest.raises(IntegrityError):
                await session.flush()
    finally:
        await database.dispose()
        if kind == "postgresql":
            await drop_database(name)
