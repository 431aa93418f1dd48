"""Merged pull requests and deleted branches: opted-in environments go, production never."""

from __future__ import annotations

import uuid

from sqlalchemy import update

from ocore.core.db import Database, utcnow
from ocore.jobs.models import Job
from tests.fixtures import webhook_payloads as p
from tests.webhooks.conftest import Shop, github_push, gitlab_push


async def _feature_environments(shop: Shop, branch: str) -> None:
    await shop.environment("preview", branch=branch, auto_destroy=True)
    await shop.environment("keeper", branch=branch, auto_destroy=False)
    await shop.environment(
        "production", branch=branch, environment_type="production", auto_destroy=True
    )
    await shop.environment("mainline", branch="main", auto_destroy=True)


async def test_merged_pull_request_destroys_its_branch_environments(shop: Shop) -> None:
    await _feature_environments(shop, "feature/x")
    commit = shop.commit("Feature work", push="feature/x")
    document = p.github_pull_request("closed", merged=True)
    document["pull_request"]["head"]["sha"] = commit.sha
    document["pull_request"]["merge_commit_sha"] = commit.sha

    response = await shop.forge.github("pull_request", document)
    assert response.status_code == 202, response.text
    result = response.json()
    assert (result["event"], result["branch"]) == ("pull_request_merged", "feature/x")
    actions = {e["name"]: (e["action"], e["reason"]) for e in result["environments"]}
    assert actions == {
        "preview": ("marked_for_deletion", None),
        "keeper": ("kept", "autoDestroyOnMerge is off"),
        "production": ("kept", "a production environment is never destroyed"),
    }
    preview = await shop.get("preview")
    assert preview["status"] == "deleting"
    assert "pull request merged into main" in preview["statusMessage"]
    [job] = await shop.jobs(preview["id"])
    assert (job["kind"], job["status"]) == ("environment.delete", "queued")
    for name in ("keeper", "production", "mainline"):
        assert (await shop.get(name))["status"] == "ready", name

    # A redelivery, or the branch deletion that follows, finds nothing more to do.
    again = await shop.forge.github("delete", p.github_delete("feature/x"))
    assert again.status_code == 200, again.text
    assert {e["name"] for e in again.json()["environments"]} == {"keeper", "production"}


async def test_unmerged_pull_request_is_ignored(shop: Shop) -> None:
    await shop.environment("preview", branch="feature/x", auto_destroy=True)
    response = await shop.forge.github(
        "pull_request", p.github_pull_request("closed", merged=False)
    )
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    assert (await shop.get("preview"))["status"] == "ready"


async def test_deleted_branch_destroys_through_each_forge(shop: Shop) -> None:
    await shop.environment("gh", branch="feature/gh", auto_destroy=True)
    await shop.environment("gl", branch="feature/gl", auto_destroy=True)
    await shop.environment("git", branch="feature/git", auto_destroy=True)
    await shop.environment(
        "production", branch="feature/git", environment_type="production", auto_destroy=True
    )
    commit = shop.commit("Work", push=None)
    for branch in ("feature/gh", "feature/gl", "feature/git"):
        shop.repo.push(branch)
    for branch in ("feature/gh", "feature/gl", "feature/git"):
        shop.repo.delete_branch(branch)

    gh = await shop.forge.github("delete", p.github_delete("feature/gh"))
    gl_document = gitlab_push("feature/gl", commit.sha, [commit])
    gl_document.update(after=p.NULL, checkout_sha=None, commits=[], total_commits_count=0)
    gl = await shop.forge.gitlab("Push Hook", gl_document)
    git_document = {
        "ref": "refs/heads/feature/git",
        "before": commit.sha,
        "after": p.NULL,
        "commits": [],
    }
    generic = await shop.forge.git(git_document)
    for response in (gh, gl, generic):
        assert response.status_code == 202, response.text
        assert response.json()["event"] == "branch_deleted"
    for name in ("gh", "gl", "git"):
        environment = await shop.get(name)
        assert environment["status"] == "deleting", name
        assert [j["kind"] for j in await shop.jobs(environment["id"])] == ["environment.delete"]
    assert (await shop.get("production"))["status"] == "ready"

    # A GitHub push event for the same deletion (deleted: true) changes nothing more.
    push = github_push("feature/gh", commit.sha, [commit])
    push.update(after=p.NULL, deleted=True, commits=[], head_commit=None)
    late = await shop.forge.github("push", push)
    assert late.status_code == 200
    assert late.json()["environments"] == []


async def test_pushes_skip_environments_being_deleted(shop: Shop) -> None:
    await shop.environment("preview", branch="feature/x", auto_destroy=True)
    shop.commit("Work", push="feature/x")
    assert (await shop.forge.github("delete", p.github_delete("feature/x"))).status_code == 202
    commit = shop.commit("Late push", push="feature/x")
    response = await shop.forge.github("push", github_push("feature/x", shop.base.sha, [commit]))
    assert response.status_code == 200
    assert response.json()["environments"] == []
    assert await shop.deployments("preview") == []


async def test_deletion_cancels_queued_builds_and_waits_for_running_jobs(
    shop: Shop, database: Database
) -> None:
    await shop.environment("queued", branch="feature/q", auto_destroy=True)
    await shop.environment("running", branch="feature/r", auto_destroy=True)
    for branch in ("feature/q", "feature/r"):
        commit = shop.commit(f"Work on {branch}", push=branch)
        response = await shop.forge.github("push", github_push(branch, shop.base.sha, [commit]))
        assert response.status_code == 202, response.text
    [queued_build] = await shop.deployments("queued")
    [running_build] = await shop.deployments("running")
    # A worker has taken the second build (the row a worker's claim writes).
    async with database.sessionmaker() as session:
        await session.execute(
            update(Job)
            .where(Job.target_id == uuid.UUID(running_build["id"]))
            .values(status="running", attempt=1, started_at=utcnow())
        )
        await session.commit()

    response = await shop.forge.github("delete", p.github_delete("feature/q"))
    assert response.status_code == 202, response.text
    [action] = response.json()["environments"]
    assert action["action"] == "marked_for_deletion"
    assert action["supersededDeploymentIds"] == [queued_build["id"]]
    [build] = await shop.deployments("queued")
    assert build["status"] == "cancelled"
    assert "is being deleted" in build["errorMessage"]
    assert (await shop.get("queued"))["status"] == "deleting"

    response = await shop.forge.github("delete", p.github_delete("feature/r"))
    assert response.status_code == 200, response.text
    [action] = response.json()["environments"]
    assert action["action"] == "kept"
    assert "busy" in action["reason"]
    running = await shop.get("running")
    assert running["status"] == "ready"
    assert [j["kind"] for j in await shop.jobs(running["id"])] == []
    [build] = await shop.deployments("running")
    assert build["status"] == "queued"  # the deployment row is the worker's to move on
