from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from ocore.hosts import HostConnection, HostTarget, LocalHost, SSHPool
from tests.fixtures.sshd import Sshd, running_sshd
from tests.hosts.helpers import KeyRecorder, make_target


@pytest.fixture(scope="session")
def sshd() -> Iterator[Sshd]:
    with running_sshd() as server:
        yield server


@pytest.fixture
def ssh_target(sshd: Sshd) -> HostTarget:
    # Built per test: a test may have restarted sshd with a new host key.
    return make_target(sshd)


@pytest.fixture
def learned() -> KeyRecorder:
    return KeyRecorder()


@pytest.fixture
async def pool(learned: KeyRecorder) -> AsyncIterator[SSHPool]:
    pool = SSHPool(on_host_key=learned, connect_timeout=5.0)
    yield pool
    await pool.close_all()


@pytest.fixture(params=["ssh", "local"])
def host(request: pytest.FixtureRequest, pool: SSHPool, ssh_target: HostTarget) -> HostConnection:
    if request.param == "ssh":
        return pool.connection(ssh_target)
    return LocalHost()
