"""Detached processes on a host: started in their own session, found by pid file, stopped by pid.

A process is started with ``setsid -f`` so it outlives the SSH connection
that started it; its pid goes to a pid file (written before the program
runs: ``exec`` keeps the pid) and its stdio to a log file. A pid read back
is only ever signalled after the caller has recognized the process by its
command line (``cmdline_has``): a pid reused by some other program is never
mistaken for ours.

Used by the native Odoo runtime and by the mail catcher (``ocore.hosts.mailpit``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from ocore.core.errors import HostError, HostFileError, InvalidInput
from ocore.hosts.base import CommandResult, HostConnection

_log = logging.getLogger(__name__)

# Runs in the new session, then becomes the program (exec keeps the pid, so the
# pid file is right before the program starts). The pid also goes to the
# caller's stdout, which stays open until stdio moves to the log file: the
# launch command returns with the pid, and a launch that fails after that
# leaves its reason in the log. User data arrives only as positional arguments.
LAUNCH = (
    "pidfile=$1 log=$2; shift 2; umask 077; "
    'echo "$$" >"$pidfile" && echo "$$" || exit 1; '
    'exec </dev/null >>"$log" 2>&1; '
    'exec "$@"'
)
# The dash/bash builtin: /bin/kill (procps) is not on every minimal host.
KILL = 'kill -s "$1" -- "$2"'
POLL = 0.2
# How often, and how far apart, an empty cmdline is read again (see cmdline_has).
EXEC_RETRIES = 10
EXEC_PAUSE = 0.05

IsOurs = Callable[[int], Awaitable[bool]]


async def launch(
    host: HostConnection, pid_path: str, log_path: str, argv: Sequence[str], *, name: str
) -> CommandResult:
    """Start ``argv`` detached; stdout of the result is the new pid (check it with ``is_ours``).

    ``name`` is the launcher shell's ``$0`` (how it shows in ``ps`` until it execs).
    """
    return await host.run(["setsid", "-f", "sh", "-c", LAUNCH, name, pid_path, log_path, *argv])


async def read_pid(host: HostConnection, pid_path: str) -> int | None:
    """The pid in ``pid_path``; None when the file is missing or holds no plausible pid."""
    try:
        data = await host.read_file(pid_path)
    except HostFileError as exc:
        if exc.missing:
            return None
        raise
    text = data.decode(errors="replace").strip()
    # Garbage (a half-written or foreign file) means "not ours", never a pid to signal.
    return int(text) if text.isascii() and text.isdigit() and 1 < int(text) < 2**22 else None


async def cmdline_has(host: HostConnection, pid: int, argument: str) -> bool:
    """Alive and started with ``argument``; a zombie's cmdline is empty, so it is not.

    A process in the middle of ``execve`` shows an empty cmdline too, for a
    moment: right after ``launch`` that would read as "exited at once". So an
    empty cmdline of a process that is not a zombie is read again, briefly.
    """
    for _ in range(EXEC_RETRIES):
        result = await host.run(["cat", "--", f"/proc/{pid}/cmdline"], check=False)
        if not result.ok:
            return False
        if result.stdout:
            return argument in result.stdout.split("\0")
        if await _is_zombie(host, pid):
            return False
        await asyncio.sleep(EXEC_PAUSE)
    return False


async def _is_zombie(host: HostConnection, pid: int) -> bool:
    """Zombie or gone (both mean: never coming back)."""
    result = await host.run(["cat", "--", f"/proc/{pid}/stat"], check=False)
    # "<pid> (<comm>) <state> ...": comm may hold spaces and parentheses.
    _, _, after_comm = result.stdout.rpartition(")")
    state = after_comm.split()[:1]
    return not result.ok or state in ([], ["Z"], ["X"])


async def send_signal(host: HostConnection, signal: str, target: str) -> None:
    """``kill -s SIGNAL -- TARGET`` (``-PID`` is the process group); a gone process is fine."""
    # "No such process" is fine: it exited between our check and the signal.
    await host.run(["sh", "-c", KILL, "ocore-kill", signal, target], check=False)


async def wait_gone(pid: int, is_ours: IsOurs, seconds: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while await is_ours(pid):
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(POLL)
    return True


async def terminate(
    host: HostConnection, pid: int, is_ours: IsOurs, *, grace: float, what: str
) -> None:
    """SIGTERM, then after ``grace`` seconds SIGKILL to the process group and the process.

    Raises ``HostError`` when it survives SIGKILL. The caller has checked that
    ``pid`` is ours; ``is_ours`` tells when it is gone.
    """
    if grace < 0:
        raise InvalidInput("grace must not be negative", field="grace")
    await send_signal(host, "TERM", str(pid))
    if await wait_gone(pid, is_ours, grace):
        return
    _log.warning("%s ignored SIGTERM for %gs; killing it", what, grace)
    # The whole process group: children (Odoo's workers) go too.
    await send_signal(host, "KILL", f"-{pid}")
    await send_signal(host, "KILL", str(pid))
    if not await wait_gone(pid, is_ours, 10.0):
        raise HostError(f"{what} (pid {pid}) survived SIGKILL")


async def log_tail(host: HostConnection, path: str, lines: int) -> list[str]:
    """The last ``lines`` lines of a log file; [] when it does not exist."""
    # C locale: the "No such file" message is matched below.
    result = await host.run(
        ["tail", "-n", str(lines), "--", path], check=False, env={"LC_ALL": "C"}
    )
    if not result.ok:
        if "No such file" in result.stderr:
            return []
        raise HostError(f"cannot read {path}: {result.stderr.strip()}")
    return result.stdout.splitlines()


__all__ = [
    "KILL",
    "LAUNCH",
    "cmdline_has",
    "launch",
    "log_tail",
    "read_pid",
    "send_signal",
    "terminate",
    "wait_gone",
]
