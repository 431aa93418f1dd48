from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from ocore.core.schemas import InputSchema, Schema
from ocore.git.refs import validate_branch_name, validate_commit_sha

BranchName = Annotated[str, AfterValidator(validate_branch_name)]
CommitSha = Annotated[str, AfterValidator(validate_commit_sha)]


class DeployRequest(InputSchema):
    instance_id: uuid.UUID
    branch: BranchName | None = None
    commit_sha: CommitSha | None = None
    tag: BranchName | None = None

    @model_validator(mode="after")
    def _one_target(self) -> DeployRequest:
        given = [n for n in ("branch", "commit_sha", "tag") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of branch, commitSha or tag")
        return self


class RollbackRequest(InputSchema):
    deployment_id: uuid.UUID


class StepOut(Schema):
    id: uuid.UUID
    name: str
    status: str
    output: str
    sort_order: int
    version: int
    started_at: datetime | None
    completed_at: datetime | None
    duration_ms: int | None


class Validation(Schema):
    mode: str | None = None
    profile: str | None = None
    exit_code: int | None = None
    duration_ms: int | None = None
    log_excerpt: str | None = None
    failure_card: dict[str, Any] = Field(default_factory=dict)
    artifact_refs: list[str] = Field(default_factory=list)


class Waiver(Schema):
    id: str
    actor: str
    reason: str
    scope: str
    confirmation: str | None = None
    expires_at: datetime | None = None
    audit_status: str = "recorded"


class EvidenceOut(Schema):
    gate_key: str
    name: str
    required: bool
    status: str
    outcome: str | None
    summary: str | None
    log_refs: list[str]
    artifact_refs: list[str]
    validation: Validation | None
    waiver: Waiver | None
    started_at: datetime | None
    completed_at: datetime | None
    duration_ms: int | None


class FindingOut(Schema):
    finding_class: str = Field(alias="class")
    severity: str
    confidence: float
    evidence_excerpt: str | None
    gate_action: str | None
    metadata: dict[str, Any]


class RiskOut(Schema):
    level: str | None
    score: int | None


class VerdictOut(Schema):
    status: str
    label: str
    clean: bool
    waived: bool
    legacy: bool
    reason: str | None


class DeploymentOut(Schema):
    id: uuid.UUID
    project_id: uuid.UUID
    instance_id: uuid.UUID
    status: str
    trigger_type: str
    branch: str | None
    commit_sha: str | None
    commit_message: str | None
    commit_author: str | None
    commit_author_avatar: str | None
    previous_commit_sha: str | None
    previous_deployment_id: uuid.UUID | None
    active_color: str | None
    image_tag: str | None
    snapshot_id: uuid.UUID | None
    error_message: str | None
    risk: RiskOut
    success_verdict: VerdictOut | None
    steps: list[StepOut]
    evidence: list[EvidenceOut]
    findings: list[FindingOut]
    started_at: datetime | None
    completed_at: datetime | None
    duration_ms: int | None
    created_at: datetime
    updated_at: datetime


class DeploymentList(Schema):
    deployments: list[DeploymentOut]
    total: int
    limit: int
    offset: int


class LogSection(Schema):
    name: str
    start_line: int
    end_line: int
    line_count: int


class LogWarningGroup(Schema):
    category: str
    count: int
    logger: str
    message: str
    severity: str


class LogSummaryOut(Schema):
    success: bool
    odoo_version: str | None
    duration_ms: int | None
    total_modules: int
    updated_modules: list[str]
    error_count: int
    warning_count: int
    warning_groups: list[LogWarningGroup]
    sections: list[LogSection]


class WaiverRequest(InputSchema):
    gate_key: Annotated[str, Field(min_length=1, max_length=60, pattern=r"^[a-z_]+$")]
    reason: Annotated[str, Field(min_length=10, max_length=2000)]
    scope: Literal["deployment"] = "deployment"
    expires_at: datetime | None = None
