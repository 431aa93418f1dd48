"""Validation, quoting and output handling shared by the SSH and local hosts."""

from __future__ import annotations

import asyncio
import codecs
import posixpath
import re
import secrets
import shlex
from collections import deque
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ocore.core.errors import CommandFailed, CommandTimeout

_T = TypeVar("_T")

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# The remote shell prints its pid (= the process group sshd made for the
# session) on stderr before exec'ing the command, so a timeout can kill the
# whole group. SSH "signal" requests are no substitute: OpenSSH refuses them
# for root logins.
PGID_MARKER = b"ocore-pgid:"
# A command dies with what runs it: its SSH connection (the sshd that started
# it) or, on this machine, the ocore process. Otherwise a worker killed mid-job
# leaves a pg_dump or an ``odoo-bin -u`` working on without it, on the very
# database the job's retry restores or updates. util-linux's setpriv sets the
# parent-death signal, which the command's own exec keeps and a fork clears:
# what ``setsid -f`` detaches on purpose (an instance's Odoo) lives on. SIGTERM:
# Odoo rolls its transaction back, pg_dump cancels its queries.
DIE_WITH_PARENT = ("setpriv", "--pdeathsig", "TERM", "--")
MAX_LINE = 64 * 1024
TAIL_LINES = 60
TAIL_CHARS = 8000


def check_argv(argv: Sequence[str]) -> tuple[str, ...]:
    if isinstance(argv, str | bytes) or not isinstance(argv, list | tuple):
        raise TypeError("a command is a list or tuple of arguments, never a string")
    if not argv:
        raise ValueError("a command needs at least a program name")
    for arg in argv:
        if not isinstance(arg, str):
            raise TypeError(f"command arguments must be str, got {type(arg).__name__}")
        if "\0" in arg:
            raise ValueError("command arguments must not contain NUL bytes")
    program = argv[0]
    # A leading '-' would be read as an option by exec/env, a '=' as an assignment by env.
    if not program or program.startswith("-") or "=" in program:
        raise ValueError(f"invalid program name {program!r}")
    return tuple(argv)


def check_env(env: Mapping[str, str] | None) -> dict[str, str]:
    if env is None:
        return {}
    checked: dict[str, str] = {}
    for name, value in env.items():
        if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
            raise ValueError(f"invalid environment variable name {name!r}")
        if not isinstance(value, str) or "\0" in value:
            raise ValueError(f"environment variable {name} must be a str without NUL bytes")
        checked[name] = value
    return checked


def check_path(path: str, what: str = "path") -> str:
    """Host paths must be absolute: a relative one means different things over SSH and locally."""
    if not isinstance(path, str) or not path.startswith("/") or "\0" in path:
        raise ValueError(f"{what} must be an absolute path without NUL bytes, got {path!r}")
    return path


def check_mode(mode: int) -> int:
    if not isinstance(mode, int) or not 0 <= mode <= 0o7777:
        raise ValueError(f"invalid file mode {mode!r}")
    return mode


def check_port(port: int) -> int:
    if not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"invalid port {port!r}")
    return port


def temp_sibling(path: str) -> str:
    """A unique name next to ``path``, so the final rename stays on one filesystem."""
    head, tail = posixpath.split(path)
    if not tail:
        raise ValueError(f"{path!r} names a directory, not a file")
    return posixpath.join(head, f".{tail}.{secrets.token_hex(6)}.tmp")


# Values passed through ``env=`` never appear in the remote command line:
# sshd runs ``$SHELL -c LINE``, and LINE stays readable by every user of the
# host in /proc/<pid>/cmdline (ps) for as long as that shell lives; the old
# ``exec /usr/bin/env -- K=V ... argv`` exposed e.g. PGPASSWORD there.
#
# How the values travel instead, and why:
# - The SSH "env" channel request is no option: OpenSSH silently drops every
#   variable that its AcceptEnv does not list, and by default it lists none
#   (Debian: LANG LC_* only).
# - An SFTP-written 0600 file that the prelude sources and deletes puts the
#   secret on the host's disk, costs another session and several round trips
#   per command, and stays behind when the link drops (or the command is
#   killed) between the upload and the prelude's rm; removing it then needs
#   yet another session that may never come.
# - So the values go through the channel's stdin, ahead of the command's own
#   input: one line of shell code (``unset``, then ``export`` with every value
#   ``shlex.quote``d) that the fixed prelude below reads with the ``read``
#   builtin. Shells read a pipe one byte at a time there, precisely so that
#   ``{ read -r line; cat; }`` leaves the rest for the next reader: the
#   command inherits its stdin untouched, and without ``stdin=`` it sees EOF
#   right after that line, as it used to see /dev/null. Nothing touches the
#   disk and nothing is left to clean up, whatever happens to the command.
#
# The prelude is a constant. It moves the line into the positional parameters
# (shell memory, never a command line), with a newline as ``$2`` that the line
# splices between the quoted pieces of multi-line values, and evals it. Its
# helper variable is gone before the eval, so any valid name may be set;
# ``unset`` strips bash's dynamic variables (RANDOM, SECONDS, ...) of their
# magic first. A name the login shell keeps read-only (bash: UID, EUID, PPID,
# SHELLOPTS, ...) cannot be set: that fails with status 125, as env(1) does
# when it cannot do its job; so does a line cut short.
ENV_STATUS = 125
ENV_PRELUDE = (
    f"IFS= read -r ocore_env || exit {ENV_STATUS}\n"
    "set -- \"$ocore_env\" '\n'\n"
    "unset -v ocore_env\n"
    f'eval "$1" || exit {ENV_STATUS}\n'
    "set --"
)


def env_script(env: Mapping[str, str]) -> bytes:
    """The line the prelude reads from stdin: shell code that exports ``env``."""
    names = " ".join(env)
    # '"$2"' is the prelude's newline: the line itself must not contain one.
    values = ('"$2"'.join(shlex.quote(part) for part in v.split("\n")) for v in env.values())
    assignments = " ".join(f"{name}={value}" for name, value in zip(env, values, strict=True))
    return f"unset -v {names}; export {assignments}\n".encode()


def shell_command(
    argv: Sequence[str], cwd: str | None, *, merge_stderr: bool, env_on_stdin: bool
) -> str:
    """The line sshd hands to the login shell; every argument is a quoted literal."""
    steps = [f"printf '{PGID_MARKER.decode()}%s\\n' \"$$\" >&2"]
    if merge_stderr:
        steps.append("exec 2>&1")
    if env_on_stdin:
        steps.append(ENV_PRELUDE)
    if cwd is not None:
        # A fixed status, whatever the login shell's own code for a failed cd.
        steps.append(f"cd -- {shlex.quote(cwd)} || exit 2")
    command = shlex.join(argv)
    # A host without setpriv runs commands as before (nothing ties them to the connection).
    tied = f"exec {shlex.join(DIE_WITH_PARENT)} {command}"
    steps.append(f"command -v {DIE_WITH_PARENT[0]} >/dev/null && {tied}")
    steps.append("exec " + command)
    return "; ".join(steps)


def take_pgid(stderr: bytes) -> tuple[int | None, bytes]:
    """Split the pid marker line off the remote stderr."""
    start = stderr.find(PGID_MARKER)
    if start < 0 or (start > 0 and stderr[start - 1 : start] != b"\n"):
        return None, stderr
    end = stderr.find(b"\n", start)
    if end < 0:
        return None, stderr
    try:
        pgid = int(stderr[start + len(PGID_MARKER) : end])
    except ValueError:
        return None, stderr
    return (pgid if pgid > 1 else None), stderr[:start] + stderr[end + 1 :]


def decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


class LineSplitter:
    """Turns chunks of bytes into text lines; bounded so a newline-free flood cannot eat memory."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial = ""

    def feed(self, data: bytes) -> list[str]:
        text = self._partial + self._decoder.decode(data)
        lines = text.split("\n")
        self._partial = lines.pop()
        while len(self._partial) > MAX_LINE:
            lines.append(self._partial[:MAX_LINE])
            self._partial = self._partial[MAX_LINE:]
        return [line.removesuffix("\r") for line in lines]

    def close(self) -> list[str]:
        rest = self._partial + self._decoder.decode(b"", final=True)
        self._partial = ""
        return [rest.removesuffix("\r")] if rest else []


class Tail:
    """The last lines of output, kept for error messages."""

    def __init__(self) -> None:
        self._lines: deque[str] = deque(maxlen=TAIL_LINES)

    def add(self, line: str) -> None:
        self._lines.append(line)

    def text(self) -> str:
        return tail_text(self._lines)


def tail_text(lines: Iterable[str]) -> str:
    kept = list(lines)[-TAIL_LINES:]
    return "\n".join(kept)[-TAIL_CHARS:]


def describe(argv: Sequence[str]) -> str:
    text = shlex.join(argv)
    return text if len(text) <= 200 else text[:197] + "..."


def command_failed(argv: Sequence[str], status: int, output: str) -> CommandFailed:
    what = f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"
    last = next((line for line in reversed(output.splitlines()) if line.strip()), "")
    detail = f"{describe(argv)} {what}" + (f": {last[:300]}" if last else "")
    return CommandFailed(detail, exit_status=status, output=output)


def command_timeout(argv: Sequence[str], timeout: float) -> CommandTimeout:
    return CommandTimeout(f"{describe(argv)} did not finish within {timeout:g}s and was killed")


def output_tail(stdout: str, stderr: str) -> str:
    return tail_text([*stdout.splitlines(), *stderr.splitlines()])


def deadline(timeout: float | None) -> float | None:
    return None if timeout is None else asyncio.get_running_loop().time() + timeout


async def before(
    when: float | None, awaitable: Awaitable[_T], argv: Sequence[str], seconds: float | None
) -> _T:
    """Await ``awaitable`` unless the command's deadline passes first."""
    try:
        async with asyncio.timeout_at(when):
            return await awaitable
    except TimeoutError:
        raise command_timeout(argv, seconds or 0) from None


@dataclass(frozen=True)
class RemoteCommand:
    args: tuple[str, ...]
    # The line for the SSH exec request: argv, cwd and the fixed prelude only.
    line: str
    # The environment script to send on stdin before anything else, if any.
    stdin_prefix: bytes | None


def remote_command(
    argv: Sequence[str], env: Mapping[str, str] | None, cwd: str | None, *, merge_stderr: bool
) -> RemoteCommand:
    args = check_argv(argv)
    environ = check_env(env)
    workdir = check_path(cwd, "cwd") if cwd is not None else None
    line = shell_command(args, workdir, merge_stderr=merge_stderr, env_on_stdin=bool(environ))
    return RemoteCommand(args, line, env_script(environ) if environ else None)


async def read_pgid(proc: Any) -> tuple[int | None, bytes]:
    """Read an SSH process's stderr up to the pid marker; anything before it is output."""
    noise = b""
    while len(noise) < MAX_LINE:
        line: bytes = await proc.stderr.readline()
        if not line:
            break
        pgid, rest = take_pgid(line)
        if pgid is not None:
            return pgid, noise + rest
        noise += line
    return None, noise
