"""Hosts for the git tests: this machine directly and over a real sshd, plus real repositories."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from ocore.hosts import HostConnection, LocalHost, SSHPool
from ocore.hosts.base import CommandResult
from tests.fixtures.gitrepo import GitRepo
from tests.fixtures.sshd import Sshd, running_sshd
from tests.hosts.helpers import make_target


@pytest.fixture(scope="session")
def sshd() -> Iterator[Sshd]:
    with running_sshd() as server:
        yield server


@pytest.fixture
async def pool() -> AsyncIterator[SSHPool]:
    pool = SSHPool(connect_timeout=5.0)
    yield pool
    await pool.close_all()


@pytest.fixture(params=["local", "ssh"])
def host(request: pytest.FixtureRequest, sshd: Sshd, pool: SSHPool) -> HostConnection:
    """git runs on the control plane (LocalHost) or on an Odoo host reached over SSH."""
    if request.param == "ssh":
        return pool.connection(make_target(sshd))
    return LocalHost()


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    return GitRepo.create(tmp_path / "repos")


@pytest.fixture
def cache_root(tmp_path: Path) -> str:
    return str(tmp_path / "cache")


class RecordingHost:
    """LocalHost that remembers every command, to prove which ones never ran."""

    def __init__(self) -> None:
        self.inner = LocalHost()
        self.calls: list[tuple[str, ...]] = []

    async def run(self, argv: Sequence[str], **options: Any) -> CommandResult:
        self.calls.append(tuple(argv))
        return await self.inner.run(argv, **options)


@pytest.fixture
def recording_host() -> RecordingHost:
    return RecordingHost()
