"""What webhook deliveries, manual builds and commit lists answer."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from ocore.core.schemas import Schema

EventName = Literal["push", "branch_deleted", "pull_request_merged", "ignored"]
DeliveryStatus = Literal["processed", "ignored", "duplicate"]
# pending_recorded: do_nothing, the commit waits for a manual build (trigger-build).
# build_queued: a deployment of the pushed commit was queued (pending reset).
# kept_pending: a build was wanted but could not be queued now (instance busy or
#   unavailable, commit not resolvable); ``reason`` says why.
# marked_for_deletion: a merged pull request or deleted branch started the environment's
#   delete job (``supersededDeploymentIds``: queued builds it cancelled); kept: it did not
#   (production, autoDestroyOnMerge off, instance busy), ``reason`` says why.
ActionName = Literal[
    "pending_recorded", "build_queued", "kept_pending", "marked_for_deletion", "kept"
]


class EnvironmentAction(Schema):
    environment_id: uuid.UUID
    name: str
    action: ActionName
    deployment_id: uuid.UUID | None = None
    superseded_deployment_ids: list[uuid.UUID] = Field(default_factory=list)
    reason: str | None = None


class WebhookResult(Schema):
    """The answer to a delivery: what it was and what it did to which environment."""

    delivery_id: str
    event: EventName
    status: DeliveryStatus
    branch: str | None = None
    commit_sha: str | None = None
    environments: list[EnvironmentAction] = Field(default_factory=list)
    note: str | None = None


class CommitOut(Schema):
    sha: str
    message: str
    author_name: str
    author_email: str
    author_avatar_url: str | None
    committed_at: datetime


class CommitsSince(Schema):
    commits: list[CommitOut]
    total_count: int
