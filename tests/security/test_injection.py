"""Injection properties of the validators that stand before a shell, git, SQL, a file or a URL.

Each property feeds hostile values (tests/security/hostile.py) to one validator
and checks both outcomes: a refusal is the project's own validation error, and
an accepted value is one the sink cannot misread: git's own ``check-ref-format``
agrees with it, the host layer's stricter checks pass it, ``odoo.conf`` reads
it back unchanged, the share proxy forwards only a path that means what was
checked. The API-level and host-level properties are in the sibling modules.
"""

from __future__ import annotations

import configparser
import re
import subprocess
from urllib.parse import unquote

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ocore.core.crypto import hash_password, verify_password
from ocore.core.errors import InvalidInput, OcoreError
from ocore.git import refs
from ocore.git.types import checked_branch, checked_sha, select_target
from ocore.hosts import _command as cmd
from ocore.hosts.database_core import check_database_name, quote_ident
from ocore.hosts.odoo import OdooConfig, check_text, render_odoo_conf
from ocore.hosts.runtime.base import check_slug
from ocore.instances.schemas import RESERVED_ENV, validate_env_vars, validate_slug
from ocore.instances.service import database_name, slug_from_name
from ocore.neutralization.odoo_db import ident
from ocore.servers.schemas import ServerCreate
from ocore.shares import rewrite
from ocore.shares.schemas import ShareCreate
from tests.security.hostile import FRAGMENTS, UNIT, fragments, hostile_text

# What ocore lets into a branch name at all (stricter than git).
SAFE_REF = re.compile(r"[A-Za-z0-9._/+@-]+")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def git_accepts_branch(name: str) -> bool:
    """git's own verdict; run from / so that no repository resolves '@{-1}' and the like."""
    done = subprocess.run(
        ["git", "check-ref-format", "--branch", name],
        capture_output=True,
        cwd="/",
        env={"PATH": "/usr/bin:/bin", "GIT_CEILING_DIRECTORIES": "/"},
        check=False,
    )
    return done.returncode == 0


# --- git names ------------------------------------------------------------------------------


@UNIT
@given(hostile_text)
@example("main\n")
@example("feature/x.lock/y")
@example("HEAD")
@example("--upload-pack=touch /tmp/x")
@example("a" * 201)
def test_branch_names_are_refused_or_valid_for_git(name: str) -> None:
    problem = refs.branch_name_problem(name)
    if problem is None:
        assert SAFE_REF.fullmatch(name), name
        assert not name.startswith("-")
        assert len(name) <= 200
        assert git_accepts_branch(name), f"ocore accepts {name!r}, git does not"
        assert checked_branch(name) == name
        assert select_target(None, name, None) == ("tag", name)
        return
    # Refused the project's way, on every path that takes a branch or tag.
    with pytest.raises(ValueError, match="branch name"):
        refs.validate_branch_name(name)
    with pytest.raises(ValueError, match="tag name"):
        refs.validate_tag_name(name)
    with pytest.raises(InvalidInput):
        checked_branch(name)
    with pytest.raises(InvalidInput):
        select_target(name, None, None)


@UNIT
@given(
    st.lists(
        st.sampled_from(["a", "b", "-", ".", "/", "@", "{", ".lock", "HEAD", "+"]),
        min_size=1,
        max_size=8,
    ).map("".join)
)
def test_git_accepted_branch_names_in_ocore_charset_are_accepted(name: str) -> None:
    """The other direction: within its charset, the validator refuses nothing git takes."""
    if name != "@" and SAFE_REF.fullmatch(name) and git_accepts_branch(name):
        assert refs.branch_name_problem(name) is None, name


@UNIT
@given(st.one_of(hostile_text, st.text(alphabet="0123456789abcdefABCDEF\n ", max_size=70)))
@example("abcdef0\n")
def test_commit_shas_are_lowercase_hex_or_refused(sha: str) -> None:
    try:
        assert checked_sha(sha) == sha
    except InvalidInput:
        assert not re.fullmatch(r"[0-9a-f]{7,64}", sha)
    else:
        assert re.fullmatch(r"[0-9a-f]{7,64}", sha), sha


@UNIT
@given(
    st.one_of(
        hostile_text,
        st.builds(
            "{}{}".format,
            st.sampled_from(["https://", "ssh://", "git://", "file://", "/", "git@host:"]),
            fragments,
        ),
    )
)
@example("file://localhost/var/lib/ocore/git-cache/x.git")
@example("file:///var/lib/oco%72e/git-cache/x.git")
@example("file:///srv/x/%2e%2e/y.git")
@example("https://example.com/a.git\n")
def test_repository_urls_are_plain_or_refused(url: str) -> None:
    try:
        refs.validate_repository_url(url)
    except ValueError:
        return
    assert not url.startswith("-")
    assert not CONTROL.search(url)
    assert " " not in url
    # Nothing a shell or git's ext:: transport would act on.
    assert not set(url) & set(";|&$`'\"<>(){}*?!#\\ ^[]"), url
    assert ".." not in url.split("://", 1)[-1].split("/")
    if url.startswith("file://"):
        # git decodes escapes in file:// URLs and ignores their host: the path the
        # project's location check sees must be the one git opens.
        path = url.removeprefix("file://")
        assert path.startswith("/"), url
        assert "%" not in path, url


# --- names that become database names, SQL identifiers, paths -----------------------------


@UNIT
@given(hostile_text)
@example("ab\n")
@example("shop-")
def test_slugs_are_valid_for_the_host_layer_and_postgres(slug: str) -> None:
    try:
        validate_slug(slug)
    except ValueError:
        return
    # The host layer checks again with its own rules: it must agree.
    assert check_slug(slug) == slug
    name = database_name(slug)
    assert check_database_name(name) == name
    assert quote_ident(name) == f'"{name}"'


@UNIT
@given(hostile_text)
@example("Ünïcode shop")
@example("1" * 70)
@example("--")
def test_slugs_derived_from_names_are_valid_or_refused(name: str) -> None:
    try:
        slug = slug_from_name(name)
    except InvalidInput:
        return
    assert check_slug(slug) == slug
    assert check_database_name(database_name(slug))


@UNIT
@given(hostile_text)
def test_sql_identifiers_are_quoted_only_when_plain(name: str) -> None:
    try:
        quoted = quote_ident(name)
    except InvalidInput:
        assert not re.fullmatch(r"[a-z][a-z0-9_]{0,62}", name)
    else:
        assert quoted == f'"{name}"'
        assert re.fullmatch(r"[a-z][a-z0-9_]{0,62}", name)
    try:
        quoted = ident(name)
    except ValueError:
        assert not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", name)
    else:
        assert quoted == f'"{name}"'
        assert '"' not in name


@UNIT
@given(st.dictionaries(hostile_text, hostile_text, max_size=4))
@example({"SHOP_KEY\n": "x"})
@example({"PGPASSWORD": "x"})
@example({"LD_PRELOAD": "/tmp/x.so; touch pwned"})
def test_env_vars_are_refused_or_fit_for_the_host_layer(env: dict[str, str]) -> None:
    try:
        validate_env_vars(env)
    except ValueError:
        return
    for name in env:
        assert re.fullmatch(r"[A-Z_][A-Z0-9_]{0,63}", name), name
        assert name not in RESERVED_ENV
    # What a HostConnection takes as env= (quoted by the SSH side: test_injection_hosts).
    assert cmd.check_env(env) == env


@UNIT
@given(
    st.builds(
        dict,
        host=hostile_text,
        username=hostile_text,
        baseDir=st.builds("/{}".format, hostile_text),
        dbUser=hostile_text,
        nginxListen=hostile_text,
    )
)
@example({"host": "db.example.com\n"})
@example({"username": "root\n"})
@example({"baseDir": "/opt/ocore\n"})
def test_server_fields_are_refused_or_plain(fields: dict[str, str]) -> None:
    body = {"name": "srv", "isLocal": True, **fields}
    try:
        server = ServerCreate.model_validate(body)
    except ValidationError:
        return
    for value in (server.host, server.username, server.base_dir, server.db_user):
        assert not CONTROL.search(value), value
        assert " " not in value, value
        assert not value.startswith("-"), value
    assert cmd.check_path(server.base_dir) == server.base_dir
    assert ".." not in server.base_dir.split("/")
    assert re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", server.username)
    assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", server.db_user)


# --- odoo.conf: passwords and names written into a file -----------------------------------


def conf_options(admin_passwd: str, db_password: str) -> list[tuple[str, str]]:
    conf = OdooConfig(
        version="17.0", admin_passwd=admin_passwd, db_user="odoo", db_password=db_password
    )
    parser = configparser.RawConfigParser(strict=True)
    parser.read_string(render_odoo_conf(conf))
    assert parser.sections() == ["options"]
    return parser.items("options")


@UNIT
@given(hostile_text)
@example("pw\nadmin_passwd = owned")
@example("pw\n[other]")
@example(" padded ")
@example("False")
def test_odoo_conf_values_read_back_exactly_or_are_refused(value: str) -> None:
    try:
        check_text("admin_passwd", value)
    except InvalidInput:
        with pytest.raises(InvalidInput):
            conf_options(value, "plain")
        return
    options = dict(conf_options(value, value))
    assert options["admin_passwd"] == value
    assert options["db_password"] == value
    # The value added no option of its own.
    assert options.keys() == dict(conf_options("plain", "plain")).keys()


@UNIT
@given(hostile_text)
@example(" pw ")
@example("pw\nadmin_passwd = owned")
def test_db_passwords_are_kept_verbatim_or_refused(value: str) -> None:
    try:
        server = ServerCreate.model_validate({"name": "s", "isLocal": True, "dbPassword": value})
    except ValidationError as exc:
        # The refusal never quotes the password back.
        messages = " ".join(str(e["msg"]) for e in exc.errors())
        assert len(value) < 6 or value not in messages
        return
    assert server.db_password is not None
    stored = server.db_password.get_secret_value()
    # Exactly what was sent, and something odoo.conf can hold.
    assert stored == value
    assert check_text("db_password", stored) == value


# --- passwords: to argon2 and nowhere else --------------------------------------------------


@UNIT
@given(st.text(min_size=8, max_size=256).filter(lambda p: "\x00" not in p))
@example("  padded password  ")
@example("\tpw with a tab\n")
def test_share_passwords_are_taken_verbatim(password: str) -> None:
    body = ShareCreate.model_validate({"shareType": "password", "password": password})
    assert body.password is not None
    # Not stripped, not normalized: what the owner types at the login form must match.
    assert body.password.get_secret_value() == password


# argon2 is slow on purpose: a few hostile examples, not hundreds.
@settings(max_examples=2, deadline=None)
@given(fragments.filter(lambda p: "\x00" not in p and len(p) >= 8))
@example("$(touch pwned); `id` | cat 'x\"")
@example("' OR '1'='1 --")
def test_share_passwords_reach_argon2_only(password: str) -> None:
    body = ShareCreate.model_validate({"shareType": "password", "password": password})
    assert body.password is not None
    digest = hash_password(body.password.get_secret_value())
    assert digest.startswith("$argon2id$")
    assert password not in digest
    assert verify_password(digest, password)
    assert not verify_password(digest, password + "x")


@pytest.mark.parametrize("password", ["\ud800abcdefgh", "abcdefgh\udfff"])
def test_passwords_that_are_not_unicode_text_are_refused(password: str) -> None:
    with pytest.raises(ValidationError):
        ShareCreate.model_validate({"shareType": "password", "password": password})
    # A login attempt with one is a wrong password, not a crash.
    assert not verify_password(hash_password("abcdefgh"), password)


# --- share proxy paths ----------------------------------------------------------------------

PATH_SEGMENTS = (
    "web", "WEB", "Web", "%77eb", "%57%45%42", "database", "DataBase", "%64atabase",
    "%44ATABASE", "manager", "selector", "xmlrpc", "XmlRpc", "%78mlrpc", "jsonrpc", "2", "db",
    "..", ".", "%2e", "%2E%2e", ".%2e", "", "%2f", "%2F", "%5c", "\\", "%00", "%25", "%252e",
    "%zz", "%", "a%20b", "caf%C3%A9", "%C3", "\u00e9", ";", "login", "web;", "%0a", "\t",
    "assets", "?x=/web/database", "#frag", "database%00", "//evil.example",
)  # fmt: skip
proxy_paths = st.one_of(
    st.lists(st.sampled_from(PATH_SEGMENTS), min_size=0, max_size=6).map("/".join),
    st.text(max_size=30),
    fragments,
)


def meaning(path: str) -> list[str]:
    """The segments Odoo (werkzeug) would route on: the path decoded once, case-folded."""
    return [segment.lower() for segment in unquote(path).split("/")[1:]]


@UNIT
@given(proxy_paths)
@example("web/database/manager")
@example("%77eb/%64atabase/manager")
@example("web/x/%2e%2e/database/manager")
@example("web%2fdatabase")
def test_share_proxy_forwards_only_what_it_checked(rest: str) -> None:
    raw = f"{rewrite.PREFIX}/{rest}".encode()
    try:
        forwarded = rewrite.upstream_path(raw)
    except (rewrite.BadProxyPath, rewrite.BlockedPath):
        return
    segments = meaning(forwarded)
    assert forwarded.startswith("/")
    assert not forwarded.startswith("//")
    decoded = unquote(forwarded)
    # One decoding gives the final path: nothing is left for a second one to reveal.
    assert "%" not in decoded
    assert unquote(decoded) == decoded
    assert "\\" not in decoded
    assert not CONTROL.search(decoded)
    assert all(s not in ("", ".", "..") for s in segments[:-1]), forwarded
    assert segments[-1] not in (".", ".."), forwarded
    assert segments[0] not in ("xmlrpc", "jsonrpc"), forwarded
    assert segments[:2] != ["web", "database"], forwarded
    # The path forwarded is the one requested (decoded the same way), not a rewrite of it.
    requested = raw.split(b"?", 1)[0].decode()[len(rewrite.PREFIX) :] or "/"
    assert unquote(forwarded) == unquote(requested)


def test_share_proxy_refusals_are_problems() -> None:
    for raw in (b"/api/s-proxy/web/database/manager", b"/api/s-proxy/web/%2e%2e/x"):
        with pytest.raises(OcoreError) as caught:
            rewrite.upstream_path(raw)
        assert caught.value.status in (400, 404)


# --- hostile values never become more than one argument ------------------------------------


# Prints the working directory, then each argument NUL-terminated (no argument holds a NUL).
ECHO_ARGV = ["sh", "-c", 'pwd -P; printf "%s\\0" "$@"', "sh"]


@settings(max_examples=100, deadline=None)
@given(
    args=st.lists(hostile_text.filter(lambda s: "\x00" not in s), min_size=1, max_size=4),
    dirname=fragments.filter(lambda s: "\x00" not in s and "/" not in s and s not in (".", "..")),
)
@example(args=["x; exec y", "$(touch pwned)", "`touch pwned`", "'", "\n"], dirname="; touch pwned")
def test_ssh_command_lines_survive_a_real_shell(
    args: list[str], dirname: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The line sshd hands to the login shell runs exactly argv, in exactly cwd.

    Checked with /bin/sh here; test_injection_hosts runs it through the test sshd.
    """
    workdir = tmp_path_factory.mktemp("cwd") / dirname
    workdir.mkdir()
    argv = [*ECHO_ARGV, *args]
    line = cmd.shell_command(argv, str(workdir), merge_stderr=False, env_on_stdin=False)
    done = subprocess.run(
        ["/bin/sh", "-c", line], capture_output=True, check=True, cwd=workdir.parent
    )
    expected = f"{workdir}\n" + "".join(f"{arg}\0" for arg in args)
    assert done.stdout.decode() == expected
    assert not (workdir / "pwned").exists()
    assert not (workdir.parent / "pwned").exists()


@pytest.mark.parametrize("fragment", [f for f in FRAGMENTS if "\x00" in f])
def test_nul_never_reaches_a_command(fragment: str) -> None:
    with pytest.raises(ValueError, match="NUL"):
        cmd.check_argv(["printf", fragment])
    with pytest.raises(ValueError, match="NUL"):
        cmd.check_env({"X": fragment})
    with pytest.raises(ValueError, match="NUL"):
        cmd.check_path("/tmp/" + fragment)
