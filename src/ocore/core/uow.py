"""One unit of work per request: services flush, this commits (or rolls back).

Work that must only happen once the data is durable (enqueueing a job,
publishing an event) is registered with ``after_commit`` and dropped on rollback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from ocore.core.deps import get_database

AfterCommit = Callable[[], Awaitable[None]]
_AFTER_COMMIT_KEY = "ocore.after_commit"


def after_commit(session: AsyncSession, callback: AfterCommit) -> None:
    session.info.setdefault(_AFTER_COMMIT_KEY, []).append(callback)


async def commit(session: AsyncSession) -> None:
    """Commit, then run what was waiting for the commit."""
    await session.commit()
    callbacks: list[AfterCommit] = session.info.pop(_AFTER_COMMIT_KEY, [])
    for callback in callbacks:
        await callback()


async def _request_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with get_database(request).sessionmaker() as session:
        try:
            yield session
        except BaseException:
            session.info.pop(_AFTER_COMMIT_KEY, None)
            await session.rollback()
            raise
        await commit(session)


# scope="function": the commit happens before the response is sent, so a client
# never sees a success for data that failed to commit.
SessionDep = Annotated[AsyncSession, Depends(_request_session, scope="function")]
