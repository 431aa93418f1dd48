"""Building a pending commit by hand, and listing the commits since a SHA."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from ocore.core.auth import Role
from ocore.core.db import Database
from ocore.git._cache import RepoCache
from ocore.hosts import LocalHost
from ocore.settings import Settings
from tests.conftest import Tenant
from tests.webhooks.conftest import Shop, github_push, make_shop, parse_time


def trigger(shop: Shop, name: str) -> str:
    return f"/api/environments/{shop.environments[name]['id']}/trigger-build"


async def test_trigger_build_deploys_the_pending_commit(
    shop: Shop, client: httpx.AsyncClient
) -> None:
    await shop.environment("dev", behavior="do_nothing")
    first = shop.commit("One", push=None)
    second = shop.commit("Two")
    response = await shop.forge.github("push", github_push("main", shop.base.sha, [first, second]))
    assert response.status_code == 200, response.text
    assert (await shop.get("dev"))["pendingCommitCount"] == 2

    response = await client.post(trigger(shop, "dev"), headers=shop.tenant.headers)
    assert response.status_code == 202, response.text
    deployment = response.json()
    assert deployment["status"] == "queued"
    assert deployment["commitSha"] == second.sha
    assert deployment["commitMessage"] == "Two"
    assert deployment["branch"] == "main"
    assert deployment["triggerType"] == "manual"
    assert [d["id"] for d in await shop.deployments("dev")] == [deployment["id"]]
    [job] = await shop.jobs(deployment["id"])
    assert job["status"] == "queued"
    dev = await shop.get("dev")
    assert (dev["pendingCommitSha"], dev["pendingCommitCount"]) == (None, 0)
    assert dev["lastCommitAuthor"] == "Ada Lovelace"

    # Nothing pending any more.
    again = await client.post(trigger(shop, "dev"), headers=shop.tenant.headers)
    assert again.status_code == 409, again.text
    assert "no pending commit" in again.json()["detail"]
    assert len(await shop.deployments("dev")) == 1


async def test_trigger_build_rules(
    shop: Shop, client: httpx.AsyncClient, other_tenant: Tenant
) -> None:
    await shop.environment("dev", behavior="do_nothing")
    fresh = await client.post(trigger(shop, "dev"), headers=shop.tenant.headers)
    assert fresh.status_code == 409

    commit = shop.commit("Pending")
    await shop.forge.github("push", github_push("main", shop.base.sha, [commit]))
    viewer = await shop.tenant.add_member(Role.VIEWER)
    assert (await client.post(trigger(shop, "dev"), headers=viewer.headers)).status_code == 403
    foreign = await client.post(trigger(shop, "dev"), headers=other_tenant.headers)
    assert foreign.status_code == 404, foreign.text
    assert (await shop.get("dev"))["pendingCommitSha"] == commit.sha
    developer = await shop.tenant.add_member(Role.DEVELOPER)
    assert (await client.post(trigger(shop, "dev"), headers=developer.headers)).status_code == 202


async def test_trigger_build_on_a_busy_instance_keeps_the_commit(
    shop: Shop, client: httpx.AsyncClient
) -> None:
    await shop.environment("dev", behavior="do_nothing")
    first = shop.commit("First")
    await shop.forge.github("push", github_push("main", shop.base.sha, [first]))
    assert (await client.post(trigger(shop, "dev"), headers=shop.tenant.headers)).status_code == 202
    second = shop.commit("Second")
    await shop.forge.github("push", github_push("main", first.sha, [second]))
    busy = await client.post(trigger(shop, "dev"), headers=shop.tenant.headers)
    assert busy.status_code == 409
    dev = await shop.get("dev")
    assert (dev["pendingCommitSha"], dev["pendingCommitCount"]) == (second.sha, 1)


def since_path(shop: Shop) -> str:
    return f"/api/projects/{shop.project_id}/commits-since"


async def test_commits_since_lists_real_commits(shop: Shop, client: httpx.AsyncClient) -> None:
    first = shop.commit("First change", push=None)
    second = shop.commit("Second change", author=("Grace Hopper", "grace@example.com"))
    viewer = await shop.tenant.add_member(Role.VIEWER)
    response = await client.get(
        since_path(shop), params={"since": shop.base.sha, "branch": "main"}, headers=viewer.headers
    )
    assert response.status_code == 200, response.text
    listing = response.json()
    assert listing["totalCount"] == 2
    assert [c["sha"] for c in listing["commits"]] == [second.sha, first.sha]
    newest = listing["commits"][0]
    assert newest == {
        "sha": second.sha,
        "message": "Second change",
        "authorName": "Grace Hopper",
        "authorEmail": "grace@example.com",
        "authorAvatarUrl": None,
        "committedAt": newest["committedAt"],
    }
    assert parse_time(newest["committedAt"]) == parse_time(second.timestamp)

    short = await client.get(
        since_path(shop),
        params={"since": first.sha[:10], "branch": "main", "limit": 5},
        headers=viewer.headers,
    )
    assert short.status_code == 200, short.text
    assert (short.json()["totalCount"], short.json()["commits"][0]["sha"]) == (1, second.sha)
    same = await client.get(
        since_path(shop), params={"since": second.sha, "branch": "main"}, headers=viewer.headers
    )
    assert same.json() == {"commits": [], "totalCount": 0}


async def test_commits_since_unknown_refs_are_422(shop: Shop, client: httpx.AsyncClient) -> None:
    unknown_sha = await client.get(
        since_path(shop),
        params={"since": "deadbeef" * 5, "branch": "main"},
        headers=shop.tenant.headers,
    )
    assert unknown_sha.status_code == 422, unknown_sha.text
    assert unknown_sha.json()["detail"].startswith("since: commit deadbeef")
    unknown_branch = await client.get(
        since_path(shop),
        params={"since": shop.base.sha, "branch": "nope"},
        headers=shop.tenant.headers,
    )
    assert unknown_branch.status_code == 422, unknown_branch.text
    assert unknown_branch.json()["detail"].startswith("branch: branch 'nope' not found")


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"since": "--upload-pack=touch /tmp/pwned", "branch": "main"}, "since"),
        ({"since": "$(id)", "branch": "main"}, "since"),
        ({"since": "HEAD~1", "branch": "main"}, "since"),
        ({"since": "a" * 40, "branch": "--output=/tmp/pwned"}, "branch"),
        ({"since": "a" * 40, "branch": "main..other"}, "branch"),
        ({"branch": "main"}, "query.since"),
        ({"since": "a" * 40}, "query.branch"),
    ],
)
async def test_commits_since_bad_refs_are_422_before_git_runs(
    client: httpx.AsyncClient,
    database: Database,
    tenant: Tenant,
    settings: Settings,
    tmp_path: Path,
    params: dict[str, str],
    needle: str,
) -> None:
    shop = await make_shop(client, database, tenant, tmp_path)
    response = await client.get(since_path(shop), params=params, headers=tenant.headers)
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(needle)
    # git never ran for this repository: its cache was never made.
    cache = RepoCache(LocalHost(), shop.repo.url, cache_root=str(settings.data_dir / "git-cache"))
    assert not Path(cache.path).exists()  # noqa: ASYNC240
    assert not Path("/tmp/pwned").exists()  # noqa: ASYNC240


async def test_commits_since_is_tenant_scoped(
    shop: Shop, client: httpx.AsyncClient, other_tenant: Tenant
) -> None:
    response = await client.get(
        since_path(shop),
        params={"since": shop.base.sha, "branch": "main"},
        headers=other_tenant.headers,
    )
    assert response.status_code == 404, response.text
    anonymous = await client.get(
        since_path(shop), params={"since": shop.base.sha, "branch": "main"}
    )
    assert anonymous.status_code == 401
