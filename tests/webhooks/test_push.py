"""Pushes through each forge's webhook, and what each commit behaviour does with them."""

from __future__ import annotations

import asyncio
from typing import Any

from ocore.core.db import Database
from tests.webhooks.conftest import (
    Commit,
    Shop,
    generic_push,
    github_push,
    gitlab_push,
    parse_time,
)


async def test_do_nothing_records_the_push_as_pending(shop: Shop) -> None:
    await shop.environment("dev", behavior="do_nothing")
    await shop.environment("other", branch="feature/other", behavior="do_nothing")
    first = shop.commit("Fix the invoice report", push=None)
    second = shop.commit("Add a sale report", author=("Grace Hopper", "grace@example.com"))

    response = await shop.forge.github("push", github_push("main", shop.base.sha, [first, second]))
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["event"] == "push"
    assert result["status"] == "processed"
    assert result["branch"] == "main"
    assert result["commitSha"] == second.sha
    assert [(e["name"], e["action"]) for e in result["environments"]] == [
        ("dev", "pending_recorded")
    ]

    dev = await shop.get("dev")
    assert dev["pendingCommitSha"] == second.sha
    assert dev["pendingCommitCount"] == 2
    assert dev["lastCommitAuthor"] == "Grace Hopper"
    assert parse_time(dev["lastCommitAt"]) == parse_time(second.timestamp)
    assert await shop.deployments("dev") == []

    # A later push adds its commits to the pending count; other branches are untouched.
    third = shop.commit("Tune the report")
    response = await shop.forge.github("push", github_push("main", second.sha, [third]))
    assert response.status_code == 200, response.text
    dev = await shop.get("dev")
    assert (dev["pendingCommitSha"], dev["pendingCommitCount"]) == (third.sha, 3)
    assert dev["lastCommitAuthor"] == "Ada Lovelace"
    other = await shop.get("other")
    assert (other["pendingCommitSha"], other["pendingCommitCount"]) == (None, 0)
    assert other["lastCommitAt"] is None


async def test_create_new_build_queues_a_webhook_deployment(shop: Shop) -> None:
    await shop.environment("staging", environment_type="staging")
    commit = shop.commit("Ship the new price list")

    response = await shop.forge.gitlab("Push Hook", gitlab_push("main", shop.base.sha, [commit]))
    assert response.status_code == 202, response.text
    [action] = response.json()["environments"]
    assert action["action"] == "build_queued"
    assert action["supersededDeploymentIds"] == []

    [deployment] = await shop.deployments("staging")
    assert deployment["id"] == action["deploymentId"]
    assert deployment["status"] == "queued"
    assert deployment["triggerType"] == "webhook"
    assert deployment["commitSha"] == commit.sha
    assert deployment["commitMessage"] == "Ship the new price list"
    assert deployment["commitAuthor"] == "Ada Lovelace"
    assert deployment["branch"] == "main"
    [job] = await shop.jobs(deployment["id"])
    assert (job["kind"], job["status"]) == ("deployment.build", "queued")

    staging = await shop.get("staging")
    assert (staging["pendingCommitSha"], staging["pendingCommitCount"]) == (None, 0)
    assert staging["lastCommitAuthor"] == "Ada Lovelace"
    assert parse_time(staging["lastCommitAt"]) == parse_time(commit.timestamp)


async def test_update_previous_build_supersedes_the_queued_one(shop: Shop) -> None:
    await shop.environment("review", behavior="update_previous_build")
    first = shop.commit("First try")
    response = await shop.forge.git(generic_push("main", shop.base.sha, [first]))
    assert response.status_code == 202, response.text
    earlier = response.json()["environments"][0]["deploymentId"]

    second = shop.commit("Second try")
    response = await shop.forge.git(generic_push("main", first.sha, [second]))
    assert response.status_code == 202, response.text
    [action] = response.json()["environments"]
    assert action["action"] == "build_queued"
    assert action["supersededDeploymentIds"] == [earlier]

    rows = {d["id"]: d for d in await shop.deployments("review")}
    assert set(rows) == {earlier, action["deploymentId"]}
    assert rows[earlier]["status"] == "cancelled"
    assert "Superseded by deployment" in rows[earlier]["errorMessage"]
    assert rows[action["deploymentId"]]["status"] == "queued"
    assert rows[action["deploymentId"]]["commitSha"] == second.sha
    [old_job] = await shop.jobs(earlier)
    assert old_job["status"] == "cancelled"
    [new_job] = await shop.jobs(action["deploymentId"])
    assert new_job["status"] == "queued"
    review = await shop.get("review")
    assert (review["pendingCommitSha"], review["pendingCommitCount"]) == (None, 0)


async def test_a_busy_instance_keeps_the_commit_pending(shop: Shop) -> None:
    await shop.environment("staging", environment_type="staging")
    first = shop.commit("First")
    response = await shop.forge.github("push", github_push("main", shop.base.sha, [first]))
    assert response.status_code == 202, response.text

    second = shop.commit("Second")
    response = await shop.forge.github("push", github_push("main", first.sha, [second]))
    # The forge hears success: retrying would not make the instance free.
    assert response.status_code == 200, response.text
    [action] = response.json()["environments"]
    assert action["action"] == "kept_pending"
    assert "busy" in action["reason"]
    [deployment] = await shop.deployments("staging")
    assert (deployment["commitSha"], deployment["status"]) == (first.sha, "queued")
    staging = await shop.get("staging")
    assert (staging["pendingCommitSha"], staging["pendingCommitCount"]) == (second.sha, 1)


async def test_an_instance_that_cannot_deploy_keeps_the_commit_pending(shop: Shop) -> None:
    await shop.environment("broken", instance_status="error")
    commit = shop.commit("Anything")
    response = await shop.forge.github("push", github_push("main", shop.base.sha, [commit]))
    assert response.status_code == 200, response.text
    [action] = response.json()["environments"]
    assert action["action"] == "kept_pending"
    assert "is error" in action["reason"]
    assert await shop.deployments("broken") == []
    assert (await shop.get("broken"))["pendingCommitSha"] == commit.sha


async def test_replayed_delivery_changes_nothing(shop: Shop, database: Database) -> None:
    await shop.environment("dev", behavior="do_nothing")
    await shop.environment("staging", environment_type="staging")
    commit = shop.commit("Once only")
    document = github_push("main", shop.base.sha, [commit])
    delivery = "72d3162e-cc78-11e3-81ab-4c9367dc0958"

    first = await shop.forge.github("push", document, delivery=delivery)
    assert first.status_code == 202, first.text
    before: dict[str, Any] = {name: await shop.get(name) for name in ("dev", "staging")}

    again = await shop.forge.github("push", document, delivery=delivery)
    assert again.status_code == 200, again.text
    replay = again.json()
    assert replay["status"] == "duplicate"
    assert delivery in replay["note"]
    assert "nothing was changed" in replay["note"]
    # The note carries what the first delivery did.
    assert [e["action"] for e in replay["environments"]] == ["pending_recorded", "build_queued"]
    assert {name: await shop.get(name) for name in ("dev", "staging")} == before
    assert len(await shop.deployments("staging")) == 1

    # The same body without a delivery id is recognized by its digest.
    headerless = await shop.forge.git(generic_push("main", commit.sha, [commit]), delivery=" ")
    assert headerless.status_code == 200
    assert (await shop.forge.git(generic_push("main", commit.sha, [commit]), delivery=" ")).json()[
        "status"
    ] == "duplicate"


async def test_the_same_delivery_id_counts_per_project(
    shop: Shop, client, database: Database, tenant, tmp_path
) -> None:
    from tests.webhooks.conftest import make_shop

    other = await make_shop(client, database, tenant, tmp_path / "other", name="other")
    await shop.environment("dev", behavior="do_nothing")
    await other.environment("dev", behavior="do_nothing")
    delivery = "13792a34-cac6-4fda-95a8-c58e00a3954e"
    mine = shop.commit("Mine")
    theirs = other.commit("Theirs")
    assert (
        await shop.forge.github(
            "push", github_push("main", shop.base.sha, [mine]), delivery=delivery
        )
    ).json()["status"] == "processed"
    assert (
        await other.forge.github(
            "push", github_push("main", other.base.sha, [theirs]), delivery=delivery
        )
    ).json()["status"] == "processed"
    assert (await other.get("dev"))["pendingCommitSha"] == theirs.sha


async def test_events_without_an_action_are_ignored(shop: Shop) -> None:
    await shop.environment("dev")
    ping = await shop.forge.github("ping", {"zen": "Keep it logically awesome.", "hook_id": 1})
    assert ping.status_code == 200, ping.text
    assert (ping.json()["event"], ping.json()["status"]) == ("ignored", "ignored")
    commit = shop.commit("Tagged", push=None)
    shop.repo.tag("v1.0")
    tag = github_push("main", shop.base.sha, [commit])
    tag["ref"] = "refs/tags/v1.0"
    response = await shop.forge.github("push", tag)
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    assert "not to a branch" in response.json()["note"]
    assert await shop.deployments("dev") == []
    nobody = shop.commit("Nobody follows this", push="feature/lonely")
    response = await shop.forge.github("push", github_push("feature/lonely", "0" * 40, [nobody]))
    assert response.status_code == 200
    assert response.json()["environments"] == []
    assert "No environment" in response.json()["note"]


async def test_a_malformed_but_authentic_payload_is_422(shop: Shop) -> None:
    response = await shop.forge.github("push", {"ref": "refs/heads/main", "before": "x"})
    assert response.status_code == 422, response.text
    assert "after" in response.json()["detail"] or "before" in response.json()["detail"]


async def test_concurrent_deliveries(shop: Shop) -> None:
    """The same delivery twice at once is handled once; distinct pushes all count."""
    await shop.environment("dev", behavior="do_nothing")
    await shop.environment("staging", environment_type="staging")
    commit = shop.commit("Raced")
    document = github_push("main", shop.base.sha, [commit])
    delivery = "5a4b3c2d-0000-4000-8000-000000000001"
    responses = await asyncio.gather(
        *(shop.forge.github("push", document, delivery=delivery) for _ in range(2))
    )
    assert sorted(r.json()["status"] for r in responses) == ["duplicate", "processed"]
    assert len(await shop.deployments("staging")) == 1
    assert (await shop.get("dev"))["pendingCommitCount"] == 1

    commits = [shop.commit(f"Parallel {n}", push=None) for n in range(4)]
    shop.repo.push("main")
    pushes = [github_push("main", commit.sha, [c]) for c in commits]
    responses = await asyncio.gather(*(shop.forge.github("push", d) for d in pushes))
    assert all(r.status_code in (200, 202) for r in responses)
    assert (await shop.get("dev"))["pendingCommitCount"] == 5


async def test_unreachable_repository_builds_from_the_payload(shop: Shop) -> None:
    await shop.environment("staging", environment_type="staging")
    commit = shop.commit("Pushed just before the outage")
    shop.repo.origin.rename(shop.repo.origin.with_name("moved.git"))
    response = await shop.forge.github("push", github_push("main", shop.base.sha, [commit]))
    assert response.status_code == 202, response.text
    [deployment] = await shop.deployments("staging")
    assert deployment["commitSha"] == commit.sha
    assert deployment["commitMessage"] == "Pushed just before the outage"
    assert deployment["commitAuthor"] == "Ada Lovelace"


async def test_a_commit_the_repository_lacks_stays_pending(shop: Shop) -> None:
    await shop.environment("staging", environment_type="staging")
    commit = shop.commit("Real")
    ghost = Commit("f" * 40, "Never pushed", "Eve", "eve@example.com", commit.timestamp)
    response = await shop.forge.github("push", github_push("main", commit.sha, [ghost]))
    assert response.status_code == 200, response.text
    [action] = response.json()["environments"]
    assert action["action"] == "kept_pending"
    assert "could not be resolved" in action["reason"]
    assert await shop.deployments("staging") == []
    staging = await shop.get("staging")
    assert (staging["pendingCommitSha"], staging["lastCommitAuthor"]) == (ghost.sha, "Eve")
