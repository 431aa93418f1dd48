"""The canonical tenant-scoped repository: every read of a tenant's row filters by organization."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from ocore.core.db import Base
from ocore.core.errors import NotFound
from ocore.core.pagination import PageParams, paginate

ModelT = TypeVar("ModelT", bound=Base)


class TenantRepository(Generic[ModelT]):
    """Subclasses name a model with ``id`` and ``organization_id`` columns."""

    model: ClassVar[type[Any]]
    # Used in "<noun> <id> not found" messages.
    noun: ClassVar[str]

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def scoped(self, organization_id: uuid.UUID) -> Select[Any]:
        return select(self.model).where(self.model.organization_id == organization_id)

    async def find(self, organization_id: uuid.UUID, id_: uuid.UUID) -> ModelT | None:
        statement = self.scoped(organization_id).where(self.model.id == id_)
        row: ModelT | None = (await self.session.execute(statement)).scalar_one_or_none()
        return row

    async def get(self, organization_id: uuid.UUID, id_: uuid.UUID) -> ModelT:
        """The row, or NotFound, also when it belongs to another organization."""
        row = await self.find(organization_id, id_)
        if row is None:
            raise NotFound(f"{self.noun.capitalize()} {id_} not found.")
        return row

    async def list_page(self, statement: Select[Any], page: PageParams) -> tuple[list[ModelT], int]:
        return await paginate(self.session, statement, page)

    async def add(self, row: ModelT) -> ModelT:
        self.session.add(row)
        await self.session.flush()
        return row

    async def delete(self, row: ModelT) -> None:
        await self.session.delete(row)
        await self.session.flush()
