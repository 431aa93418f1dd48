"""run/stream against a real sshd and against this machine, same expectations."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from contextlib import aclosing
from pathlib import Path

import pytest

from ocore.core.errors import CommandFailed, CommandTimeout
from ocore.hosts import HostConnection
from tests.hosts.helpers import PYTHON, drain, eventually, pid_gone, read_pids

PRINT_ARGV = "import json, sys; print(json.dumps(sys.argv[1:]))"


async def test_run_returns_output_and_status(host: HostConnection) -> None:
    result = await host.run(["sh", "-c", "echo out; echo err >&2"])
    assert result.exit_status == 0
    assert result.ok
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"
    assert result.argv == ("sh", "-c", "echo out; echo err >&2")


async def test_non_zero_exit_raises_with_status_and_output_tail(host: HostConnection) -> None:
    script = "for i in $(seq 1 300); do echo line$i; done; echo boom >&2; exit 3"
    with pytest.raises(CommandFailed) as caught:
        await host.run(["sh", "-c", script])
    err = caught.value
    assert err.exit_status == 3
    assert "line300" in err.output
    assert "boom" in err.output
    assert "line1\n" not in err.output  # only the tail is kept
    assert "exited with status 3" in err.detail


async def test_check_false_returns_failed_result(host: HostConnection) -> None:
    result = await host.run(["sh", "-c", "exit 7"], check=False)
    assert result.exit_status == 7
    assert not result.ok


async def test_missing_program_is_status_127(host: HostConnection) -> None:
    result = await host.run(["ocore-no-such-program"], check=False)
    assert result.exit_status == 127
    with pytest.raises(CommandFailed) as caught:
        await host.run(["ocore-no-such-program"])
    assert caught.value.exit_status == 127


async def test_death_by_signal_is_negative_status(host: HostConnection) -> None:
    result = await host.run(["sh", "-c", "kill -TERM $$"], check=False)
    assert result.exit_status == -15


HOSTILE = [
    "$(touch {canary})",
    "`touch {canary}`",
    "; touch {canary}",
    "&& touch {canary}",
    "| touch {canary}",
    "> {canary}",
    "; rm -rf /tmp/ocore-never-exists",
    'it\'s "quoted" \\ back\\slash',
    "line one\nline two\n",
    "  spaces  around  ",
    "$HOME ${PATH} $$ *",
    "--not-an-option",
    "",
    "ünïcödé ✓",
]


async def test_hostile_arguments_arrive_literally(host: HostConnection, tmp_path: Path) -> None:
    canary = tmp_path / "pwned"
    args = [arg.replace("{canary}", str(canary)) for arg in HOSTILE]
    result = await host.run([PYTHON, "-c", PRINT_ARGV, *args])
    assert json.loads(result.stdout) == args
    assert not canary.exists()


async def test_hostile_env_and_cwd_arrive_literally(host: HostConnection, tmp_path: Path) -> None:
    canary = tmp_path / "pwned"
    workdir = tmp_path / "a dir; with $(touch x) 'quotes'"
    workdir.mkdir()
    value = f"$(touch {canary}); `touch {canary}` 'q' \"qq\"\nnext"
    result = await host.run(
        [PYTHON, "-c", "import os; print(repr((os.getcwd(), os.environ['OCORE_X'])))"],
        env={"OCORE_X": value},
        cwd=str(workdir),
    )
    assert result.stdout.strip() == repr((str(workdir), value))
    assert not canary.exists()


async def test_missing_cwd_fails(host: HostConnection, tmp_path: Path) -> None:
    with pytest.raises(CommandFailed) as caught:
        await host.run(["true"], cwd=str(tmp_path / "missing"))
    assert caught.value.exit_status == 2


async def test_stdin_is_fed_and_closed(host: HostConnection) -> None:
    assert (await host.run(["cat"], stdin=b"hello\nworld")).stdout == "hello\nworld"
    assert (await host.run(["cat"], stdin=b"")).stdout == ""
    # Without stdin the command sees EOF at once instead of hanging.
    assert (await host.run(["cat"], timeout=10)).stdout == ""
    big = b"x" * (3 * 1024 * 1024)
    assert (await host.run(["wc", "-c"], stdin=big)).stdout.strip() == str(len(big))


@pytest.mark.parametrize(
    "argv",
    ["echo hi", b"echo hi", [], ["echo", b"x"], ["echo", "a\0b"], ["-rf"], ["A=1", "sh"]],
)
async def test_bad_commands_are_refused(host: HostConnection, argv: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        await host.run(argv)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("env", "cwd"),
    [({"BAD-NAME": "x"}, None), ({"1X": "x"}, None), ({"X": "a\0b"}, None), (None, "relative")],
)
async def test_bad_env_and_cwd_are_refused(
    host: HostConnection, env: dict[str, str] | None, cwd: str | None
) -> None:
    with pytest.raises(ValueError, match=r"environment|cwd"):
        await host.run(["true"], env=env, cwd=cwd)


async def test_stream_yields_lines_as_they_come(host: HostConnection) -> None:
    script = "echo first; sleep 1.5; echo second >&2; echo third; printf 'no newline'"
    seen: list[tuple[str, float]] = []
    async for line in host.stream(["sh", "-c", script]):
        seen.append((line, time.monotonic()))
    assert [line for line, _ in seen] == ["first", "second", "third", "no newline"]
    # The first line arrived while the command was still sleeping.
    assert seen[1][1] - seen[0][1] > 1.0


async def test_stream_failure_raises_after_the_output(host: HostConnection) -> None:
    lines: list[str] = []
    with pytest.raises(CommandFailed) as caught:
        await drain(host.stream(["sh", "-c", "echo working; echo broken >&2; exit 4"]), lines)
    assert lines == ["working", "broken"]
    assert caught.value.exit_status == 4
    assert caught.value.output.endswith("working\nbroken")


async def test_stream_env_and_cwd(host: HostConnection, tmp_path: Path) -> None:
    lines = [
        line
        async for line in host.stream(
            ["sh", "-c", 'pwd; echo "$GREETING"'], env={"GREETING": "hi there"}, cwd=str(tmp_path)
        )
    ]
    assert lines == [str(tmp_path), "hi there"]


def _spawner(pidfile: Path) -> list[str]:
    # The shell and a background child both record their pids, then wait.
    return ["sh", "-c", f"echo $$ > {pidfile}; sleep 60 & echo $! >> {pidfile}; echo started; wait"]


async def test_stream_timeout_kills_the_remote_processes(
    host: HostConnection, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pids"
    lines: list[str] = []
    started = time.monotonic()
    with pytest.raises(CommandTimeout):
        await drain(host.stream(_spawner(pidfile), timeout=1.5), lines)
    assert lines == ["started"]
    assert time.monotonic() - started < 10
    pids = read_pids(pidfile)
    assert len(pids) == 2
    assert await eventually(lambda: all(pid_gone(pid) for pid in pids))


async def test_run_timeout_kills_the_remote_processes(host: HostConnection, tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    with pytest.raises(CommandTimeout):
        await host.run(_spawner(pidfile), timeout=1.0)
    pids = read_pids(pidfile)
    assert len(pids) == 2
    assert await eventually(lambda: all(pid_gone(pid) for pid in pids))


async def test_leaving_a_stream_early_kills_the_command(
    host: HostConnection, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pids"
    async with aclosing(host.stream(_spawner(pidfile), timeout=30)) as lines:
        async for line in lines:
            assert line == "started"
            break
    pids = read_pids(pidfile)
    assert len(pids) == 2
    assert await eventually(lambda: all(pid_gone(pid) for pid in pids))


async def test_cancelled_run_kills_the_command(host: HostConnection, tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    task = asyncio.create_task(host.run(_spawner(pidfile), timeout=30))
    assert await eventually(lambda: len(read_pids(pidfile)) == 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    pids = read_pids(pidfile)
    assert await eventually(lambda: all(pid_gone(pid) for pid in pids))


async def test_concurrent_commands(host: HostConnection) -> None:
    # More than OpenSSH's 10 sessions per connection: the pool queues them.
    results = await asyncio.gather(
        *(host.run(["sh", "-c", f"sleep 0.2; echo {i}"]) for i in range(14))
    )
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(14)]


async def test_local_command_dies_with_the_ocore_process(tmp_path: Path) -> None:
    """kill -9 of the process that runs a LocalHost command (a worker) ends the command too."""
    pidfile = tmp_path / "pid"
    runner = (
        "import asyncio, sys\n"
        "from ocore.hosts import LocalHost\n"
        "asyncio.run(LocalHost().run(['sh', '-c', 'echo $$ > ' + sys.argv[1] + '; exec sleep 30']))"
    )
    worker = await asyncio.create_subprocess_exec(sys.executable, "-c", runner, str(pidfile))
    try:
        assert await eventually(lambda: bool(read_pids(pidfile)), timeout=20)
        (pid,) = read_pids(pidfile)
        assert not pid_gone(pid)
    finally:
        worker.kill()
        await worker.wait()
    assert await eventually(lambda: pid_gone(pid))
