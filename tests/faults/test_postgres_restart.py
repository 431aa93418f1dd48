"""PostgreSQL stops and starts again under a steady stream of API requests.

A private cluster (the machine's shared server must never go away) behind a
real uvicorn process: while the database is down every request answers at
once with a 503 problem document, not a 500 or a hang; once it is back,
requests succeed again without restarting ocore.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, ProgrammingError

from ocore.core import migrate
from ocore.core.db import Database
from ocore.core.problems import PROBLEM_MEDIA_TYPE, unavailable
from ocore.core.uow import commit
from ocore.orgs import service as orgs
from ocore.settings import Settings
from tests.fixtures.ocore_process import ocore_env, start_api
from tests.fixtures.pgcluster import PgCluster, running_postgres
from tests.fixtures.sshd import free_port

# Concurrent clients, and how long each phase of the test sends requests.
CLIENTS = 4
PHASE_SECONDS = 2.0


@dataclass
class Answer:
    phase: str
    method: str
    status: int
    content_type: str
    seconds: float
    body: str


@pytest.fixture
def postgres() -> Iterator[PgCluster]:
    with running_postgres() as cluster:
        yield cluster


async def owner_token(url: str, settings: Settings) -> str:
    """Migrate the cluster's database and make an organization; returns its owner's token."""
    database = Database(url)
    try:
        await migrate.upgrade(database)
        async with database.sessionmaker() as session:
            _, owner = await orgs.create_organization(
                session, name="Acme", owner_email="owner@acme.test"
            )
            issued = await orgs.issue_token(session, settings, owner, name="test")
            await commit(session)
    finally:
        await database.dispose()
    return issued.token


async def load(client: httpx.AsyncClient, token: str, phase: list[str], answers: list[Answer]):
    """Reads and writes, one after the other, until the phase is "done".

    An answer counts for a phase only if its request began and ended in it.
    """
    headers = {"Authorization": f"Bearer {token}"}
    while (current := phase[0]) != "done":
        if len(answers) % 3:
            method, request = "GET", client.get("/api/projects", headers=headers)
        else:
            body = {"name": f"p-{uuid.uuid4().hex[:8]}", "repositoryUrl": "/srv/x.git",
                    "odooVersion": "17.0"}  # fmt: skip
            method, request = "POST", client.post("/api/projects", json=body, headers=headers)
        started = time.monotonic()
        try:
            response = await request
        except httpx.HTTPError as exc:  # no answer at all: recorded as status 0
            status, content_type, text = 0, "", repr(exc)
        else:
            status = response.status_code
            content_type, text = response.headers.get("content-type", ""), response.text[:300]
        seconds = time.monotonic() - started
        span = current if phase[0] == current else f"{current}..{phase[0]}"
        answers.append(Answer(span, method, status, content_type, seconds, text))
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_requests_answer_503_while_postgres_is_down_and_recover_after(
    postgres: PgCluster, settings: Settings, tmp_path: Path, mode: str
) -> None:
    token = await owner_token(postgres.url, settings)
    env = ocore_env(settings, tmp_path / "data", database_url=postgres.url, redis_url=None)
    api, url = await start_api(env, tmp_path)
    phase = ["up"]
    answers: list[Answer] = []
    try:
        async with httpx.AsyncClient(base_url=url, timeout=15) as client:
            clients = [
                asyncio.create_task(load(client, token, phase, answers)) for _ in range(CLIENTS)
            ]
            for name, action in (
                ("stopping", lambda: postgres.stop(mode)),
                ("starting", postgres.start),
            ):
                await asyncio.sleep(PHASE_SECONDS)
                phase[0] = name
                await asyncio.to_thread(action)
                phase[0] = "down" if name == "stopping" else "back"
            await asyncio.sleep(PHASE_SECONDS)
            phase[0] = "done"
            await asyncio.gather(*clients)
        assert api.alive  # the same process served every phase
    finally:
        api.stop()

    by_phase: dict[str, list[Answer]] = {}
    for answer in answers:
        by_phase.setdefault(answer.phase, []).append(answer)
    ok = {200, 201}
    assert by_phase["up"]
    assert {a.status for a in by_phase["up"]} <= ok
    down = by_phase["down"]
    assert len(down) >= CLIENTS, "too few requests while the database was down"
    assert {(a.method, a.status, a.content_type) for a in down} <= {
        ("GET", 503, PROBLEM_MEDIA_TYPE),
        ("POST", 503, PROBLEM_MEDIA_TYPE),
    }, [a for a in down if a.status != 503][:3]
    assert all("The database cannot be reached" in a.body for a in down), down[0].body
    assert max(a.seconds for a in down) < 5  # refused at once, not left hanging
    # No request went unanswered, even while PostgreSQL was going away or coming back.
    failed = [a for a in answers if a.status not in ok]
    assert all(a.content_type == PROBLEM_MEDIA_TYPE for a in failed), failed[:3]
    # Back without restarting ocore: the pool replaced its dead connections.
    assert by_phase["back"]
    assert {a.status for a in by_phase["back"]} <= ok, [
        a for a in by_phase["back"] if a.status not in ok
    ][:3]


async def raised(database: Database, *statements: str) -> BaseException:
    """What running the statements (in one transaction) raises."""
    try:
        async with database.engine.begin() as connection:
            for sql in statements:
                await connection.execute(text(sql))
    except Exception as exc:
        return exc
    raise AssertionError(f"{statements} did not fail")


async def test_only_connection_failures_become_503(database: Database) -> None:
    # Errors of a working connection are bugs or bad data: they stay 500s.
    bad_sql = await raised(database, "SELECT * FROM no_such_table")
    assert isinstance(bad_sql, ProgrammingError)
    assert unavailable(bad_sql) is None
    duplicate = await raised(
        database, "CREATE TEMP TABLE u (id int PRIMARY KEY)", "INSERT INTO u VALUES (1), (1)"
    )
    assert isinstance(duplicate, IntegrityError)
    assert unavailable(duplicate) is None
    assert unavailable(ValueError("bug")) is None
    assert unavailable(FileNotFoundError(2, "No such file")) is None

    # Nobody listens there: refused, as a stopped PostgreSQL is.
    nowhere = Database(f"postgresql+asyncpg://ocore@127.0.0.1:{free_port()}/ocore")
    try:
        refused = await raised(nowhere, "SELECT 1")
    finally:
        await nowhere.dispose()
    problem = unavailable(refused)
    assert problem is not None
    assert problem.status == 503
    assert problem.detail.startswith("The database cannot be reached")
