"""Schema fuzzing: every operation of the app's own OpenAPI document, as an owner.

Goal: no server error, no response outside its declared schema, no status code
or media type the document does not declare. Each operation runs schemathesis'
explicit and coverage cases and ``OCORE_FUZZ_EXAMPLES`` generated ones (8 by
default), derandomized so that every run draws the same cases. ``bench/fuzz.py``
runs this module with many more examples and ``OCORE_FUZZ_REPORT`` set: then
failures are counted and written to that file instead of failing the test.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.python import asgi

from ocore.app import create_app
from ocore.core.db import Database
from ocore.settings import Settings
from tests.conftest import Tenant
from tests.fuzz.fuzzing import Seeded, Tally, call_and_check, load_schema, make_repository, seed

MAX_EXAMPLES = int(os.environ.get("OCORE_FUZZ_EXAMPLES", "8"))
REPORT = os.environ.get("OCORE_FUZZ_REPORT")

# Filled by the `seeded` fixture of each test: each operation starts from the same rows.
SEEDED = Seeded()
TALLY = Tally()
schema = load_schema(SEEDED)


@pytest.fixture(scope="module")
def fuzz_app(settings: Settings) -> Iterator[FastAPI]:
    """An app of the fuzzing's own: schemathesis runs it, lifespan included, on its own loop."""
    app = create_app(settings)
    yield app
    asgi.shutdown_lifespans()
    if REPORT:
        Path(REPORT).write_text(json.dumps(TALLY.as_json(), indent=1))


@pytest.fixture(scope="module")
def repository_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_repository(tmp_path_factory.mktemp("fuzz-repo"))


@pytest.fixture
async def seeded(
    client: httpx.AsyncClient, tenant: Tenant, database: Database, repository_url: str
) -> Seeded:
    fresh = await seed(client, tenant.headers, database, tenant.organization_id, repository_url)
    SEEDED.ids = fresh.ids
    return SEEDED


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_operation(
    case: schemathesis.Case, fuzz_app: FastAPI, tenant: Tenant, seeded: Seeded
) -> None:
    call_and_check(case, fuzz_app, tenant.headers, TALLY, raise_failures=not REPORT)
