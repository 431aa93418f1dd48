from __future__ import annotations

import uuid

from sqlalchemy import func, select

from ocore.core.repository import TenantRepository
from ocore.environments.models import Environment
from ocore.projects.models import Project


class ProjectRepository(TenantRepository[Project]):
    model = Project
    noun = "project"

    async def name_taken(
        self, organization_id: uuid.UUID, name: str, exclude: uuid.UUID | None = None
    ) -> bool:
        statement = select(func.count()).where(
            Project.organization_id == organization_id, Project.name == name
        )
        if exclude is not None:
            statement = statement.where(Project.id != exclude)
        return bool(await self.session.scalar(statement))

    async def count_environments(self, project_id: uuid.UUID) -> int:
        statement = select(func.count()).where(Environment.project_id == project_id)
        return int(await self.session.scalar(statement) or 0)
