"""The harness of the API-level injection properties: a world of real resources and a
guard that checks each answer is a success or a refusal that changed nothing."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import currently_in_test_context, event
from hypothesis import strategies as st
from sqlalchemy import text

from ocore.core.db import Database
from ocore.models import Base
from ocore.settings import Settings
from tests.conftest import Tenant
from tests.security.hostile import hostile_json_text
from tests.security.world import World, build_world

PROBLEM = "application/problem+json"
# Valid values too, so that the success side of each property is exercised as well.
plain = st.one_of(
    st.uuids().map(lambda u: f"shop-{u.hex[:8]}"),
    st.uuids().map(lambda u: f"/srv/addons-{u.hex[:8]}"),
    st.sampled_from(["main", "SHOP_KEY", "sale", "feature/x"]),
)
h = st.one_of(hostile_json_text, plain)


@dataclass(frozen=True)
class State:
    rows: dict[str, int]
    files: frozenset[tuple[str, int]]


@dataclass
class Guard:
    """Calls the API and checks the answer is a success or a harmless refusal."""

    client: httpx.AsyncClient
    database: Database
    data_dir: Path
    world: World

    async def state(self) -> State:
        tables = [t.name for t in Base.metadata.sorted_tables]
        query = " UNION ALL ".join(f"SELECT '{n}', count(*) FROM \"{n}\"" for n in tables)
        async with self.database.engine.connect() as connection:
            rows = {name: int(count) for name, count in (await connection.execute(text(query)))}
        # git-cache/ mirrors the remote repositories; resolving a ref fills it, even
        # for a ref that then turns out not to exist. Everything else must stay.
        files = frozenset(
            (str(p.relative_to(self.data_dir)), p.stat().st_size)
            for p in self.data_dir.rglob("*")
            if p.is_file() and p.relative_to(self.data_dir).parts[0] != "git-cache"
        )
        return State(rows, files)

    async def send(
        self, method: str, url: str, body: Any, *, read_back: str | None = None
    ) -> httpx.Response:
        before = await self.state()
        original = await self.get(read_back) if read_back else None
        response = await self.client.request(method, url, json=body, headers=self.world.headers)
        sent = json.dumps(body, ensure_ascii=False)[:300]
        if currently_in_test_context():
            # --hypothesis-show-statistics then shows how often each side was exercised.
            event(f"{response.status_code}")
        assert response.status_code < 500, (method, url, sent, response.text[:500])
        if response.status_code >= 400:
            assert response.headers["content-type"] == PROBLEM, (sent, response.text[:300])
            assert response.json()["status"] == response.status_code
            assert await self.state() == before, (method, url, sent, response.status_code)
            if read_back:
                assert await self.get(read_back) == original
        else:
            assert 200 <= response.status_code < 300, response.text[:300]
        return response

    async def get(self, url: str) -> Any:
        response = await self.client.get(url, headers=self.world.headers)
        assert response.status_code == 200, (url, response.text[:300])
        return _without_times(response.json())


def _without_times(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_times(v) for k, v in value.items() if k != "updatedAt"}
    if isinstance(value, list):
        return [_without_times(v) for v in value]
    return value


# Unicode White_Space, what pydantic trims; Python's str.strip also takes \x1c-\x1f.
WHITE_SPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680"
    + "".join(map(chr, range(0x2000, 0x200B)))
    + ("\u2028\u2029\u202f\u205f\u3000")
)


def trimmed(value: str) -> str:
    """What an input string is stored as: InputSchema trims surrounding whitespace."""
    return value.strip(WHITE_SPACE)


@pytest.fixture
async def guard(
    client: httpx.AsyncClient,
    app: FastAPI,
    database: Database,
    tenant: Tenant,
    settings: Settings,
    tmp_path: Path,
) -> Guard:
    world = await build_world(client, app, database, tenant, tmp_path)
    return Guard(client, database, Path(settings.data_dir), world)


def one_hostile(defaults: dict[str, Any], fields: list[str], values: Any = h) -> Any:
    """A valid body with one of ``fields`` replaced by a hostile value."""
    return st.sampled_from(fields).flatmap(
        lambda field: values.map(lambda value: {**defaults, field: value})
    )
