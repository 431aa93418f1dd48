"""GitCliProvider against real repositories, with git run locally and on a host over SSH."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocore.core.errors import GitError, InvalidInput, RefNotFound
from ocore.git.providers import GitCliProvider, GitProvider, make_provider
from ocore.hosts import HostConnection
from tests.fixtures.gitrepo import GitRepo
from tests.git.conftest import RecordingHost
from tests.git.history import ADA, GRACE, History, at, build_history


@pytest.fixture
def history(repo: GitRepo) -> History:
    return build_history(repo)


@pytest.fixture
def provider(host: HostConnection, repo: GitRepo, cache_root: str) -> GitCliProvider:
    return GitCliProvider(host, repo.url, cache_root=cache_root)


async def test_resolve_branch_tag_and_commit(provider: GitCliProvider, history: History) -> None:
    assert isinstance(provider, GitProvider)
    main = await provider.resolve(branch="main")
    assert main.sha == history.c3
    assert (main.message, main.author_name, main.author_email) == ("Update readme", *ADA)
    assert main.committed_at == at(7200)
    assert main.author_avatar_url is None

    feature = await provider.resolve(branch="feature/x")
    assert feature.sha == history.c5
    assert feature.author_name == GRACE[0]

    tagged = await provider.resolve(tag="v1.0")  # annotated: peeled to its commit
    assert tagged.sha == history.c2
    assert tagged.message == "Add models\n\nLonger body\nwith two lines."
    assert tagged.title == "Add models"
    assert (await provider.resolve(tag="light")).sha == history.c1

    assert (await provider.resolve(commit_sha=history.c1)).sha == history.c1
    short = await provider.resolve(commit_sha=history.c4[:10])
    assert short.sha == history.c4
    assert short.message == "Rename doc"


async def test_branch_moves_are_seen(
    provider: GitCliProvider, repo: GitRepo, history: History
) -> None:
    assert (await provider.resolve(branch="main")).sha == history.c3
    newer = repo.commit({"README.md": "third\n"}, "Third")
    assert (await provider.resolve(branch="main")).sha == newer
    repo.delete_branch("feature/x")
    with pytest.raises(RefNotFound, match="branch 'feature/x' not found"):
        await provider.resolve(branch="feature/x")


async def test_unknown_refs_are_not_found(provider: GitCliProvider, history: History) -> None:
    with pytest.raises(RefNotFound, match="branch 'nope' not found"):
        await provider.resolve(branch="nope")
    with pytest.raises(RefNotFound, match="tag 'v9' not found"):
        await provider.resolve(tag="v9")
    with pytest.raises(RefNotFound, match="commit 0123456789abcdef"):
        await provider.resolve(commit_sha="0123456789abcdef0123456789abcdef01234567")
    # A tag is not a branch, nor the other way round.
    with pytest.raises(RefNotFound):
        await provider.resolve(branch="v1.0")
    with pytest.raises(RefNotFound):
        await provider.resolve(tag="main")


async def test_exactly_one_target(provider: GitCliProvider, history: History) -> None:
    with pytest.raises(InvalidInput, match="exactly one"):
        await provider.resolve()
    with pytest.raises(InvalidInput, match="exactly one"):
        await provider.resolve(branch="main", tag="v1.0")


async def test_commits_since(provider: GitCliProvider, history: History) -> None:
    result = await provider.commits_since(history.c1, "main")
    assert result.total_count == 2
    assert [c.sha for c in result.commits] == [history.c3, history.c2]  # newest first

    result = await provider.commits_since(history.c1, "feature/x", limit=1)
    assert result.total_count == 3
    assert [c.sha for c in result.commits] == [history.c5]

    up_to_date = await provider.commits_since(history.c3, "main")
    assert up_to_date.total_count == 0
    assert up_to_date.commits == []
    # From a commit of another branch: what main has that c5 lacks.
    diverged = await provider.commits_since(history.c5, "main")
    assert [c.sha for c in diverged.commits] == [history.c3]

    with pytest.raises(RefNotFound):
        await provider.commits_since("0" * 40, "main")
    with pytest.raises(RefNotFound):
        await provider.commits_since(history.c1, "gone")
    with pytest.raises(InvalidInput):
        await provider.commits_since(history.c1, "main", limit=0)


async def test_changed_files(provider: GitCliProvider, history: History) -> None:
    assert await provider.changed_files(history.c1, history.c2) == [
        "docs/old.txt",
        "sale_x/models.py",
    ]
    # A rename lists both paths: module detection must see a file leave its directory too.
    assert await provider.changed_files(history.c2, history.c4) == ["docs/new.txt", "docs/old.txt"]
    # Direct difference, in both directions (a rollback compares backwards).
    assert await provider.changed_files(history.c3, history.c5) == [
        "README.md",
        "docs/new.txt",
        "docs/old.txt",
        "sale_x/models.py",
    ]
    assert await provider.changed_files(history.c5, history.c3) == await provider.changed_files(
        history.c3, history.c5
    )
    assert await provider.changed_files(history.c3, history.c3) == []


async def test_missing_repository_is_a_git_error(
    host: HostConnection, tmp_path: Path, cache_root: str
) -> None:
    provider = GitCliProvider(host, str(tmp_path / "nowhere.git"), cache_root=cache_root)
    with pytest.raises(GitError, match="not found or not readable"):
        await provider.resolve(branch="main")


async def test_make_provider_picks_plain_git(
    repo: GitRepo, history: History, cache_root: str
) -> None:
    provider = make_provider(repo.url, cache_root=cache_root)
    assert isinstance(provider, GitCliProvider)
    assert (await provider.resolve(branch="main")).sha == history.c3


HOSTILE = [
    "--upload-pack=touch {canary}",
    "-x",
    "a..b",
    "$(touch {canary})",
    "main;touch {canary}",
    "`touch {canary}`",
    "main\ntouch",
    "refs/heads/../../x",
    "HEAD@{{1}}",
    "",
]


@pytest.mark.parametrize("template", HOSTILE)
async def test_hostile_refs_rejected_before_git_runs(
    template: str, recording_host: RecordingHost, tmp_path: Path
) -> None:
    canary = tmp_path / "pwned"
    value = template.format(canary=canary)
    provider = GitCliProvider(
        recording_host, str(tmp_path / "repo.git"), cache_root=str(tmp_path / "c")
    )  # type: ignore[arg-type]
    good = "a" * 40
    attempts = [
        provider.resolve(branch=value),
        provider.resolve(tag=value),
        provider.resolve(commit_sha=value),
        provider.commits_since(good, value),
        provider.commits_since(value, "main"),
        provider.changed_files(value, good),
        provider.changed_files(good, value),
    ]
    for attempt in attempts:
        with pytest.raises(InvalidInput):
            await attempt
    assert recording_host.calls == []
    assert not canary.exists()


@pytest.mark.parametrize(
    "url",
    [
        "--upload-pack=touch {canary}",
        "ext::sh -c touch% {canary}",
        "-oProxyCommand=touch {canary}",
        "relative/path",
        "file:///a/../b",
    ],
)
async def test_hostile_urls_rejected(
    url: str, recording_host: RecordingHost, tmp_path: Path
) -> None:
    canary = tmp_path / "pwned"
    with pytest.raises(InvalidInput):
        GitCliProvider(recording_host, url.format(canary=canary), cache_root=str(tmp_path / "c"))  # type: ignore[arg-type]
    assert recording_host.calls == []
    assert not canary.exists()


async def test_ext_transport_refused_even_if_configured(
    host: HostConnection, tmp_path: Path, cache_root: str
) -> None:
    """GIT_ALLOW_PROTOCOL is set: even a URL that slipped through could not run a command."""
    from ocore.git._cache import git_env

    canary = tmp_path / "pwned"
    result = await host.run(
        ["git", "ls-remote", f"ext::sh -c touch% {canary}"], env=git_env("ssh"), check=False
    )
    assert result.exit_status != 0
    assert "transport 'ext' not allowed" in result.stderr
    assert not canary.exists()
