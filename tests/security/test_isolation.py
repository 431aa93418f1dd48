"""Tenant isolation and role matrix over every route of the app.

- Inventory: each route is public (allow-listed with its answer) or organization
  scoped with every path parameter mapped to a real resource, a valid body, and
  (unless a plain read) the permission it needs, equal to the one it declares.
- Another organization's owner, with the real ids of the first: 404 on every
  route, the same answer as for ids that exist nowhere, and no byte of the first
  organization (ids, names, slugs, secrets, outputs) in any answer; the first
  organization's resources are unchanged afterwards.
- No token, or a malformed one: 401 on every non-public route; public routes
  give their allow-listed answer.
- Each role calls every route of its own organization: reads always answer 200
  (and never show a write-only secret); a write answers 403 exactly where the role
  lacks the permission the call needs, and an answer past the check otherwise.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from ocore.core.auth import ROLE_PERMISSIONS, Role
from ocore.core.db import Database
from ocore.git.webhooks import sign_body
from tests.conftest import Tenant
from tests.security.routes import (
    ALLOWED,
    CALLS,
    IN_HANDLER,
    LITERAL_PARAMS,
    MEMBER,
    PERMISSIONS,
    PUBLIC,
    Call,
    Route,
    UncoveredParam,
    app_routes,
    authenticates,
    calls_of,
    declared_permissions,
    fill_path,
    has_body,
    needs_of,
    public_key,
    required_query,
    resource_of,
)
from tests.security.world import World, build_world, reset_environment

# Answers that change between two reads without anything being changed.
VOLATILE_FIELDS = frozenset({"computedAt"})


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    params: dict[str, str]
    body: Any = None

    @property
    def sent(self) -> str:
        """Everything the caller put in the request (an answer may echo it back)."""
        return f"{self.url} {json.dumps(self.params)} {json.dumps(self.body)}"

    def __str__(self) -> str:
        query = f"?{httpx.QueryParams(self.params)}" if self.params else ""
        return f"{self.method} {self.url}{query}"


def request_for(
    route: Route,
    call: Call,
    path_worlds: list[World],
    ref_world: World,
    *,
    random_ids: bool = False,
) -> Request:
    """The call with path ids from ``path_worlds`` (one per parameter, the last repeated)
    and the ids its body and query name from ``ref_world``."""
    values: dict[str, str] = {}
    for index, param in enumerate(route.params):
        world = path_worlds[min(index, len(path_worlds) - 1)]
        resource = call.ids.get(param) or resource_of(route.path, param)
        if resource is None:
            values[param] = LITERAL_PARAMS[param]
        elif random_ids:
            values[param] = str(uuid.uuid4())
        else:
            values[param] = world.ids[resource]
    fresh = uuid.uuid4().hex[:10]
    return Request(
        route.method,
        fill_path(route.path, values),
        call.query(ref_world) if call.query else {},
        call.body(ref_world, fresh) if call.body else None,
    )


async def send(
    client: httpx.AsyncClient, request: Request, headers: dict[str, str] | None
) -> httpx.Response:
    return await client.request(
        request.method,
        request.url,
        params=request.params,
        json=request.body,
        headers=headers or {},
    )


def leaks(response: httpx.Response, world: World, request: Request) -> list[str]:
    """The world's strings in the answer (body or headers) that the caller did not send."""
    seen = response.text + "\n" + "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    return sorted(n for n in world.needles() if n in seen and n not in request.sent)


def problem_code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("code") if isinstance(body, dict) else None


def org_routes(app: FastAPI) -> list[Route]:
    return [r for r in app_routes(app) if public_key(r) not in PUBLIC]


def _stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in VOLATILE_FIELDS}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


async def read_everything(
    client: httpx.AsyncClient, app: FastAPI, world: World
) -> dict[str, tuple[int, Any]]:
    """What the world's owner reads on every read route, by request."""
    seen: dict[str, tuple[int, Any]] = {}
    for route in org_routes(app):
        if not route.is_read:
            continue
        for call in calls_of(route):
            request = request_for(route, call, [world], world)
            response = await send(client, request, world.headers)
            # A read answers 200, unless its call says otherwise (the mail proxy of an
            # environment without a mail catcher answers 404 to its own organization).
            expected = call.allowed if call.allowed != ALLOWED else frozenset({200})
            assert response.status_code in expected, (str(request), response.text[:300])
            try:
                body: Any = _stable(response.json())
            except ValueError:
                body = response.text
            seen[str(request)] = (response.status_code, body)
    return seen


# --- The inventory -------------------------------------------------------------------------


def test_every_route_is_covered(app: FastAPI) -> None:
    """A route that is neither allow-listed nor fully described here fails, by name."""
    routes = app_routes(app)
    problems: list[str] = []
    for route in routes:
        if public_key(route) in PUBLIC:
            if authenticates(route):
                problems.append(f"{route.key}: allow-listed as public but takes a bearer token")
            continue
        if route.dependant is None:
            problems.append(f"{route.key}: neither allow-listed as public nor an API route")
            continue
        if not authenticates(route):
            problems.append(f"{route.key}: not allow-listed as public, yet takes no bearer token")
        for param in route.params:
            try:
                resource_of(route.path, param)
            except UncoveredParam as exc:
                problems.append(str(exc))
        calls = calls_of(route)
        if has_body(route) and not all(c.body for c in calls):
            problems.append(f"{route.key}: takes a body; give a valid one in CALLS")
        if required_query(route) and not all(c.query for c in calls):
            problems.append(f"{route.key}: needs query {required_query(route)}; add it to CALLS")
        declared = declared_permissions(route)
        if route.key not in PERMISSIONS:
            if not route.is_read or declared:
                problems.append(
                    f"{route.key}: not a plain read; add the permission it needs to PERMISSIONS"
                    f" (it declares {sorted(p.value for p in declared) or 'none'})"
                )
            continue
        policy = PERMISSIONS[route.key]
        if policy == IN_HANDLER:
            if declared:
                problems.append(f"{route.key}: now declares {sorted(declared)}; update PERMISSIONS")
            if any(c.needs is None for c in calls):
                problems.append(f"{route.key}: checked in the handler; give each call its needs")
        elif policy is MEMBER:
            if declared:
                problems.append(f"{route.key}: declares {sorted(declared)}, the policy says none")
        elif declared != {policy}:
            problems.append(
                f"{route.key}: declares {sorted(p.value for p in declared) or 'no permission'},"
                f" the policy says '{policy}'"
            )
    present = {r.key for r in routes}
    public_present = {public_key(r) for r in routes}
    problems += [f"PERMISSIONS names a missing route: {k}" for k in PERMISSIONS if k not in present]
    problems += [f"CALLS names a missing route: {k}" for k in CALLS if k not in present]
    problems += [f"PUBLIC names a missing route: {k}" for k in PUBLIC if k not in public_present]
    assert not problems, "\n".join(problems)


# --- Another organization ------------------------------------------------------------------


async def test_another_organization_gets_404_and_nothing_else(
    client: httpx.AsyncClient,
    app: FastAPI,
    database: Database,
    tenant: Tenant,
    other_tenant: Tenant,
    tmp_path: Path,
) -> None:
    a = await build_world(client, app, database, tenant, tmp_path)
    b = await build_world(client, app, database, other_tenant, tmp_path)
    before = await read_everything(client, app, a)
    # The leak detector is live: the owner's own reads show the organization's rows...
    own = json.dumps(list(before.values()))
    shown = {"project", "server", "template", "instance", "environment", "deployment", "job"}
    shown |= {"share_link", "neutralization_item", "neutralization_profile"}
    assert {k for k in shown if a.ids[k] in own} == shown
    assert a.facts["sha_first"] in own
    assert f"inst-{a.tag}" in own
    # ...but never a write-only secret.
    assert not [k for k, v in a.secrets().items() if v in own]

    failures: list[str] = []

    def check(request: Request, response: httpx.Response, expected: int, why: str) -> None:
        if response.status_code != expected:
            failures.append(
                f"{request} ({why}): {response.status_code}, not {expected}: {response.text[:300]}"
            )
        leaked = leaks(response, a, request)
        if leaked:
            failures.append(f"{request} ({why}) shows the other organization's {leaked}")

    calls = 0
    for route in org_routes(app):
        for call in calls_of(route):
            expected = call.stranger or (404 if route.params or call.body_refs else 200)
            request = request_for(route, call, [a], a)
            response = await send(client, request, b.headers)
            check(request, response, expected, f"{call.label or 'call'} with A's ids")
            calls += 1
            if not route.params:
                continue
            # The same answer as for ids that exist nowhere: nothing tells them apart.
            unknown = request_for(route, call, [a], a, random_ids=True)
            answer = await send(client, unknown, b.headers)
            if (answer.status_code, problem_code(answer)) != (
                response.status_code,
                problem_code(response),
            ):
                failures.append(
                    f"{request}: {response.status_code} {problem_code(response)} for A's ids but"
                    f" {answer.status_code} {problem_code(answer)} for unknown ones"
                )
            calls += 1
            # B's own parent with A's child (a deployment, a share link, an item) in the path.
            if len(route.params) > 1:
                mixed = request_for(route, call, [b, a], a)
                check(mixed, await send(client, mixed, b.headers), 404, "own parent, A's child")
                calls += 1
            # B's own resource in the path, A's ids in the body.
            if call.body_refs:
                crossed = request_for(route, call, [b], a)
                check(crossed, await send(client, crossed, b.headers), 404, "A's ids in body")
                calls += 1

    # Webhooks: B's secret never admits a delivery to A's project (and does admit B's).
    for source, headers_for in WEBHOOK_SIGNERS.items():
        body = json.dumps({"zen": "Keep it logically awesome."}).encode()
        admitted = await client.post(
            f"/api/webhooks/{source}/{b.ids['project']}",
            content=body,
            headers=headers_for(body, b.facts["webhook_secret"]),
        )
        assert admitted.status_code == 200, (source, admitted.text)
        crossed_hook = await client.post(
            f"/api/webhooks/{source}/{a.ids['project']}",
            content=body,
            headers=headers_for(body, b.facts["webhook_secret"]),
        )
        if crossed_hook.status_code != 401:
            failures.append(f"{source} webhook to A signed with B's secret: {crossed_hook.text}")
        calls += 2

    assert not failures, f"{len(failures)} of {calls} calls:\n" + "\n".join(failures)
    # Nothing B did changed what A sees.
    after = await read_everything(client, app, a)
    changed = [k for k in before if before[k] != after.get(k)]
    assert not changed, changed


WEBHOOK_SIGNERS = {
    "github": lambda body, secret: {
        "X-Hub-Signature-256": sign_body(body, secret),
        "X-GitHub-Event": "ping",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "Content-Type": "application/json",
    },
    "gitlab": lambda body, secret: {
        "X-Gitlab-Token": secret,
        "X-Gitlab-Event": "Note Hook",
        "Content-Type": "application/json",
    },
    "git": lambda body, secret: {
        "X-Ocore-Signature": sign_body(body, secret),
        "X-Ocore-Event": "ping",
        "X-Ocore-Delivery": str(uuid.uuid4()),
        "Content-Type": "application/json",
    },
}


async def websocket_handshake(app: FastAPI, path: str, headers: dict[str, str]) -> int:
    """The HTTP status a server gives a websocket handshake the app answers like this:
    101 when it accepts, 403 when it closes first (the ASGI spec), else its own response."""
    messages: list[dict[str, Any]] = []
    connected = False

    async def receive() -> dict[str, Any]:
        nonlocal connected
        if not connected:
            connected = True
            return {"type": "websocket.connect"}
        await asyncio.sleep(30)
        return {"type": "websocket.disconnect", "code": 1000}

    async def send(message: MutableMapping[str, Any]) -> None:
        messages.append(dict(message))

    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "scheme": "ws",
        "http_version": "1.1",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"ocore.test")]
        + [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 40000),
        "server": ("ocore.test", 80),
        "subprotocols": [],
        "state": {},
    }
    await asyncio.wait_for(app(scope, receive, send), timeout=10)
    first = messages[0] if messages else {"type": "none"}
    if first["type"] == "websocket.accept":
        return 101
    if first["type"] == "websocket.close":
        return 403
    if first["type"] == "websocket.http.response.start":
        return int(first["status"])
    raise AssertionError(f"unexpected websocket answer: {messages}")


# --- No token --------------------------------------------------------------------------------


async def test_without_a_token(
    client: httpx.AsyncClient, app: FastAPI, database: Database, tenant: Tenant, tmp_path: Path
) -> None:
    world = await build_world(client, app, database, tenant, tmp_path)
    failures: list[str] = []
    calls = 0
    for route in app_routes(app):
        key = public_key(route)
        if key in PUBLIC:
            for public in PUBLIC[key]:
                if route.method == "WEBSOCKET":
                    status = await websocket_handshake(app, route.path, dict(public.headers))
                    if status != public.status:
                        failures.append(f"{key} ({public.why}): {status}, not {public.status}")
                    calls += 1
                    continue
                request = Request(
                    route.method,
                    fill_path(route.path, public.params(world)),
                    {},
                    public.body(world) if public.body else None,
                )
                response = await send(client, request, dict(public.headers))
                if response.status_code != public.status:
                    failures.append(
                        f"{request} ({public.why}): {response.status_code}, not {public.status}"
                    )
                if leaked := leaks(response, world, request):
                    failures.append(f"{request} ({public.why}) shows {leaked}")
                calls += 1
            continue
        for call in calls_of(route):
            request = request_for(route, call, [world], world)
            for headers in (None, {"Authorization": "Bearer not-a-token"}):
                response = await send(client, request, headers)
                if response.status_code != 401:
                    failures.append(
                        f"{request} with {headers}: {response.status_code}, not 401"
                        f": {response.text[:200]}"
                    )
                elif problem_code(response) is None:
                    failures.append(f"{request}: a 401 that is not a problem document")
                if leaked := leaks(response, world, request):
                    failures.append(f"{request} without a valid token shows {leaked}")
                calls += 1
    assert not failures, f"{len(failures)} of {calls} calls:\n" + "\n".join(failures)


# --- Roles -----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", list(Role))
async def test_each_role_gets_exactly_its_permissions(
    client: httpx.AsyncClient,
    app: FastAPI,
    database: Database,
    tenant: Tenant,
    tmp_path: Path,
    role: Role,
) -> None:
    world = await build_world(client, app, database, tenant, tmp_path)
    member = tenant.owner if role is Role.OWNER else await tenant.add_member(role)
    held = ROLE_PERMISSIONS[role]
    routes = {r.key: r for r in org_routes(app)}
    failures: list[str] = []
    calls = 0

    # Reading is every member's right.
    for route in routes.values():
        if route.key in PERMISSIONS:
            continue
        for call in calls_of(route):
            request = request_for(route, call, [world], world)
            response = await send(client, request, member.headers)
            expected = call.allowed if call.allowed != ALLOWED else frozenset({200})
            if response.status_code not in expected:
                failures.append(f"{request} as {role}: {response.status_code}, not {expected}")
            if shown := [k for k, v in world.secrets().items() if v in response.text]:
                failures.append(f"{request} as {role} shows the write-only {shown}")
            calls += 1

    # Everything else, in the policy's order (deletions last).
    for key in PERMISSIONS:
        route = routes[key]
        for call in calls_of(route):
            needs = needs_of(route, call)
            request = request_for(route, call, [world], world)
            response = await send(client, request, member.headers)
            label = f"{request} ({call.label or 'call'}) as {role}, needs {sorted(needs)}"
            if needs <= held:
                if response.status_code not in call.allowed:
                    failures.append(
                        f"{label}: {response.status_code}, not one of {sorted(call.allowed)}"
                        f": {response.text[:300]}"
                    )
            elif response.status_code != 403 or problem_code(response) != "forbidden":
                failures.append(f"{label}: {response.status_code}, not 403: {response.text[:300]}")
            if call.resets_environment:
                await reset_environment(database, world)
            calls += 1
    assert not failures, f"{len(failures)} of {calls} calls:\n" + "\n".join(failures)
