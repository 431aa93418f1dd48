from __future__ import annotations

import uuid

from sqlalchemy import select

from ocore.core.repository import TenantRepository
from ocore.jobs.models import Job, JobStep


class JobRepository(TenantRepository[Job]):
    model = Job
    noun = "job"

    async def steps(self, job_id: uuid.UUID) -> list[JobStep]:
        statement = select(JobStep).where(JobStep.job_id == job_id).order_by(JobStep.sort_order)
        return list((await self.session.scalars(statement)).all())
