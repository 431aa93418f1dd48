"""A project on a real git repository, environments on it, and a forge that sends signed pushes.

Payloads start from the documented shapes in ``tests/fixtures/webhook_payloads.py``
and carry the repository's real commits (SHA, message, author, time); they are
signed here with hmac directly, with the secret project creation returned.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from ocore.core.db import Database
from ocore.environments.models import Environment
from tests.conftest import Tenant
from tests.factories import make_instance
from tests.fixtures import webhook_payloads as p
from tests.fixtures.gitrepo import GitRepo, git


@dataclass(frozen=True)
class Commit:
    sha: str
    message: str
    author_name: str
    author_email: str
    timestamp: str  # ISO 8601 with the author's offset, as forges send it


def commit_of(repo: GitRepo, sha: str) -> Commit:
    out = git("show", "-s", "--format=%H%x1f%an%x1f%ae%x1f%aI%x1f%B", sha, cwd=repo.work)
    full, name, email, stamp, message = out.split("\x1f", 4)
    return Commit(full, message.rstrip("\n"), name, email, stamp)


def _github_commit(c: Commit) -> dict[str, Any]:
    return {
        "id": c.sha,
        "tree_id": "f9d2a07e9488b91af2641b26b9407fe22a451433",
        "distinct": True,
        "message": c.message,
        "timestamp": c.timestamp,
        "url": f"https://github.com/acme/addons/commit/{c.sha}",
        "author": {"name": c.author_name, "email": c.author_email, "username": "ada-l"},
        "committer": {"name": "GitHub", "email": "noreply@github.com", "username": "web-flow"},
        "added": [],
        "removed": [],
        "modified": ["shop_custom/__manifest__.py"],
    }


def github_push(branch: str, before: str, commits: list[Commit]) -> dict[str, Any]:
    document = p.github_push(f"refs/heads/{branch}", before=before, after=commits[-1].sha)
    document["commits"] = [_github_commit(c) for c in commits]
    document["head_commit"] = document["commits"][-1]
    return document


def gitlab_push(branch: str, before: str, commits: list[Commit]) -> dict[str, Any]:
    document = p.gitlab_push(f"refs/heads/{branch}", before=before, after=commits[-1].sha)
    document["checkout_sha"] = commits[-1].sha
    document["total_commits_count"] = len(commits)
    document["commits"] = [
        {
            "id": c.sha,
            "message": c.message + "\n",
            "title": c.message.split("\n", 1)[0],
            "timestamp": c.timestamp,
            "url": f"https://gitlab.example.com/acme/addons/commit/{c.sha}",
            "author": {"name": c.author_name, "email": c.author_email},
            "added": [],
            "modified": ["shop_custom/__manifest__.py"],
            "removed": [],
        }
        for c in commits
    ]
    return document


def generic_push(branch: str, before: str, commits: list[Commit]) -> dict[str, Any]:
    """What hooks/post-receive.sh sends for a push."""
    document = p.generic_push(f"refs/heads/{branch}", before=before, after=commits[-1].sha)
    document["commits"] = [
        {
            "id": c.sha,
            "message": c.message,
            "timestamp": c.timestamp,
            "author": {"name": c.author_name, "email": c.author_email},
        }
        for c in commits
    ]
    return document


def hub_signature(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class Forge:
    """Sends deliveries the way GitHub, GitLab and the post-receive hook do."""

    client: httpx.AsyncClient
    project_id: str
    secret: str

    async def github(
        self,
        event: str,
        document: dict[str, Any],
        *,
        delivery: str | None = None,
        secret: str | None = None,
        project_id: str | None = None,
    ) -> httpx.Response:
        body = json.dumps(document).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/044aadd",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
            "X-Hub-Signature-256": hub_signature(body, secret or self.secret),
        }
        return await self.client.post(
            f"/api/webhooks/github/{project_id or self.project_id}", content=body, headers=headers
        )

    async def gitlab(
        self,
        event: str,
        document: dict[str, Any],
        *,
        delivery: str | None = None,
        token: str | None = None,
    ) -> httpx.Response:
        headers = {
            "Content-Type": "application/json",
            "X-Gitlab-Event": event,
            "X-Gitlab-Token": token or self.secret,
            "X-Gitlab-Event-UUID": delivery or str(uuid.uuid4()),
        }
        return await self.client.post(
            f"/api/webhooks/gitlab/{self.project_id}",
            content=json.dumps(document).encode(),
            headers=headers,
        )

    async def git(
        self, document: dict[str, Any], *, delivery: str | None = None, secret: str | None = None
    ) -> httpx.Response:
        body = json.dumps(document).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Ocore-Event": "push",
            "X-Ocore-Delivery": delivery or str(uuid.uuid4()),
            "X-Ocore-Signature": hub_signature(body, secret or self.secret),
        }
        return await self.client.post(
            f"/api/webhooks/git/{self.project_id}", content=body, headers=headers
        )


@dataclass
class Shop:
    """A project on ``repo`` (its first commit on main is ``base``) and helpers around it."""

    client: httpx.AsyncClient
    database: Database
    tenant: Tenant
    repo: GitRepo
    project: dict[str, Any]
    base: Commit
    forge: Forge
    environments: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def project_id(self) -> str:
        return str(self.project["id"])

    def commit(
        self, message: str, *, push: str | None = "main", author: tuple[str, str] | None = None
    ) -> Commit:
        """A real commit (pushed to ``push`` unless None), with the details a forge reports."""
        content: dict[str, str | None] = {"shop_custom/notes.txt": f"{message}\n"}
        if author is None:
            sha = self.repo.commit(content, message, push=push)
        else:
            sha = self.repo.commit(content, message, push=push, author=author)
        return commit_of(self.repo, sha)

    async def environment(
        self,
        name: str,
        *,
        branch: str = "main",
        environment_type: str = "development",
        behavior: str = "create_new_build",
        auto_destroy: bool = False,
        instance_status: str = "running",
    ) -> dict[str, Any]:
        instance = await make_instance(
            self.database, self.tenant, f"{name}-{uuid.uuid4().hex[:6]}", status=instance_status
        )
        created = await self.client.post(
            f"/api/projects/{self.project_id}/environments",
            json={
                "instanceId": str(instance.id),
                "branch": branch,
                "environmentType": environment_type,
                "name": name,
            },
            headers=self.tenant.headers,
        )
        assert created.status_code == 201, created.text
        environment: dict[str, Any] = created.json()
        changed = await self.client.put(
            f"/api/environments/{environment['id']}/commit-behavior",
            json={"behavior": behavior},
            headers=self.tenant.headers,
        )
        assert changed.status_code == 200, changed.text
        if auto_destroy:
            # Not settable through the API (only clones get it); a row fixture.
            async with self.database.sessionmaker() as session:
                row = await session.get(Environment, uuid.UUID(environment["id"]))
                assert row is not None
                row.auto_destroy_on_merge = True
                await session.commit()
        self.environments[name] = environment
        return environment

    async def get(self, name: str) -> dict[str, Any]:
        response = await self.client.get(
            f"/api/environments/{self.environments[name]['id']}", headers=self.tenant.headers
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def deployments(self, name: str) -> list[dict[str, Any]]:
        response = await self.client.get(
            f"/api/environments/{self.environments[name]['id']}/deployments",
            headers=self.tenant.headers,
        )
        assert response.status_code == 200, response.text
        rows: list[dict[str, Any]] = response.json()["deployments"]
        return rows

    async def jobs(self, target_id: str) -> list[dict[str, Any]]:
        response = await self.client.get(
            f"/api/jobs?targetId={target_id}", headers=self.tenant.headers
        )
        assert response.status_code == 200, response.text
        rows: list[dict[str, Any]] = response.json()["jobs"]
        return rows


async def make_shop(
    client: httpx.AsyncClient, database: Database, tenant: Tenant, root: Path, name: str = "shop"
) -> Shop:
    repo = GitRepo.create(root, name)
    base = commit_of(repo, repo.commit({"shop_custom/__init__.py": ""}, "Initial addons"))
    created = await client.post(
        "/api/projects",
        json={"name": name, "repositoryUrl": repo.url, "odooVersion": "17.0"},
        headers=tenant.headers,
    )
    assert created.status_code == 201, created.text
    project = created.json()
    forge = Forge(client, str(project["id"]), project["webhookSecret"])
    return Shop(client, database, tenant, repo, project, base, forge)


@pytest.fixture
async def shop(
    client: httpx.AsyncClient, database: Database, tenant: Tenant, tmp_path: Path
) -> Shop:
    return await make_shop(client, database, tenant, tmp_path)


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)
