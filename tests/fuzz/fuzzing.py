"""What the schema fuzzing shares between its test and its benchmark (``bench/fuzz.py``).

The app under fuzzing is one of its own (``create_app``), called in-process by
schemathesis' ASGI transport, which runs it (lifespan included) on an event loop
of its own thread. Its jobs go to Redis with no worker, so asynchronous routes
answer 202 and stay queued: nothing reaches a host. It shares the PostgreSQL
database of the run with the seeding, which goes through the API of another app
object (see ``seed``).
"""

from __future__ import annotations

import traceback
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import schemathesis
import structlog
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup

from ocore.app import create_app
from ocore.core.db import Database
from ocore.instances.models import Domain, Instance
from ocore.settings import Settings
from tests.fixtures.gitrepo import GitRepo

BASE_URL = "http://testserver"

# Operations left out, each for a reason:
# - /api/s-proxy/{path}: the public reverse proxy to a shared Odoo, authenticated by a
#   share cookie, not by a token; it is out of the OpenAPI document anyway.
# - /api/share/{token}...: the public share pages (HTML, a login form that redirects),
#   reached with an unguessable token and no Authorization: random tokens only ever
#   give its 404 page; tests/shares covers them.
# - .../events and .../logs (not .../logs/download nor .../logs/summary): Server-Sent
#   Event streams that stay open until the job ends, which a queued job never does.
# - /api/environments/{id}/mail...: the mail catcher's proxy (Mailpit on the instance's
#   host), a pass-through of another program's API.
EXCLUDED_PATH_REGEX = (
    r"^/api/s-proxy/"
    r"|^/api/share/"
    r"|/events$"
    r"|/logs$"
    r"|^/api/environments/[^/]+/mail"
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

# Path parameters that name one of the seeded resources: (path prefix, name) -> kind.
# A prefix of "" matches every path.
_PARAMETER_KINDS: list[tuple[str, str, str]] = [
    ("/api/instances/", "id", "instances"),
    ("/api/environments/", "id", "environments"),
    ("", "env_id", "environments"),
    ("", "project_id", "projects"),
    ("", "deployment_id", "deployments"),
    ("", "job_id", "jobs"),
    ("", "template_id", "templates"),
    ("", "server_id", "servers"),
    ("", "link_id", "shares"),
]
# Body fields that name one of them, in every operation.
_BODY_FIELD_KINDS = {
    "serverId": "servers",
    "projectId": "projects",
    "instanceId": "instances",
    "templateId": "templates",
}


@dataclass
class Seeded:
    """IDs of the real rows of the fuzzing organization, by kind."""

    ids: dict[str, list[str]] = field(default_factory=dict)

    def add(self, kind: str, value: Any) -> None:
        self.ids.setdefault(kind, []).append(str(value))

    def kind_of(self, path: str, name: str) -> str | None:
        for prefix, parameter, kind in _PARAMETER_KINDS:
            if parameter == name and path.startswith(prefix) and self.ids.get(kind):
                return kind
        return None


def make_repository(workdir: Path) -> str:
    """A git repository with one commit on main (an Odoo module); returns its URL."""
    repo = GitRepo.create(workdir)
    manifest = {"name": "Shop custom", "version": "17.0.1.0.0", "depends": ["base"]}
    repo.commit({"shop_custom/__manifest__.py": repr(manifest) + "\n"}, "first")
    return repo.url


async def _post(client: httpx.AsyncClient, path: str, headers: dict[str, str], **body: Any) -> Any:
    response = await client.post(path, json=body, headers=headers)
    assert response.status_code in (200, 201, 202), (path, response.status_code, response.text)
    return response.json()


async def seed(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    database: Database,
    organization_id: uuid.UUID,
    repository_url: str,
) -> Seeded:
    """Real resources of the owner's organization, made through the API where it can.

    A local server, a project on a real git repository (``make_repository``, so
    deploys resolve a commit), a template, an instance being created (its job
    queued), a running instance (a row: nothing runs it) linked to the project as
    its production environment, a share link of that environment and a deployment
    to it (queued), and the jobs all this queued.
    """
    seeded = Seeded()
    server = await _post(client, "/api/servers", headers, name="local", isLocal=True)
    seeded.add("servers", server["id"])
    project = await _post(
        client,
        "/api/projects",
        headers,
        name="shop",
        repositoryUrl=repository_url,
        odooVersion="17.0",
    )
    seeded.add("projects", project["id"])
    template = await _post(client, "/api/templates", headers, name="small", odooVersion="17.0")
    seeded.add("templates", template["id"])
    creating = await _post(
        client,
        "/api/instances",
        headers,
        name="Shop staging",
        serverId=server["id"],
        projectId=project["id"],
        environmentType="staging",
        branch="main",
    )
    seeded.add("instances", creating["id"])

    async with database.sessionmaker() as session:
        running = Instance(
            organization_id=organization_id,
            server_id=uuid.UUID(server["id"]),
            project_id=uuid.UUID(project["id"]),
            name="Shop",
            slug="shop-prod",
            status="running",
            odoo_version="17.0",
            database_name="shop_prod",
        )
        session.add(running)
        await session.flush()
        session.add(
            Domain(
                organization_id=organization_id,
                instance_id=running.id,
                domain=f"shop-{uuid.uuid4().hex[:6]}.example.com",
                is_primary=True,
            )
        )
        await session.commit()
        running_id = str(running.id)
    seeded.add("instances", running_id)

    environment = await _post(
        client,
        f"/api/projects/{project['id']}/environments",
        headers,
        instanceId=running_id,
        environmentType="production",
        branch="main",
    )
    seeded.add("environments", environment["id"])
    # The staging instance is linked by its creation; its environment is listed.
    listing = await client.get("/api/environments", headers=headers)
    for item in listing.json()["environments"]:
        if item["id"] != environment["id"]:
            seeded.add("environments", item["id"])
    share = await _post(client, f"/api/environments/{environment['id']}/share", headers)
    seeded.add("shares", share["id"])
    deployment = await _post(
        client,
        f"/api/projects/{project['id']}/deploy",
        headers,
        instanceId=running_id,
        branch="main",
    )
    seeded.add("deployments", deployment["id"])
    jobs = await client.get("/api/jobs", headers=headers)
    for job in jobs.json()["jobs"]:
        seeded.add("jobs", job["id"])
    return seeded


def document() -> dict[str, Any]:
    """The app's OpenAPI document (it does not depend on the settings; no connection is made).

    Built at import (the tests are parametrized with its operations), so the logging
    set-up that ``create_app`` makes is undone: collecting this must change nothing.
    """
    configured = structlog.is_configured()
    saved = structlog.get_config()
    try:
        app = create_app(Settings(_env_file=None, database_url="postgresql+asyncpg://doc/only"))
        return app.openapi()
    finally:
        if configured:
            structlog.configure(**saved)
        else:
            structlog.reset_defaults()


def load_schema(seeded: Seeded) -> schemathesis.BaseSchema:
    """The app's own OpenAPI document, less the excluded operations, with real IDs mixed in.

    ``seeded`` is read when a case is drawn, so it can be refilled between tests.
    """
    schema = schemathesis.openapi.from_dict(document()).exclude(path_regex=EXCLUDED_PATH_REGEX)

    # Half the examples name rows that exist (what else they hold stays as drawn).
    @schema.hook("flatmap_path_parameters")
    def real_path_ids(context: schemathesis.HookContext, drawn: Any) -> st.SearchStrategy:
        operation = context.operation
        if operation is None or not isinstance(drawn, dict):
            return st.just(drawn)
        kinds = {name: seeded.kind_of(operation.path, name) for name in drawn}
        return _with_real_ids(drawn, {name: kind for name, kind in kinds.items() if kind})

    @schema.hook("flatmap_body")
    def real_body_ids(context: schemathesis.HookContext, drawn: Any) -> st.SearchStrategy:
        if not isinstance(drawn, dict):
            return st.just(drawn)
        kinds = {name: _BODY_FIELD_KINDS.get(name) for name in drawn}
        return _with_real_ids(drawn, {name: kind for name, kind in kinds.items() if kind})

    def _with_real_ids(drawn: dict[str, Any], kinds: dict[str, str]) -> st.SearchStrategy:
        if not kinds:
            return st.just(drawn)

        def substitute(picks: dict[str, int]) -> dict[str, Any]:
            values = dict(drawn)
            for name, pick in picks.items():
                ids = seeded.ids.get(kinds[name])
                if ids:
                    values[name] = ids[pick % len(ids)]
            return values

        picks = st.fixed_dictionaries({name: st.integers(0, 7) for name in kinds})
        return st.one_of(picks.map(substitute), st.just(drawn))

    return schema


@dataclass
class Tally:
    """Over a run: cases sent (by operation), responses by status, each check's verdicts."""

    cases: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    successes: Counter[str] = field(default_factory=Counter)
    passed: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    # The first failure report of each (operation, check).
    failures: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "cases": dict(self.cases),
            "successes": dict(self.successes),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "checks": {
                check.__name__: {
                    "passed": self.passed[check.__name__],
                    "failed": self.failed[check.__name__],
                }
                for check in CHECKS
            },
            "failures": self.failures,
        }


def call_and_check(
    case: schemathesis.Case,
    app: Any,
    headers: dict[str, str],
    tally: Tally,
    *,
    raise_failures: bool = True,
) -> None:
    """Send the case to the app as the owner and run every check on the response.

    Each check runs on its own so that each is counted; the failures of all of
    them are raised together (unless ``raise_failures`` is off: a long run counts
    them and goes on).
    """
    tally.cases[case.operation.label] += 1
    try:
        response = case.call(base_url=BASE_URL, headers=headers, app=app)
    except Exception as exc:
        # An exception out of the app: Starlette re-raises it after answering 500.
        tally.statuses[500] += 1
        tally.failed[not_a_server_error.__name__] += 1
        tally.failures.setdefault(
            f"{case.operation.label} [{not_a_server_error.__name__}]",
            "".join(traceback.format_exception_only(exc)),
        )
        if raise_failures:
            raise
        return
    tally.statuses[response.status_code] += 1
    if response.status_code < 400:
        tally.successes[case.operation.label] += 1
    failed: list[FailureGroup] = []
    for check in CHECKS:
        name = check.__name__
        try:
            case.validate_response(
                response, checks=[check], headers=headers, transport_kwargs={"app": app}
            )
        except FailureGroup as group:
            tally.failed[name] += 1
            tally.failures.setdefault(f"{case.operation.label} [{name}]", str(group))
            failed.append(group)
        else:
            tally.passed[name] += 1
    if failed and raise_failures:
        raise FailureGroup(
            [failure for group in failed for failure in group.exceptions],
            "\n".join(str(group) for group in failed),
        )
