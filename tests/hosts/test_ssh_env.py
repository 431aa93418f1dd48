"""Values passed through ``env=`` reach the command but never a command line on the host."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from ocore.core.errors import CommandFailed, CommandTimeout
from ocore.hosts import HostConnection, HostTarget, SSHPool
from ocore.hosts import _command as cmd
from tests.hosts.helpers import PYTHON, drain, eventually, pid_gone, read_pids

PRINT_ENV = "import json, os, sys; print(json.dumps({k: os.environ.get(k) for k in sys.argv[1:]}))"

HOSTILE_VALUES = {
    "V_SUBST": "$(touch {canary})",
    "V_BACKTICK": "`touch {canary}`",
    "V_RM": "'; rm -rf /'",
    "V_QUOTES": "it's \"quoted\" \\ back\\slash \\n '\"'\"'",
    "V_NEWLINES": "line one\nline two\n\n",
    "V_ONLY_NEWLINES": "\n\n",
    "V_CR": "carriage\r\nreturn\r",
    "V_EXPANSIONS": "$HOME ${PATH} $$ $1 $@ * ~ !",
    "V_OPTION": "--not-an-option",
    "V_ASSIGN": "A=B C=D",
    "V_EMPTY": "",
    "V_SPACES": "  spaces  around  ",
    "V_UNICODE": "ünïcödé ✓",
    # What the prelude reads looks like this: the value must not be mistaken for it.
    "V_SCRIPT": "unset -v X; export X='1'\"$2\"'2'\n",
    "V_POSITIONAL": '$1 "$2" \'"$2"\'',
    "V_LONG": "x'y\n" * 20000,
}


def _hostile(canary: Path) -> dict[str, str]:
    return {name: value.replace("{canary}", str(canary)) for name, value in HOSTILE_VALUES.items()}


class CmdlineWatcher:
    """Scans /proc/*/cmdline of every process on this machine until stopped."""

    def __init__(self, *needles: str) -> None:
        self._needles = [needle.encode() for needle in needles]
        self.hits: dict[bytes, list[tuple[int, bytes]]] = {n: [] for n in self._needles}
        self.passes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            for name in os.listdir("/proc"):
                if not name.isdigit():
                    continue
                try:
                    with open(f"/proc/{name}/cmdline", "rb") as f:
                        line = f.read()
                except OSError:
                    continue
                for needle in self._needles:
                    if needle in line:
                        self.hits[needle].append((int(name), line))
            self.passes += 1

    def found(self, needle: str) -> list[tuple[int, bytes]]:
        return self.hits[needle.encode()]

    @contextmanager
    def running(self) -> Iterator[CmdlineWatcher]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join()


def _secret() -> str:
    return f"s3cret-{uuid.uuid4()}"


async def test_env_value_reaches_the_command(host: HostConnection) -> None:
    secret = _secret()
    result = await host.run(["printenv", "PGPASSWORD"], env={"PGPASSWORD": secret})
    assert result.stdout == secret + "\n"
    lines = [
        line async for line in host.stream(["printenv", "PGPASSWORD"], env={"PGPASSWORD": secret})
    ]
    assert lines == [secret]


async def test_env_values_never_appear_in_a_command_line(host: HostConnection) -> None:
    secret, marker = _secret(), f"ocore-watch-{uuid.uuid4()}"
    env = {"PGPASSWORD": secret, "OTHER": f"{secret}\nsecond line"}
    # $0 of the inner shell: a needle the watcher must find, proving it sees these processes.
    script = ["sh", "-c", 'sleep 1; printf "%s" "$PGPASSWORD"', marker]
    lines: list[str] = []
    with CmdlineWatcher(secret, marker).running() as watcher:
        results = await asyncio.gather(
            host.run(script, env=env),
            host.run(script, env=env, stdin=b"some input", cwd="/"),
            drain(host.stream(script, env=env), lines),
        )
    assert results[0].stdout == results[1].stdout == secret
    assert lines == [secret]
    assert watcher.found(marker), "the watcher never saw the commands"
    assert watcher.passes > 10
    assert watcher.found(secret) == []


def test_the_exec_line_does_not_depend_on_the_values() -> None:
    argv = ["printenv", "PGPASSWORD"]
    one = cmd.remote_command(argv, {"PGPASSWORD": "s3cret-one"}, "/srv", merge_stderr=False)
    two = cmd.remote_command(argv, {"PGPASSWORD": "s3cret-two"}, "/srv", merge_stderr=False)
    assert one.line == two.line
    assert "s3cret" not in one.line
    assert cmd.ENV_PRELUDE in one.line
    assert one.stdin_prefix is not None
    assert b"s3cret-one" in one.stdin_prefix
    # One line, however many lines the values span: the prelude reads exactly that much.
    multi = cmd.remote_command(argv, {"A": "1\n2\n", "B": "\n"}, None, merge_stderr=False)
    assert multi.stdin_prefix is not None
    assert multi.stdin_prefix.count(b"\n") == 1
    assert multi.stdin_prefix.endswith(b"\n")
    # Without env= nothing changes: no prelude, nothing sent ahead of stdin.
    plain = cmd.remote_command(argv, None, "/srv", merge_stderr=False)
    assert plain == cmd.remote_command(argv, {}, "/srv", merge_stderr=False)
    assert plain.stdin_prefix is None
    assert cmd.ENV_PRELUDE not in plain.line
    assert plain.line.endswith("exec printenv PGPASSWORD")


async def test_hostile_env_values_arrive_literally(host: HostConnection, tmp_path: Path) -> None:
    canary = tmp_path / "pwned"
    env = _hostile(canary)
    result = await host.run([PYTHON, "-c", PRINT_ENV, *env], env=env, cwd=str(tmp_path))
    assert json.loads(result.stdout) == env
    assert not canary.exists()
    # A stream splits lines longer than 64 KiB: print the long value's length only.
    short = [name for name in env if name != "V_LONG"]
    script = PRINT_ENV.replace("print(", "print(len(os.environ['V_LONG']), ")
    lines = [line async for line in host.stream([PYTHON, "-c", script, *short], env=env)]
    length, printed = lines[0].split(" ", 1)
    assert int(length) == len(env["V_LONG"])
    assert json.loads("\n".join([printed, *lines[1:]])) == {name: env[name] for name in short}
    assert not canary.exists()


async def test_any_valid_name_can_be_set(host: HostConnection, tmp_path: Path) -> None:
    # The prelude's own helpers, shell-special and bash-dynamic names: all plain variables here.
    env = {
        "ocore_n": "7",
        "ocore_l": "l",
        "IFS": "/",
        "CDPATH": "/nonexistent",
        "ENV": "/nonexistent",
        "RANDOM": "4",
        "SECONDS": "5",
        "LINENO": "6",
        "OPTIND": "9",
        "_x": "underscore",
    }
    result = await host.run([PYTHON, "-c", PRINT_ENV, *env], env=env, cwd=str(tmp_path))
    assert json.loads(result.stdout) == env


async def test_env_path_is_used_to_find_the_program(host: HostConnection, tmp_path: Path) -> None:
    program = tmp_path / "ocore-only-here"
    program.write_text("#!/bin/sh\necho found\n")
    program.chmod(0o755)
    path = f"{tmp_path}:/usr/bin:/bin"
    assert (await host.run(["ocore-only-here"], env={"PATH": path})).stdout == "found\n"
    result = await host.run(["ocore-only-here"], env={"PATH": "/nonexistent"}, check=False)
    assert result.exit_status == 127


async def test_env_leaves_the_commands_stdin_alone(host: HostConnection) -> None:
    env = {"PGPASSWORD": _secret(), "MULTI": "a\nb\n"}
    # Input that looks like what the prelude reads, then binary noise.
    data = b"unset -v X; export X=1\n\0binary\xff\n" + os.urandom(100_000)
    digest = (await host.run(["sha256sum"], stdin=data, env=env)).stdout.split()[0]
    assert digest == hashlib.sha256(data).hexdigest()
    assert (await host.run(["cat"], stdin=b"text\n", env=env)).stdout == "text\n"
    assert (await host.run(["cat"], stdin=b"", env=env)).stdout == ""
    # Without stdin the command sees EOF at once instead of hanging, as without env.
    assert (await host.run(["cat"], env=env, timeout=10)).stdout == ""
    assert [line async for line in host.stream(["cat"], env=env, timeout=10)] == []
    big = b"y" * (3 * 1024 * 1024)
    assert (await host.run(["wc", "-c"], stdin=big, env=env)).stdout.strip() == str(len(big))


async def test_env_keeps_exit_statuses(host: HostConnection, tmp_path: Path) -> None:
    env = {"PGPASSWORD": _secret()}
    assert (await host.run(["sh", "-c", "exit 7"], env=env, check=False)).exit_status == 7
    assert (await host.run(["ocore-no-such-program"], env=env, check=False)).exit_status == 127
    result = await host.run(["sh", "-c", "kill -TERM $$"], env=env, check=False)
    assert result.exit_status == -15
    with pytest.raises(CommandFailed) as caught:
        await host.run(["true"], env=env, cwd=str(tmp_path / "missing"))
    assert caught.value.exit_status == 2


def _login_shell_is_bash() -> bool:
    return pwd.getpwuid(os.getuid()).pw_shell.endswith("/bash")


@pytest.mark.skipif(not _login_shell_is_bash(), reason="the test sshd's login shell is not bash")
async def test_a_name_the_login_shell_keeps_read_only_fails_loudly(
    pool: SSHPool, ssh_target: HostTarget
) -> None:
    result = await pool.connection(ssh_target).run(["true"], env={"UID": "0"}, check=False)
    assert result.exit_status == cmd.ENV_STATUS
    assert "UID" in result.stderr


# -- nothing is ever written to disk ------------------------------------------------------

_TEMP_DIRS = (tempfile.gettempdir(), "/var/tmp", "/dev/shm", os.path.expanduser("~"))


def _entries() -> set[str]:
    found: set[str] = set()
    for base in _TEMP_DIRS:
        with suppress(OSError):
            found.update(os.path.join(base, name) for name in os.listdir(base))
    return found


def _holding(paths: set[str], secret: bytes) -> list[str]:
    """The files among ``paths`` (walked if directories) that contain ``secret``."""
    hits: list[str] = []
    for path in paths:
        files = [path]
        if os.path.isdir(path) and not os.path.islink(path):
            files = [os.path.join(d, f) for d, _, names in os.walk(path) for f in names]
        for name in files:
            with suppress(OSError):
                small = os.path.isfile(name) and os.path.getsize(name) < 10 * 1024 * 1024
                if small and secret in Path(name).read_bytes():
                    hits.append(name)
    return hits


@contextmanager
def _no_file_left(secret: str) -> Iterator[None]:
    before = _entries()
    yield
    # Other processes may create entries meanwhile: fine, unless one holds the secret.
    assert _holding(_entries() - before, secret.encode()) == []


def _spawner(pidfile: Path) -> list[str]:
    return ["sh", "-c", f"echo $$ > {pidfile}; sleep 60 & echo $! >> {pidfile}; echo started; wait"]


async def test_no_file_remains_after_success_failure_and_timeout(
    host: HostConnection, tmp_path: Path
) -> None:
    secret = _secret()
    env = {"PGPASSWORD": secret}
    with _no_file_left(secret):
        assert (await host.run(["printenv", "PGPASSWORD"], env=env)).stdout == secret + "\n"
        with pytest.raises(CommandFailed):
            await host.run(["sh", "-c", "exit 3"], env=env, cwd=str(tmp_path))
        with pytest.raises(CommandFailed):
            await drain(host.stream(["sh", "-c", "echo x; exit 4"], env=env), [])

        pidfile = tmp_path / "pids"
        started = time.monotonic()
        with pytest.raises(CommandTimeout):
            await host.run(_spawner(pidfile), env=env, timeout=1.0)
        assert time.monotonic() - started < 10
        pids = read_pids(pidfile)
        assert len(pids) == 2
        assert await eventually(lambda: all(pid_gone(pid) for pid in pids))

        streamed = tmp_path / "stream-pids"
        lines: list[str] = []
        with pytest.raises(CommandTimeout):
            await drain(host.stream(_spawner(streamed), env=env, timeout=1.5), lines)
        assert lines == ["started"]
        pids = read_pids(streamed)
        assert len(pids) == 2
        assert await eventually(lambda: all(pid_gone(pid) for pid in pids))
    # The cwd of the commands included.
    assert _holding({str(tmp_path)}, secret.encode()) == []


# -- the prelude under each POSIX shell on this machine ------------------------------------

_SHELLS = [shell for shell in ("bash", "dash", "sh", "zsh", "ksh", "mksh") if shutil.which(shell)]


@pytest.mark.parametrize("shell", _SHELLS)
def test_prelude_under_each_shell(shell: str, tmp_path: Path) -> None:
    env = _hostile(tmp_path / "pwned")
    remote = cmd.remote_command(
        [PYTHON, "-c", PRINT_ENV + "; print(sys.stdin.read(), end='')", *env],
        env,
        str(tmp_path),
        merge_stderr=False,
    )
    assert remote.stdin_prefix is not None
    stdin = b"the command's own\ninput\n"
    done = subprocess.run(
        [shell, "-c", remote.line],
        input=remote.stdin_prefix + stdin,
        capture_output=True,
        env={"PATH": os.defpath},
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    first, rest = done.stdout.split(b"\n", 1)
    assert json.loads(first) == env
    assert rest == stdin
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("shell", _SHELLS)
def test_prelude_refuses_a_cut_short_environment(shell: str) -> None:
    remote = cmd.remote_command(["echo", "ran"], {"A": "1\n2\n3"}, None, merge_stderr=False)
    assert remote.stdin_prefix is not None
    for cut in (0, 1, len(remote.stdin_prefix) - 1):
        done = subprocess.run(
            [shell, "-c", remote.line],
            input=remote.stdin_prefix[:cut],
            capture_output=True,
            env={"PATH": os.defpath},
            timeout=30,
            check=False,
        )
        assert done.returncode == cmd.ENV_STATUS
        assert b"ran" not in done.stdout
