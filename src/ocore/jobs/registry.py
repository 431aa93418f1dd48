"""Job kinds: what each one runs, and what a final failure does to its resource."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ocore.jobs.context import JobContext


@dataclass(frozen=True)
class JobKind:
    name: str
    run: Callable[[JobContext], Coroutine[Any, Any, None]]
    # Called once when the job fails for good (after its last attempt), to put the
    # resource in a state a person can see and act on.
    on_failure: Callable[[JobContext, str], Awaitable[None]] | None = None


_KINDS: dict[str, JobKind] = {}
# Resources whose transitional status a lost job would leave behind: the
# reconciler marks them failed so nothing stays "provisioning" forever.
_ORPHAN_CHECKS: list[OrphanCheck] = []


@dataclass(frozen=True)
class OrphanCheck:
    model: type[Any]
    statuses: tuple[str, ...]
    values: dict[str, Any]


def register_orphan_check(check: OrphanCheck) -> OrphanCheck:
    _ORPHAN_CHECKS.append(check)
    return check


def orphan_checks() -> list[OrphanCheck]:
    load_job_kinds()
    return list(_ORPHAN_CHECKS)


def register(kind: JobKind) -> JobKind:
    if kind.name in _KINDS and _KINDS[kind.name] is not kind:
        raise ValueError(f"job kind '{kind.name}' is registered twice")
    _KINDS[kind.name] = kind
    return kind


def get(name: str) -> JobKind | None:
    load_job_kinds()
    return _KINDS.get(name)


def load_job_kinds() -> None:
    """Import the modules that register job kinds (once; imports are cached)."""
    import ocore.deployments.build
    import ocore.environments.jobs
    import ocore.instances.jobs
    import ocore.jobs.diagnostics
    import ocore.neutralization.jobs
    import ocore.servers.jobs  # noqa: F401
