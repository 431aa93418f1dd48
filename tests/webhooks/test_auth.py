"""Who may deliver: the project's secret or nothing, and no hint of which project ids exist."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from ocore.core.db import Database
from tests.conftest import Tenant
from tests.webhooks.conftest import Shop, github_push, gitlab_push, hub_signature, make_shop


async def test_bad_missing_or_foreign_secrets_and_unknown_projects_are_one_401(
    shop: Shop, client: httpx.AsyncClient, database: Database, other_tenant: Tenant, tmp_path
) -> None:
    await shop.environment("dev", behavior="do_nothing")
    commit = shop.commit("Sneaky")
    document = github_push("main", shop.base.sha, [commit])
    body = json.dumps(document).encode()
    foreign = await make_shop(client, database, other_tenant, tmp_path / "foreign", "foreign")
    good = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": hub_signature(body, shop.forge.secret),
    }
    url = f"/api/webhooks/github/{shop.project_id}"
    attempts = {
        "wrong secret": (url, {**good, "X-Hub-Signature-256": hub_signature(body, "guess")}),
        "another project's secret": (
            url,
            {**good, "X-Hub-Signature-256": hub_signature(body, foreign.forge.secret)},
        ),
        "missing signature": (url, {k: v for k, v in good.items() if "Signature" not in k}),
        "sha1 signature": (url, {**good, "X-Hub-Signature-256": "sha1=" + "0" * 40}),
        "unknown project": (f"/api/webhooks/github/{uuid.uuid4()}", good),
        "not a project id": ("/api/webhooks/github/not-a-uuid", good),
        "signed for the other project": (f"/api/webhooks/github/{foreign.project_id}", good),
    }
    answers = {}
    for name, (path, headers) in attempts.items():
        response = await client.post(path, content=body, headers=headers)
        assert response.status_code == 401, (name, response.text)
        answers[name] = (response.json(), response.headers["content-type"])
    assert len({json.dumps(a, sort_keys=True) for a in answers.values()}) == 1, answers
    problem, media_type = answers["unknown project"]
    assert media_type == "application/problem+json"
    assert problem["code"] == "invalid_webhook_signature"

    # None of them left a trace; the genuine delivery still works afterwards.
    assert (await shop.get("dev"))["pendingCommitSha"] is None
    response = await client.post(url, content=body, headers=good)
    assert response.status_code == 200, response.text
    assert (await shop.get("dev"))["pendingCommitSha"] == commit.sha


async def test_gitlab_token_and_generic_signature(shop: Shop, client: httpx.AsyncClient) -> None:
    await shop.environment("dev", behavior="do_nothing")
    commit = shop.commit("Via GitLab")
    document = gitlab_push("main", shop.base.sha, [commit])
    wrong = await shop.forge.gitlab("Push Hook", document, token="not-the-token")
    unknown = await client.post(
        f"/api/webhooks/gitlab/{uuid.uuid4()}",
        json=document,
        headers={"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": shop.forge.secret},
    )
    missing = await client.post(
        f"/api/webhooks/gitlab/{shop.project_id}",
        json=document,
        headers={"X-Gitlab-Event": "Push Hook"},
    )
    generic = await shop.forge.git(
        {"ref": "refs/heads/main", "before": shop.base.sha, "after": commit.sha, "commits": []},
        secret="nope",
    )
    assert [r.status_code for r in (wrong, unknown, missing, generic)] == [401] * 4
    assert wrong.json() == unknown.json() == missing.json() == generic.json()
    assert (await shop.get("dev"))["pendingCommitSha"] is None


@pytest.mark.parametrize("source", ["github", "gitlab", "git"])
async def test_oversize_bodies_are_413(shop: Shop, client: httpx.AsyncClient, source: str) -> None:
    """Bounded by the webhook's own 5 MiB limit, before any signature or JSON work."""
    body = b'{"padding": "' + b"x" * (6 * 1024 * 1024) + b'"}'
    response = await client.post(
        f"/api/webhooks/{source}/{shop.project_id}",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413, response.text
    assert response.json()["code"] == "payload_too_large"
