"""One organization's full set of real resources, made through the API and the ORM.

Every resource a route takes an id for exists, with names, secrets and outputs
that carry the world's own ``tag``: a response that shows any of them to
another organization is a leak, whatever field it hides in.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from ocore.core.db import Database, utcnow
from ocore.deployments.models import (
    Deployment,
    DeploymentEvidence,
    DeploymentFinding,
    DeploymentStep,
    Snapshot,
)
from ocore.environments.models import Environment
from ocore.instances.models import Instance
from ocore.jobs.context import job_stream
from ocore.jobs.models import Job, JobStep
from ocore.neutralization.models import NeutralizationItem
from ocore.orgs.models import Organization
from tests.conftest import Tenant
from tests.fixtures.gitrepo import GitRepo

# Shown once when created, or never: no read returns them, to anyone.
SECRET_FACTS = frozenset(
    {
        "webhook_secret",
        "git_token",
        "db_password",
        "share_password",
        "share_token",
        "item_sealed",
    }
)
MANIFEST = "{'name': 'Shop custom', 'version': '17.0.1.0.0', 'depends': ['base']}\n"


@dataclass
class World:
    """What one organization owns; ``ids`` by resource key, ``facts`` for everything else."""

    tenant: Tenant
    tag: str
    ids: dict[str, str] = field(default_factory=dict)
    facts: dict[str, str] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return self.tenant.headers

    def secrets(self) -> dict[str, str]:
        """The write-only values: not even the organization's own members read them back."""
        return {k: v for k, v in self.facts.items() if k in SECRET_FACTS}

    def needles(self) -> set[str]:
        """Strings of this organization no other organization may ever read."""
        found = {self.tag, *self.ids.values(), *self.facts.values()}
        return {n for n in found if len(n) >= 6}


async def _json(response: httpx.Response, status: int) -> Any:
    assert response.status_code == status, (response.request.url, response.text)
    return response.json()


async def build_world(
    client: httpx.AsyncClient,
    app: FastAPI,
    database: Database,
    tenant: Tenant,
    root: Path,
) -> World:
    tag = uuid.uuid4().hex[:10]
    world = World(tenant=tenant, tag=tag)
    headers = tenant.headers
    ids, facts = world.ids, world.facts
    ids["organization"] = str(tenant.organization_id)
    ids["owner"] = str(tenant.owner.user.id)

    repo = GitRepo.create(root / f"repo-{tag}")
    facts["sha_first"] = repo.commit(
        {"shop_custom/__manifest__.py": MANIFEST}, f"first commit {tag}"
    )
    facts["sha_second"] = repo.commit({"shop_custom/README": tag}, f"second commit {tag}")
    facts["repository_url"] = repo.url
    facts["git_token"] = f"git-token-{tag}"
    facts["db_password"] = f"db-password-{tag}"
    facts["share_password"] = f"share-password-{tag}"

    project = await _json(
        await client.post(
            "/api/projects",
            json={
                "name": f"project-{tag}",
                "repositoryUrl": repo.url,
                "odooVersion": "17.0",
                "gitToken": facts["git_token"],
            },
            headers=headers,
        ),
        201,
    )
    ids["project"] = project["id"]
    facts["webhook_secret"] = project["webhookSecret"]

    server = await _json(
        await client.post(
            "/api/servers",
            json={
                "name": f"server-{tag}",
                "isLocal": True,
                "baseDir": f"/srv/ocore-{tag}",
                "dbPassword": facts["db_password"],
            },
            headers=headers,
        ),
        201,
    )
    ids["server"] = server["id"]

    template = await _json(
        await client.post(
            "/api/templates",
            json={"name": f"template-{tag}", "odooVersion": "17.0", "modules": ["sale"]},
            headers=headers,
        ),
        201,
    )
    ids["template"] = template["id"]

    instance = await _json(
        await client.post(
            "/api/instances",
            json={
                "name": f"Instance {tag}",
                "slug": f"inst-{tag}",
                "serverId": ids["server"],
                "templateId": ids["template"],
                "projectId": ids["project"],
                "branch": "main",
                "environmentType": "staging",
                "envVars": {"SHOP_API_KEY": f"env-secret-{tag}"},
            },
            headers=headers,
        ),
        202,
    )
    ids["instance"] = instance["id"]
    facts["database_name"] = instance.get("databaseName") or ""

    environments = await _json(
        await client.get(f"/api/projects/{ids['project']}/environments", headers=headers), 200
    )
    assert len(environments) == 1, environments
    ids["environment"] = environments[0]["id"]
    facts["environment_name"] = environments[0]["name"]

    jobs = await _json(
        await client.get(f"/api/jobs?targetId={ids['instance']}", headers=headers), 200
    )
    ids["job_instance"] = jobs["jobs"][0]["id"]  # the provisioning job: queued, no worker

    share = await _json(
        await client.post(
            f"/api/environments/{ids['environment']}/share",
            json={
                "shareType": "password",
                "password": facts["share_password"],
                "label": f"share-label-{tag}",
            },
            headers=headers,
        ),
        201,
    )
    ids["share_link"] = share["id"]
    facts["share_token"] = share["url"].rsplit("/", 1)[1]

    profile = await _json(
        await client.get(f"/api/projects/{ids['project']}/neutralization/profile", headers=headers),
        200,
    )
    ids["neutralization_profile"] = profile["id"]

    org_id = tenant.organization_id
    now = utcnow()
    async with database.sessionmaker() as session:
        organization = await session.get(Organization, org_id)
        assert organization is not None
        facts["organization_name"] = organization.name
        facts["owner_email"] = tenant.owner.user.email

        row = await session.get(Instance, uuid.UUID(ids["instance"]))
        assert row is not None
        row.status = "running"
        row.status_message = f"running since {tag}"
        facts["database_name"] = row.database_name
        environment = await session.get(Environment, uuid.UUID(ids["environment"]))
        assert environment is not None
        environment.status = "ready"
        environment.description = f"environment description {tag}"
        environment.pending_commit_sha = facts["sha_second"]
        environment.pending_commit_count = 1

        spare = Instance(
            organization_id=org_id,
            server_id=uuid.UUID(ids["server"]),
            project_id=uuid.UUID(ids["project"]),
            name=f"Spare {tag}",
            slug=f"spare-{tag}",
            status="running",
            odoo_version="17.0",
            database_name=f"spare_{tag}",
        )
        session.add(spare)
        await session.flush()
        ids["spare_instance"] = str(spare.id)

        snapshot = Snapshot(
            organization_id=org_id,
            instance_id=row.id,
            method="pg_dump",
            location=f"/var/lib/ocore/snapshots/{tag}.dump",
            status="ready",
        )
        session.add(snapshot)
        await session.flush()
        ids["snapshot"] = str(snapshot.id)

        deployments = []
        for index, (sha, snapshot_id) in enumerate(
            [(facts["sha_first"], None), (facts["sha_second"], snapshot.id)]
        ):
            deployment = Deployment(
                organization_id=org_id,
                project_id=uuid.UUID(ids["project"]),
                instance_id=row.id,
                environment_id=environment.id,
                snapshot_id=snapshot_id,
                triggered_by=tenant.owner.user.id,
                trigger_type="manual",
                status="succeeded",
                branch="main",
                commit_sha=sha,
                commit_message=f"deployed commit {index} {tag}",
                commit_author=f"author-{tag}",
                error_message=None,
                log_summary=None,
                started_at=now - timedelta(hours=2 - index),
                completed_at=now - timedelta(hours=2 - index, minutes=-5),
                created_at=now - timedelta(hours=2 - index),
            )
            session.add(deployment)
            await session.flush()
            deployments.append(deployment)
            session.add(
                DeploymentStep(
                    deployment_id=deployment.id,
                    name="build",
                    status="succeeded",
                    output=f"build output of {tag}",
                    sort_order=1,
                )
            )
            session.add(
                DeploymentEvidence(
                    deployment_id=deployment.id,
                    gate_key="tests",
                    name="Tests",
                    required=False,
                    status="failed",
                    outcome="failed",
                    summary=f"tests failed in {tag}",
                )
            )
            session.add(
                DeploymentFinding(
                    deployment_id=deployment.id,
                    finding_class="odoo_warning",
                    severity="warning",
                    evidence_excerpt=f"finding excerpt {tag}",
                )
            )
        ids["deployment"] = str(deployments[0].id)  # an earlier success: rollback target
        ids["deployment_live"] = str(deployments[1].id)

        finished = Job(
            organization_id=org_id,
            kind="instance.restart",
            target_type="instance",
            target_id=row.id,
            status="succeeded",
            payload={"note": f"job payload {tag}"},
            started_at=now,
            finished_at=now,
        )
        session.add(finished)
        await session.flush()
        session.add(
            JobStep(
                job_id=finished.id,
                name="restart",
                status="succeeded",
                output=f"job output {tag}",
                sort_order=1,
            )
        )
        ids["job"] = str(finished.id)
        # Unfinished jobs of every target type, for the cancel permission of each.
        for target_type, target_id, status, lock in (
            ("environment", environment.id, "running", f"environment:{environment.id}"),
            ("deployment", deployments[1].id, "queued", None),
            ("server", uuid.UUID(ids["server"]), "queued", None),
        ):
            job = Job(
                organization_id=org_id,
                kind=f"{target_type}.test",
                target_type=target_type,
                target_id=target_id,
                status=status,
                lock_key=lock,
            )
            session.add(job)
            await session.flush()
            ids[f"job_{target_type}"] = str(job.id)

        item = NeutralizationItem(
            organization_id=org_id,
            environment_id=environment.id,
            category="crons",
            odoo_model="ir.cron",
            odoo_record_id=7,
            record_name=f"cron of {tag}",
            original_state_encrypted=app.state.secret_box.encrypt(f"sealed-{tag}"),
        )
        session.add(item)
        await session.flush()
        ids["neutralization_item"] = str(item.id)
        facts["item_sealed"] = item.original_state_encrypted or ""
        await session.commit()

    # The finished job's event stream ends at once (SSE readers stop on a final status).
    await app.state.jobs.events.publish(
        job_stream(uuid.UUID(ids["job"])), {"type": "status", "status": "succeeded"}
    )
    return world


async def reset_environment(database: Database, world: World) -> None:
    """Put the world's environment back to a ready staging one (after a promotion moved it)."""
    async with database.sessionmaker() as session:
        environment = (
            await session.execute(
                select(Environment).where(Environment.id == uuid.UUID(world.ids["environment"]))
            )
        ).scalar_one()
        environment.environment_type = "staging"
        environment.status = "ready"
        await session.commit()
