from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from ocore.core.schemas import Schema


class JobStepOut(Schema):
    id: uuid.UUID
    name: str
    status: str
    output: str
    sort_order: int
    started_at: datetime | None
    completed_at: datetime | None
    duration_ms: int | None


class JobOut(Schema):
    id: uuid.UUID
    kind: str
    target_type: str
    target_id: uuid.UUID | None
    status: str
    attempt: int
    max_attempts: int
    cancel_requested: bool
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobDetail(JobOut):
    steps: list[JobStepOut]


class JobList(Schema):
    jobs: list[JobOut]
    total: int
    limit: int
    offset: int


def job_detail(job: Any, steps: list[Any]) -> JobDetail:
    return JobDetail(
        **JobOut.model_validate(job).model_dump(),
        steps=[JobStepOut.model_validate(s) for s in steps],
    )
