"""Hostile values through the API's create and update routes.

Every answer is either a 2xx that stored the value as sent (whitespace around
it trimmed, as for every input string) and in a form the sink downstream takes
as a literal, or a 4xx problem document after which no row was added or
removed, the resource read back unchanged and nothing appeared in ocore's data
directory. Never a 500. Jobs go to a Redis queue no worker reads, so an
accepted value reaches no host here: what would reach one is checked against
the host layer's own validators instead (test_injection_hosts proves those).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy import text

from ocore.git.refs import branch_name_problem, validate_repository_url
from ocore.git.webhooks import sign_body
from ocore.hosts import HostTarget
from ocore.hosts import _command as cmd
from ocore.hosts.database_core import check_database_name
from ocore.hosts.odoo import check_host
from ocore.hosts.runtime.base import check_slug
from ocore.instances.models import Instance
from ocore.settings import Settings
from tests.security.guard import PROBLEM, Guard, h, one_hostile, trimmed
from tests.security.hostile import API, fragments


def unique_name(body: dict[str, Any], default: str) -> dict[str, Any]:
    """Names are unique per organization: the default one gets a suffix, a hostile one stays."""
    if body.get("name") == default:
        return {**body, "name": f"{default}-{uuid.uuid4().hex[:8]}"}
    return body


def inside(path: str, directory: Path) -> bool:
    return path.startswith("/") and Path(path).resolve().is_relative_to(directory.resolve())


def assert_plain_path(path: str) -> None:
    assert cmd.check_path(path) == path
    assert ".." not in path.split("/")
    assert "\n" not in path
    assert "\\" not in path


# --- projects ------------------------------------------------------------------------------

repository_urls = st.one_of(
    h,
    st.builds(
        "{}{}{}".format,
        st.sampled_from(["https://", "ssh://", "git://", "file://", "/", "git@host:", "-"]),
        st.sampled_from(["", "localhost", "evil.example"]),
        fragments,
    ),
)


@API
@given(
    body=one_hostile(
        {
            "name": "shop",
            "repositoryUrl": "https://git.example.com/shop.git",
            "odooVersion": "17.0",
        },
        ["name", "repositoryUrl", "defaultBranch", "testTags", "gitToken"],
    )
    | one_hostile({"name": "shop", "odooVersion": "17.0"}, ["repositoryUrl"], repository_urls)
)
@example(body={"name": "x", "repositoryUrl": "file:///srv/x.git\n", "odooVersion": "17.0"})
async def test_project_fields(guard: Guard, settings: Settings, body: dict[str, Any]) -> None:
    body = unique_name(body, "shop")
    response = await guard.send("POST", "/api/projects", body)
    if response.status_code >= 400:
        return
    project = await guard.get(f"/api/projects/{response.json()['id']}")
    for field in ("name", "repositoryUrl", "defaultBranch", "testTags"):
        if field in body and body[field] is not None:
            assert project[field] == trimmed(body[field]), field
    assert branch_name_problem(project["defaultBranch"]) is None
    url = project["repositoryUrl"]
    assert validate_repository_url(url) == url
    # git opens exactly this path: never ocore's own data (secrets, other tenants' mirrors).
    assert not inside(url.removeprefix("file://"), settings.data_dir)
    assert "gitToken" not in project


async def test_repository_urls_cannot_reach_ocore_data(guard: Guard, settings: Settings) -> None:
    """git decodes %-escapes in file:// URLs and ignores their host: neither may hide a path."""
    data = str(settings.data_dir)
    mirror = f"{data}/git-cache/{uuid.uuid4()}/shop.git"
    escaped = mirror.replace("/git-cache/", "/git-%63ache/")
    for url in (
        f"file://localhost{mirror}",
        f"file://evil{mirror}",
        f"file://{escaped}",
        escaped,
        f"file://{mirror}",
        mirror,
    ):
        body = {"name": f"p-{uuid.uuid4().hex[:6]}", "repositoryUrl": url, "odooVersion": "17.0"}
        response = await guard.send("POST", "/api/projects", body)
        assert response.status_code == 422, (url, response.text)


@API
@given(
    body=one_hostile(
        {}, ["repositoryUrl", "defaultBranch", "testTags", "name"], st.one_of(h, repository_urls)
    )
)
async def test_project_updates(guard: Guard, body: dict[str, Any]) -> None:
    url = f"/api/projects/{guard.world.ids['project']}"
    response = await guard.send("PUT", url, body, read_back=url)
    if response.status_code < 400:
        project = await guard.get(url)
        field, value = next(iter(body.items()))
        assert project[field] == trimmed(value)


# --- environments, deploys ---------------------------------------------------------------


@API
@given(
    body=one_hostile(
        {"branch": "feature", "environmentType": "development"},
        ["branch", "name", "description"],
    )
)
@example(body={"branch": "feature\n", "environmentType": "development"})
@example(body={"branch": "feature.lock/x", "environmentType": "development"})
async def test_environment_fields(guard: Guard, body: dict[str, Any]) -> None:
    project = guard.world.ids["project"]
    body = {**body, "instanceId": guard.world.ids["spare_instance"]}
    response = await guard.send("POST", f"/api/projects/{project}/environments", body)
    if response.status_code >= 400:
        return
    created = response.json()
    assert created["branch"] == trimmed(body["branch"])
    assert branch_name_problem(created["branch"]) is None
    for field in ("name", "description"):
        if field in body:
            assert created[field] == trimmed(body[field])
    # Free the spare instance for the next example (test bookkeeping, not the API under test).
    async with guard.database.engine.begin() as connection:
        await connection.execute(
            text("DELETE FROM environments WHERE id = :id"), {"id": created["id"]}
        )


@API
@given(
    body=st.one_of(
        h.map(lambda v: {"branch": v}),
        h.map(lambda v: {"tag": v}),
        h.map(lambda v: {"commitSha": v}),
        st.sampled_from(["0123456789abcdef0123456789abcdef01234567\n", "ABCDEF0", "abc"]).map(
            lambda v: {"commitSha": v}
        ),
    )
)
@example(body={"branch": "main"})
@example(body={"branch": "--upload-pack=touch /tmp/ocore-pwned"})
@example(body={"tag": "HEAD"})
async def test_deploy_targets(guard: Guard, body: dict[str, Any]) -> None:
    project = guard.world.ids["project"]
    # The world's unfinished jobs hold its instance; without them a valid deploy is accepted.
    async with guard.database.engine.begin() as connection:
        await connection.execute(text("DELETE FROM jobs WHERE status IN ('queued', 'running')"))
    body = {**body, "instanceId": guard.world.ids["instance"]}
    response = await guard.send("POST", f"/api/projects/{project}/deploy", body)
    if response.status_code >= 400:
        return
    deployment = response.json()
    value = body.get("branch") or body.get("tag") or body.get("commitSha")
    assert value is not None
    if "commitSha" in body:
        assert deployment["commitSha"] == value
    else:
        assert deployment["branch"] in (value, None)
        assert branch_name_problem(trimmed(value)) is None


@API
@given(target=h)
@example(target="feature\n")
async def test_clone_branches(guard: Guard, target: str) -> None:
    environment = guard.world.ids["environment"]
    response = await guard.send(
        "POST", f"/api/environments/{environment}/clone", {"targetBranch": target}
    )
    if response.status_code >= 400:
        return
    clone = response.json()
    assert clone["branch"] == trimmed(target)
    assert branch_name_problem(clone["branch"]) is None
    check_slug(clone["instanceSlug"])


# --- servers, instances, templates -------------------------------------------------------

SERVER = {"name": "srv", "isLocal": True}
SERVER_FIELDS = [
    "host", "username", "baseDir", "dbHost", "dbUser", "dbPassword", "nginxSitesDir",
    "nginxListen", "name",
]  # fmt: skip


@API
@given(
    body=one_hostile(SERVER, SERVER_FIELDS)
    | one_hostile(SERVER, ["baseDir", "nginxSitesDir"], h.map(lambda v: "/" + v))
    | one_hostile(SERVER, ["nginxCommand"], st.lists(h, min_size=1, max_size=3))
    | one_hostile(
        {**SERVER, "isLocal": False, "host": "10.0.0.1"},
        ["privateKey", "privateKeyPassphrase"],
    )
)
@example(body={**SERVER, "baseDir": "/opt/ocore\n/x"})
@example(body={**SERVER, "nginxCommand": ["nginx", "-s", "reload;id"]})
async def test_server_fields(guard: Guard, body: dict[str, Any]) -> None:
    body = unique_name(body, "srv")
    response = await guard.send("POST", "/api/servers", body)
    for secret in ("privateKey", "privateKeyPassphrase", "dbPassword"):
        value = body.get(secret)
        if isinstance(value, str) and len(trimmed(value)) >= 6:
            assert trimmed(value) not in response.text, secret
    if response.status_code >= 400:
        return
    server = await guard.get(f"/api/servers/{response.json()['id']}")
    for field in ("baseDir", "nginxSitesDir"):
        assert_plain_path(server[field])
    check_host("dbHost", server["dbHost"])
    HostTarget(key="k", host=server["host"], port=server["port"], username=server["username"])
    for arg in server["nginxCommand"]:
        assert arg == arg.strip()
        assert not any(c in arg for c in " \n;|&$`'\"\\")
    assert all(k not in server for k in ("privateKey", "dbPassword", "privateKeyPassphrase"))


INSTANCE_FIELDS = ["name", "slug", "addonsPath", "branch"]


@API
@given(
    body=one_hostile({"name": "Shop"}, INSTANCE_FIELDS)
    | st.dictionaries(h, h, min_size=1, max_size=3).map(
        lambda env: {"name": "Shop", "envVars": env}
    )
)
@example(body={"name": "Shop", "slug": "shop\n"})
@example(body={"name": "Shop", "envVars": {"SHOP_KEY\n": "x"}})
@example(body={"name": "Shop", "envVars": {"SHOP_KEY": "$(touch pwned)\nX=1"}})
async def test_instance_fields(guard: Guard, body: dict[str, Any]) -> None:
    ids = guard.world.ids
    body = {**unique_name(body, "Shop"), "serverId": ids["server"], "odooVersion": "17.0"}
    if "branch" in body:
        body["projectId"] = ids["project"]
    response = await guard.send("POST", "/api/instances", body)
    if response.status_code >= 400:
        return
    instance = response.json()
    assert instance["slug"] == check_slug(instance["slug"])
    if "slug" in body:
        assert instance["slug"] == trimmed(body["slug"])
    if "envVars" in body:
        expected = {trimmed(k): trimmed(v) for k, v in body["envVars"].items()}
        assert instance["envVars"] == expected
        assert cmd.check_env(instance["envVars"]) == expected
    if instance["addonsPath"]:
        for path in instance["addonsPath"].split(","):
            assert_plain_path(path)
    async with guard.database.sessionmaker() as session:
        row = await session.get(Instance, uuid.UUID(instance["id"]))
        assert row is not None
        assert check_database_name(row.database_name) == row.database_name


@API
@given(
    body=one_hostile({}, ["name", "addonsPath"])
    | st.dictionaries(h, h, min_size=1, max_size=3).map(lambda env: {"envVars": env})
)
async def test_instance_updates(guard: Guard, body: dict[str, Any]) -> None:
    url = f"/api/instances/{guard.world.ids['instance']}"
    response = await guard.send("PUT", url, body, read_back=url)
    if response.status_code >= 400:
        return
    instance = await guard.get(url)
    if "envVars" in body:
        assert cmd.check_env(instance["envVars"]) == instance["envVars"]


@API
@given(modules=st.lists(st.sampled_from(["sale", "base", "web_tour"]) | h, min_size=1, max_size=3))
@example(modules=["sale\n", "base"])
async def test_template_modules(guard: Guard, modules: list[str]) -> None:
    body = {"name": f"t-{uuid.uuid4().hex[:6]}", "odooVersion": "17.0", "modules": modules}
    response = await guard.send("POST", "/api/templates", body)
    if response.status_code < 400:
        for module in response.json()["modules"]:
            assert module.isidentifier(), module
            assert module == module.lower(), module


# --- signed webhooks with hostile refs -----------------------------------------------------

SHA = "0123456789abcdef0123456789abcdef01234567"


@API
@given(
    ref=st.one_of(h.map("refs/heads/{}".format), h),
    after=st.one_of(st.just("f" * 40), st.just("f" * 40 + "\n"), h),
)
@example(ref="refs/heads/main\n", after="f" * 40)
@example(ref="refs/heads/main", after="f" * 40 + "\n")
async def test_signed_webhook_refs(guard: Guard, ref: str, after: str) -> None:
    """Even a delivery signed with the project's secret cannot slip a ref or SHA past the checks."""
    world = guard.world
    body = json.dumps({"ref": ref, "before": SHA, "after": after, "commits": []}).encode()
    headers = {
        "X-Ocore-Signature": sign_body(body, world.facts["webhook_secret"]),
        "X-Ocore-Delivery": uuid.uuid4().hex,
        "content-type": "application/json",
    }
    response = await guard.client.post(
        f"/api/webhooks/git/{world.ids['project']}", content=body, headers=headers
    )
    assert response.status_code < 500, (ref, after, response.text)
    if response.status_code >= 400:
        assert response.headers["content-type"] == PROBLEM
        return
    result = response.json()
    if result["branch"] is not None:
        assert branch_name_problem(result["branch"]) is None, result
    if result["commitSha"] is not None:
        assert result["commitSha"] == after, result
        assert after.isalnum(), result
