"""The one pagination helper: ``limit``/``offset`` query parameters and a counted page."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Query
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


@dataclass(frozen=True)
class PageParams:
    limit: int
    offset: int


def _page_params(
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description=f"Results per page (max {MAX_LIMIT})")
    ] = DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, le=10_000_000, description="Rows to skip")] = 0,
) -> PageParams:
    return PageParams(limit=limit, offset=offset)


Pagination = Annotated[PageParams, Depends(_page_params)]


async def paginate(
    session: AsyncSession, statement: Select[Any], page: PageParams, *, rows: bool = False
) -> tuple[list[Any], int]:
    """One page and the total count of the unpaginated statement.

    The page holds the first selected entity of each row, or whole rows with ``rows``.
    """
    count_statement: Select[Any] = select(func.count()).select_from(
        statement.order_by(None).subquery()
    )
    total = (await session.execute(count_statement)).scalar_one()
    paged = statement.limit(page.limit).offset(page.offset)
    if rows:
        return list((await session.execute(paged)).all()), total
    return list((await session.scalars(paged)).all()), total
