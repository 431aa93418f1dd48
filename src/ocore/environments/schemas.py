from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from ocore.core.schemas import InputSchema, Schema, UpdateSchema
from ocore.git.refs import validate_branch_name

EnvironmentType = Literal["development", "staging", "production"]
CommitBehavior = Literal["do_nothing", "create_new_build", "update_previous_build"]
TestGate = Literal["block", "warn"]
BranchName = Annotated[str, AfterValidator(validate_branch_name)]
# The name column's size; a name derived from a branch (up to 200) is cut to it.
NAME_MAX = 120


class EnvironmentCreate(InputSchema):
    instance_id: uuid.UUID
    branch: BranchName
    environment_type: EnvironmentType
    name: Annotated[str, Field(min_length=1, max_length=120)] | None = None
    description: Annotated[str, Field(max_length=2000)] | None = None


class EnvironmentUpdate(UpdateSchema):
    nullable_fields = frozenset({"description"})

    name: Annotated[str, Field(min_length=1, max_length=120)] | None = None
    description: Annotated[str, Field(max_length=2000)] | None = None


class CommitBehaviorUpdate(InputSchema):
    behavior: CommitBehavior


class CommitBehaviorOut(Schema):
    commit_behavior: str
    message: str


class TestGates(Schema):
    test_gate_staging: str
    test_gate_production: str


class TestGatesUpdate(InputSchema):
    test_gate_staging: TestGate
    test_gate_production: TestGate


class TestGatesUpdated(TestGates):
    message: str


class EnvironmentOut(Schema):
    id: uuid.UUID
    name: str
    description: str | None
    project_id: uuid.UUID
    environment_type: str
    branch: str
    status: str
    status_message: str | None
    commit_behavior: str
    auto_destroy_on_merge: bool
    cloned_from_id: uuid.UUID | None
    is_neutralized: bool
    last_commit_at: datetime | None
    last_commit_author: str | None
    pending_commit_sha: str | None
    pending_commit_count: int
    mailpit_port: int | None
    instance_id: uuid.UUID | None
    instance_name: str | None
    instance_slug: str | None
    instance_status: str | None
    server_id: uuid.UUID | None
    odoo_version: str | None
    auto_subdomain: str | None
    primary_domain: str | None
    created_at: datetime
    updated_at: datetime


class EnvironmentList(Schema):
    environments: list[EnvironmentOut]
    total: int
    limit: int
    offset: int


class PipelineEntry(EnvironmentOut):
    recent_deployments: list[dict[str, Any]]


class Pipeline(Schema):
    stages: dict[str, list[PipelineEntry]]


class CloneRequest(InputSchema):
    target_branch: BranchName
    target_type: EnvironmentType = "staging"
    auto_destroy: bool = False


class PromoteRequest(InputSchema):
    target_stage: EnvironmentType
    force_promote: bool = False
    demotion_db_option: Literal["fresh", "clone"] | None = None


class PromoteAccepted(Schema):
    message: str
    new_stage: str
    promotion_id: uuid.UUID
