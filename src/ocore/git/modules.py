"""Which Odoo modules a change between two commits of an addons repository touches.

A module is a directory holding ``__manifest__.py``, at the top of the
repository (``sale_extra/``) or one level down (``addons/sale_extra/``), the
two layouts addons repositories use. Manifests are read with
``ast.literal_eval``, as Odoo reads them: never executed.
"""

from __future__ import annotations

import ast
import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from ocore.core.errors import InvalidInput
from ocore.git.types import checked_sha

MANIFEST = "__manifest__.py"
# Module directories are looked for at depth 1 and 2.
_DEPTHS = (1, 2)

Status = Literal["changed", "new", "removed"]


class RepoReader(Protocol):
    """What detection needs from a repository; ``GitCliProvider`` provides it."""

    async def changed_files(self, from_sha: str, to_sha: str) -> list[str]: ...

    async def existing_paths(self, commit_sha: str, paths: Iterable[str]) -> set[str]: ...

    async def read_text(self, commit_sha: str, path: str) -> str: ...


@dataclass(frozen=True)
class ModuleChange:
    name: str
    # The module directory in the repository (at the old commit if removed).
    path: str
    status: Status
    old_version: str | None
    new_version: str | None
    installable: bool = True

    @property
    def version_bumped(self) -> bool:
        """The manifest version differs (Odoo runs migrations for it): ``-u`` is required."""
        return self.status == "changed" and self.old_version != self.new_version


@dataclass(frozen=True)
class ModuleChanges:
    modules: tuple[ModuleChange, ...] = ()
    # Changed files that belong to no module (requirements.txt, README...).
    other_files: tuple[str, ...] = field(default=())

    def _names(self, status: Status) -> tuple[str, ...]:
        return tuple(m.name for m in self.modules if m.status == status)

    @property
    def changed(self) -> tuple[str, ...]:
        """Modules present at both commits with any file changed (bumped ones included)."""
        return self._names("changed")

    @property
    def new(self) -> tuple[str, ...]:
        return self._names("new")

    @property
    def removed(self) -> tuple[str, ...]:
        return self._names("removed")

    @property
    def version_bumped(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.modules if m.version_bumped)

    @property
    def to_install(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.modules if m.status == "new" and m.installable)

    @property
    def to_update(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.modules if m.version_bumped and m.installable)


def parse_manifest(text: str, where: str) -> dict[str, Any]:
    """A manifest's dictionary; ``InvalidInput`` naming ``where`` if it is not one."""
    try:
        value = ast.literal_eval(text)
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError) as exc:
        reason = exc.msg if isinstance(exc, SyntaxError) else str(exc) or type(exc).__name__
        line = f" (line {exc.lineno})" if isinstance(exc, SyntaxError) and exc.lineno else ""
        raise InvalidInput(
            f"{where} is not a valid Odoo manifest: {reason}{line}; "
            "a manifest must be a single Python dict literal"
        ) from None
    if not isinstance(value, dict):
        raise InvalidInput(
            f"{where} is not a valid Odoo manifest: it holds a {type(value).__name__}, not a dict"
        )
    version = value.get("version")
    if version is not None and not isinstance(version, str):
        raise InvalidInput(f"{where}: 'version' must be a string, got {version!r}")
    return value


def module_dirs_for(path: str) -> list[str]:
    """The directories ``path`` could belong to as a module, shallowest first."""
    parts = path.split("/")
    return ["/".join(parts[:depth]) for depth in _DEPTHS if len(parts) > depth]


async def detect_module_changes(
    repo: RepoReader,
    from_sha: str,
    to_sha: str,
    changed_files: Sequence[str] | None = None,
) -> ModuleChanges:
    """Modules changed, new, removed and version-bumped from ``from_sha`` to ``to_sha``.

    ``changed_files`` defaults to ``repo.changed_files(from_sha, to_sha)``.
    A module moved to another directory under the same name counts as changed.
    """
    old, new = checked_sha(from_sha), checked_sha(to_sha)
    if changed_files is None:
        changed_files = await repo.changed_files(old, new)
    files = sorted(set(changed_files))
    candidates = {d for path in files for d in module_dirs_for(path)}
    manifests = {posixpath.join(d, MANIFEST) for d in candidates}
    before = {posixpath.dirname(p) for p in await repo.existing_paths(old, manifests)}
    after = {posixpath.dirname(p) for p in await repo.existing_paths(new, manifests)}
    touched: set[str] = set()
    other: list[str] = []
    for path in files:
        owner = next((d for d in module_dirs_for(path) if d in before or d in after), None)
        if owner is None:
            other.append(path)
        else:
            touched.add(owner)
    changed_set = set(files)

    async def manifest(sha: str, directory: str) -> dict[str, Any]:
        path = posixpath.join(directory, MANIFEST)
        return parse_manifest(await repo.read_text(sha, path), f"{path} at commit {sha[:12]}")

    gone = {posixpath.basename(d): d for d in sorted(touched - after)}
    result: dict[str, ModuleChange] = {}
    for directory in sorted(touched & after):
        name = posixpath.basename(directory)
        if name in result:
            raise InvalidInput(
                f"module {name} exists twice, in {result[name].path} and {directory}"
            )
        current = await manifest(new, directory)
        installable = bool(current.get("installable", True))
        if directory in before or name in gone:
            # Same module before: its old manifest only needs reading if it changed.
            old_dir = directory if directory in before else gone.pop(name)
            old_manifest_path = posixpath.join(old_dir, MANIFEST)
            previous = (
                await manifest(old, old_dir)
                if old_manifest_path in changed_set or old_dir != directory
                else current
            )
            result[name] = ModuleChange(
                name, directory, "changed", previous.get("version"), current.get("version"),
                installable,
            )  # fmt: skip
        else:
            result[name] = ModuleChange(
                name, directory, "new", None, current.get("version"), installable
            )
    for name, directory in gone.items():
        if name not in result:
            result[name] = ModuleChange(name, directory, "removed", None, None, False)
    return ModuleChanges(
        modules=tuple(result[name] for name in sorted(result)), other_files=tuple(other)
    )
