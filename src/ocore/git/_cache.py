"""Git on a host: one bare cache repository per repository URL, fed by ``git fetch``.

Every git command here is an argument list run through a ``HostConnection``;
user-controlled values (URLs, refs, SHAs) are validated before and placed
after ``--end-of-options`` where the git subcommand supports it, so none can
be read as an option (``--upload-pack=...``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import posixpath
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from ocore.core.errors import (
    CommandFailed,
    GitAuthFailed,
    GitError,
    InvalidInput,
    RefNotFound,
)
from ocore.git.refs import validate_repository_url
from ocore.hosts.base import CommandResult, HostConnection

DEFAULT_CACHE_ROOT = "/var/cache/ocore/git"
FETCH_TIMEOUT = 900.0
LOCAL_TIMEOUT = 120.0
_FETCH_ATTEMPTS = 4
_REFSPECS = ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
_SLUG = re.compile(r"[^A-Za-z0-9._-]+")
_USERINFO = re.compile(r"^([a-z]+://)[^/@]*@")

_AUTH_MARKERS = (
    "permission denied (publickey",
    "authentication failed",
    "could not read username",
    "could not read password",
    "terminal prompts disabled",
    "access denied",
    "invalid username or password",
)
_HOST_KEY_MARKERS = (
    "host key verification failed",
    "remote host identification has changed",
    "host key for",
)
_MISSING_REPO_MARKERS = (
    "repository not found",
    "does not appear to be a git repository",
    "not a git repository",
    "no such file or directory",
)


@dataclass(frozen=True, kw_only=True)
class SshSettings:
    """How git reaches ``ssh://`` and ``user@host:path`` repositories.

    Known-hosts policy: server keys are checked against ``known_hosts_file``
    (default ``<cache_root>/known_hosts`` on the host that runs git). With
    ``strict`` only keys already in that file are accepted: operators load it
    beforehand (for example with GitHub's published keys). Without it, the
    first key a git server shows is recorded and any later change is refused:
    trust on first use, as ocore pins the keys of its own servers. Checking is
    never switched off. ``BatchMode`` makes ssh fail instead of prompting.
    """

    known_hosts_file: str | None = None
    strict: bool = False
    # A deploy key on the host running git; None uses that user's own ssh setup.
    identity_file: str | None = None
    connect_timeout: int = 30

    def command(self, cache_root: str) -> str:
        known_hosts = self.known_hosts_file or posixpath.join(cache_root, "known_hosts")
        argv = [
            "ssh",
            "-o",
            "BatchMode=yes",
            "-o",
            f"StrictHostKeyChecking={'yes' if self.strict else 'accept-new'}",
            "-o",
            f"UserKnownHostsFile={_absolute(known_hosts, 'known_hosts_file')}",
            "-o",
            f"ConnectTimeout={int(self.connect_timeout)}",
        ]
        if self.identity_file is not None:
            identity = _absolute(self.identity_file, "identity_file")
            argv += ["-o", "IdentitiesOnly=yes", "-i", identity]
        # git hands GIT_SSH_COMMAND to a shell: every word is quoted.
        return shlex.join(argv)


def _absolute(path: str, what: str) -> str:
    if not path.startswith("/") or posixpath.normpath(path) != path or "\0" in path:
        raise InvalidInput(f"{what} must be a normalized absolute path, got {path!r}")
    return path


def checked_url(url: str) -> str:
    try:
        return validate_repository_url(url)
    except ValueError as exc:
        raise InvalidInput(f"repository URL: {exc}") from None


def redact(url: str) -> str:
    """The URL without any ``user:token@`` part, for messages."""
    return _USERINFO.sub(r"\1", url)


def git_env(ssh_command: str) -> dict[str, str]:
    return {
        # Never wait for a password on a terminal that no one watches.
        "GIT_TERMINAL_PROMPT": "0",
        "SSH_ASKPASS_REQUIRE": "never",
        "GIT_SSH_COMMAND": ssh_command,
        "GIT_SSH_VARIANT": "ssh",
        # No ext:: or fd:: transports: they run arbitrary commands.
        "GIT_ALLOW_PROTOCOL": "file:git:http:https:ssh",
        "GIT_PROTOCOL_FROM_USER": "0",
        # English messages, so failures can be classified below.
        "LC_ALL": "C",
    }


class RepoCache:
    """The bare cache of ``repository_url`` under ``cache_root`` on ``host``.

    The cache mirrors the remote's branches and tags (``--prune``: a deleted
    branch disappears). It is safe to share between concurrent jobs, even in
    other processes: git locks refs itself and a fetch that loses a lock race
    is retried.
    """

    def __init__(
        self,
        host: HostConnection,
        repository_url: str,
        *,
        cache_root: str = DEFAULT_CACHE_ROOT,
        ssh: SshSettings | None = None,
        fetch_timeout: float = FETCH_TIMEOUT,
    ) -> None:
        self.host = host
        self.url = checked_url(repository_url)
        self.cache_root = _absolute(cache_root, "cache_root")
        digest = hashlib.sha256(self.url.encode()).hexdigest()[:16]
        name = _SLUG.sub("-", self.url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git"))
        self.path = posixpath.join(
            self.cache_root, f"{name.strip('-.')[:40] or 'repo'}-{digest}.git"
        )
        self.fetch_timeout = fetch_timeout
        self.env = git_env((ssh or SshSettings()).command(self.cache_root))
        self._ready = False
        self._fetched = False

    @property
    def label(self) -> str:
        return redact(self.url)

    async def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        stdin: bytes | None = None,
        timeout: float = LOCAL_TIMEOUT,
    ) -> CommandResult:
        """Run a git command (``argv`` starts after ``git``) with ocore's git environment."""
        try:
            return await self.host.run(
                ["git", *argv], check=check, stdin=stdin, env=self.env, timeout=timeout
            )
        except CommandFailed as exc:
            raise self._failure(argv, exc) from exc

    async def git(
        self,
        *args: str,
        check: bool = True,
        stdin: bytes | None = None,
        timeout: float = LOCAL_TIMEOUT,
    ) -> CommandResult:
        """A git command on the cache repository."""
        await self.ensure()
        return await self.run(
            [f"--git-dir={self.path}", *args], check=check, stdin=stdin, timeout=timeout
        )

    async def ensure(self) -> None:
        if self._ready:
            return
        # Idempotent: re-running init on an existing repository changes nothing.
        await self.run(["init", "--bare", "--quiet", "--", self.path])
        self._ready = True

    async def fetch(self, *refspecs: str) -> None:
        """Fetch the remote's branches and tags (or the given refspecs) into the cache."""
        await self.ensure()
        argv = [
            f"--git-dir={self.path}",
            # Automatic gc in the foreground: a detached one would outlive the job.
            "-c",
            "gc.autoDetach=false",
            "fetch",
            "--quiet",
            "--force",
            *(() if refspecs else ("--prune",)),
            "--end-of-options",
            self.url,
            *(refspecs or _REFSPECS),
        ]
        for attempt in range(1, _FETCH_ATTEMPTS + 1):
            try:
                await self.run(argv, timeout=self.fetch_timeout)
            except GitError as exc:
                # Another job fetching into the same cache holds a ref lock.
                if attempt == _FETCH_ATTEMPTS or ".lock" not in exc.detail:
                    raise
                await asyncio.sleep(0.3 * attempt)
            else:
                break
        if not refspecs:
            self._fetched = True

    async def commit(self, rev: str) -> str | None:
        """The full SHA ``rev`` names in the cache, or None; ``rev`` must be validated."""
        result = await self.git(
            "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}", check=False
        )
        sha = result.stdout.strip()
        return sha if result.ok and sha else None

    async def ensure_commit(self, sha: str) -> str:
        """The full SHA of commit ``sha`` (validated hex), fetching it when the cache lacks it."""
        found = await self.commit(sha)
        if found is None and not self._fetched:
            await self.fetch()
            found = await self.commit(sha)
        if found is None and len(sha) == 40:
            # A commit no branch or tag contains any more (force-pushed away) may
            # still be fetchable by id; servers that refuse simply fail here.
            # Kept under a ref of ocore's own, so gc cannot drop it again.
            with contextlib.suppress(GitError):
                await self.fetch(f"{sha}:refs/ocore/commits/{sha}")
            found = await self.commit(sha)
        if found is None:
            raise RefNotFound(f"commit {sha} not found in {self.label}")
        return found

    def _failure(self, argv: Sequence[str], exc: CommandFailed) -> GitError:
        output = exc.output.strip()
        lower = output.lower()
        lines = [line.strip() for line in output.splitlines() if line.strip()]
        # git's own diagnosis is its first fatal/error line; hints follow it.
        reason = next(
            (line for line in lines if line.startswith(("fatal:", "error:"))),
            lines[-1] if lines else exc.detail,
        )[:300]
        command = _subcommand(argv)
        where = self.label
        if any(marker in lower for marker in _HOST_KEY_MARKERS):
            return GitAuthFailed(
                f"the ssh host key of {where} is not trusted or has changed: {reason}"
            )
        if any(marker in lower for marker in _AUTH_MARKERS):
            return GitAuthFailed(f"git could not authenticate to {where}: {reason}")
        if command == "fetch" and any(marker in lower for marker in _MISSING_REPO_MARKERS):
            return GitError(f"repository {where} not found or not readable: {reason}")
        return GitError(f"git {command} failed for {where}: {reason}")


def _subcommand(argv: Sequence[str]) -> str:
    """The git subcommand in ``argv``, past global options such as ``-c name=value``."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("-c", "-C"):
            skip = True
        elif not arg.startswith("-"):
            return arg
    return "git"
