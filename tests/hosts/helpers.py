from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from ocore.hosts import HostTarget
from tests.fixtures.sshd import Sshd

# The system interpreter, present on the host and reachable over SSH alike.
PYTHON = "/usr/bin/python3"


@dataclasses.dataclass
class KeyRecorder:
    """Stands in for the code that persists a learned host key."""

    calls: list[tuple[HostTarget, str, str]] = dataclasses.field(default_factory=list)

    async def __call__(self, target: HostTarget, key: str, fingerprint: str) -> None:
        self.calls.append((target, key, fingerprint))


def make_target(sshd: Sshd, **changes: object) -> HostTarget:
    target = HostTarget(
        key="test-host",
        host=sshd.host,
        port=sshd.port,
        username=sshd.username,
        private_key=sshd.client_private_key,
        pinned_host_key=sshd.host_public_key,
    )
    return dataclasses.replace(target, **changes)  # type: ignore[arg-type]


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


def pid_gone(pid: int) -> bool:
    """Exited (a zombie waiting to be reaped counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def read_pids(path: Path) -> list[int]:
    return [int(word) for word in path.read_text().split()] if path.exists() else []


async def drain(
    lines: AsyncIterator[str], into: list[str], after_each: Callable[[], object] | None = None
) -> None:
    """Consume a stream into a list, so a raising stream fits one ``pytest.raises`` statement."""
    async for line in lines:
        into.append(line)
        if after_each is not None:
            after_each()
