"""Every host command is an argument list, and no value in it is ever read by a shell.

- Properties against both ``HostConnection`` implementations, the local one and
  SSH to the test sshd (where the remote login shell does parse a line: ocore's
  quoting must make every value a literal): hostile arguments, environment values,
  working directories and file names arrive byte for byte.
- Strings, bytes, non-string arguments, NUL bytes, option-like program names,
  bad environment names and relative paths are refused before anything runs.
- A static check over ``src/ocore``: nothing spawns a process but the two host
  implementations, nothing uses a shell on purpose, and no host command is
  written as a string.
"""

from __future__ import annotations

import ast
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ocore.hosts import HostConnection, LocalHost, SSHPool
from tests.conftest import repo_root
from tests.fixtures.sshd import Sshd, running_sshd
from tests.hosts.helpers import make_target
from tests.security.hostile import SLOW, fragments, hostile_text

SRC = repo_root() / "src" / "ocore"
no_nul = hostile_text.filter(lambda s: "\x00" not in s)
# A single path component: no "/", not "." or "..", not empty.
dir_names = fragments.filter(lambda s: "\x00" not in s and "/" not in s and s not in (".", ".."))
# Prints the working directory, then each positional argument NUL-terminated.
ECHO = 'pwd -P; printf "%s\\0" "$OCORE_VALUE" "$@"'


@pytest.fixture(scope="module")
def sshd() -> Iterator[Sshd]:
    with running_sshd() as server:
        yield server


@pytest.fixture
async def ssh_pool() -> AsyncIterator[SSHPool]:
    pool = SSHPool(connect_timeout=10.0)
    yield pool
    await pool.close_all()


@pytest.fixture(params=["local", "ssh"])
def host(request: pytest.FixtureRequest, sshd: Sshd, ssh_pool: SSHPool) -> HostConnection:
    if request.param == "local":
        return LocalHost()
    return ssh_pool.connection(make_target(sshd))


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # sshd logs in as this same user on this machine: both hosts see this directory.
    return tmp_path_factory.mktemp("hostile")


# Would leave a file behind if any shell ever ran them (harmless otherwise).
PWNED = "ocore-pwned"
PAYLOADS = [
    f"$(touch {PWNED})",
    f"`touch {PWNED}`",
    f"; touch {PWNED}",
    f"' ; touch {PWNED} ; '",
    f'" ; touch {PWNED} ; "',
    f"\ntouch {PWNED}\n",
    f"| touch {PWNED}",
    f"&& touch {PWNED}",
    f"> {PWNED}",
]


@SLOW
@given(value=no_nul)
@example(value=" ".join(PAYLOADS))
@example(value="-n")
@example(value="'\"'\"'")
@example(value="a\nb\r\nc\\")
async def test_printf_gets_exactly_the_argument(
    host: HostConnection, scratch: Path, value: str
) -> None:
    result = await host.run(["printf", "%s", value], cwd=str(scratch))
    assert result.stdout == value
    assert result.argv == ("printf", "%s", value)
    assert not (scratch / PWNED).exists()


@SLOW
@given(
    args=st.lists(no_nul, max_size=4),
    value=no_nul,
    dirname=dir_names,
)
@example(args=PAYLOADS, value="\n".join(PAYLOADS), dirname=f"; touch {PWNED}")
@example(args=["$HOME", "*", "~", "--", "-c", ""], value="", dirname=" ")
async def test_arguments_environment_and_cwd_arrive_verbatim(
    host: HostConnection, scratch: Path, args: list[str], value: str, dirname: str
) -> None:
    workdir = scratch / dirname
    workdir.mkdir(exist_ok=True)
    result = await host.run(
        ["sh", "-c", ECHO, "sh", *args], env={"OCORE_VALUE": value}, cwd=str(workdir)
    )
    expected = f"{workdir}\n{value}\0" + "".join(f"{arg}\0" for arg in args)
    assert result.stdout == expected
    assert result.stderr == ""
    assert not (scratch / PWNED).exists()
    assert not (workdir / PWNED).exists()


@SLOW
@given(value=no_nul.filter(lambda s: "\n" not in s and "\r" not in s and s != ""))
async def test_streamed_commands_get_exactly_the_argument(host: HostConnection, value: str) -> None:
    async with aclosing(host.stream(["printf", "%s", value])) as lines:
        assert [line async for line in lines] == [value]


@SLOW
@given(name=dir_names, data=st.binary(max_size=64))
@example(name="$(id).conf", data=b"x")
@example(name="a\nb", data=b"")
async def test_file_names_are_taken_literally(
    host: HostConnection, scratch: Path, name: str, data: bytes
) -> None:
    folder = scratch / f"files-{type(host).__name__}"
    folder.mkdir(exist_ok=True)
    before = set(os.listdir(folder))
    target = folder / name
    await host.write_file(str(target), data, mode=0o640)
    assert set(os.listdir(folder)) - before <= {name}
    assert target.read_bytes() == data
    assert await host.read_file(str(target)) == data


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        ("printf hi", TypeError),
        (b"printf hi", TypeError),
        (["printf", 1], TypeError),
        (["printf", b"hi"], TypeError),
        ([], ValueError),
        ([""], ValueError),
        (["-c", "id"], ValueError),
        (["LD_PRELOAD=/tmp/x.so", "id"], ValueError),
        (["printf", "a\0b"], ValueError),
    ],
)
async def test_anything_but_an_argument_list_is_refused(
    host: HostConnection, argv: object, error: type[Exception]
) -> None:
    with pytest.raises(error):
        await host.run(argv)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("env", "cwd"),
    [
        ({"A B": "x"}, None),
        ({"A=B": "x"}, None),
        ({"A;id": "x"}, None),
        ({"$(id)": "x"}, None),
        ({"": "x"}, None),
        ({"A\n": "x"}, None),
        ({"A": "x\0y"}, None),
        (None, "relative/dir"),
        (None, "~/x"),
        (None, "/tmp/a\0b"),
    ],
)
async def test_bad_environments_and_directories_are_refused(
    host: HostConnection, env: dict[str, str] | None, cwd: str | None
) -> None:
    with pytest.raises(ValueError, match=r"environment variable|cwd"):
        await host.run(["true"], env=env, cwd=cwd)


# --- static: how processes are started anywhere in src/ocore -------------------------------

# Only these may start a process, each through one narrow, reviewed path.
SPAWNERS = {
    "hosts/local.py": {"create_subprocess_exec"},
    "hosts/ssh.py": {"create_process", "run"},
}
# Calls that hand a string to a shell, or start processes outside the host layer.
SHELL_CALLS = {
    "system",
    "popen",
    "create_subprocess_shell",
    "create_subprocess_exec",
    "getoutput",
    "getstatusoutput",
    "spawn",
    "execl",
    "execle",
    "execlp",
    "execv",
    "execve",
    "execvp",
    "execvpe",
    "spawnl",
    "spawnv",
    "posix_spawn",
    "posix_spawnp",
    "create_process",
}
# Modules that only exist to start processes.
PROCESS_MODULES = {"subprocess", "pty", "commands", "pexpect", "sh", "plumbum"}
# Where a shell line is built, and why it has to be one.
SHELL_LINE_BUILDERS = {
    # The SSH protocol runs a command as one line for the login shell: quoted here.
    "hosts/_command.py",
    # git hands GIT_SSH_COMMAND to a shell: every word of it is quoted.
    "git/_cache.py",
}


# String first arguments to a .run/.stream that is not a host's: (file, callee) -> why.
NOT_HOST_CALLS = {
    ("cli.py", "uvicorn.run"): "the ASGI app's import path",
    ("client/http.py", "self._http.stream"): "an HTTP method of the API client",
}


def sources() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(SRC.rglob("*.py")):
        yield path.relative_to(SRC).as_posix(), ast.parse(path.read_text(), str(path))


def call_name(node: ast.Call) -> str | None:
    func = node.func
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return None


def is_text(node: ast.expr) -> bool:
    """An expression that builds a string: a literal, an f-string, concatenation, join/format."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str | bytes)
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mod):
        return is_text(node.left) or is_text(node.right)
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and (node.func.attr in ("join", "format") and is_text(node.func.value))
    )


def test_no_shell_and_no_process_outside_the_host_layer() -> None:
    found: list[str] = []
    for name, tree in sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                modules = (
                    [alias.name for alias in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                )
                for module in modules:
                    if module.split(".")[0] in PROCESS_MODULES:
                        found.append(f"{name}:{node.lineno}: imports {module}")
            if not isinstance(node, ast.Call):
                continue
            for keyword in node.keywords:
                if keyword.arg == "shell" and not (
                    isinstance(keyword.value, ast.Constant) and keyword.value.value is False
                ):
                    found.append(f"{name}:{node.lineno}: shell=...")
            called = call_name(node)
            if called in SHELL_CALLS and called not in SPAWNERS.get(name, set()):
                found.append(f"{name}:{node.lineno}: {called}()")
    assert found == [], "processes started outside hosts/local.py and hosts/ssh.py:\n" + "\n".join(
        found
    )


def test_host_commands_are_never_written_as_strings() -> None:
    """``.run``/``.stream`` take an argument list; a string there is a shell command in disguise.

    The one string command is ssh.py's kill of a timed-out process group, whose
    only interpolated value is an ``int``.
    """
    found: list[str] = []
    for name, tree in sources():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or call_name(node) not in ("run", "stream"):
                continue
            if not node.args or not is_text(node.args[0]):
                continue
            first = node.args[0]
            if (name, ast.unparse(node.func)) in NOT_HOST_CALLS:
                continue
            if name == "hosts/ssh.py" and isinstance(first, ast.JoinedStr):
                values = [v for v in first.values if isinstance(v, ast.FormattedValue)]
                if all(
                    isinstance(v.value, ast.Call)
                    and isinstance(v.value.func, ast.Name)
                    and v.value.func.id == "int"
                    for v in values
                ):
                    continue
            found.append(f"{name}:{node.lineno}: {ast.unparse(first)[:80]}")
    assert found == [], "host commands written as strings:\n" + "\n".join(found)


def test_shell_lines_are_built_in_reviewed_places_only() -> None:
    builders = {
        name
        for name, tree in sources()
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr in ("quote", "join")
        and isinstance(node.value, ast.Name)
        and node.value.id == "shlex"
    }
    # describe() in _command.py joins argv for messages only; the rest build shell lines.
    assert builders == SHELL_LINE_BUILDERS


def test_the_ssh_line_is_made_by_the_quoting_function() -> None:
    """ssh.py hands asyncssh only the line that ``_command.remote_command`` quoted."""
    tree = ast.parse((SRC / "hosts" / "ssh.py").read_text())
    lines = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and call_name(node) == "create_process"
    ]
    assert lines, "ssh.py no longer calls create_process: update this test"
    for call in lines:
        assert isinstance(call.args[0], ast.Name), ast.unparse(call)
        assert call.args[0].id == "line", ast.unparse(call)
    # ...and _process (which calls it) only ever gets remote_command(...).line.
    processes = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and call_name(node) == "_process"
    ]
    assert len(processes) >= 2  # run() and stream()
    for call in processes:
        first = call.args[0]
        assert isinstance(first, ast.Attribute), ast.unparse(call)
        assert first.attr == "line", ast.unparse(call)
        assert isinstance(first.value, ast.Name)
        assert first.value.id == "remote"
    assignments = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "remote" for t in node.targets)
    ]
    assert assignments
    for assign in assignments:
        assert isinstance(assign.value, ast.Call)
        assert ast.unparse(assign.value.func) == "cmd.remote_command", ast.unparse(assign)
