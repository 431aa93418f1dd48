"""GitHubProvider and GitLabProvider over real HTTP, against a stand-in answering from a real repo.

Each answer is checked against what git itself says about the same repository.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ocore.core.errors import GitAuthFailed, GitError, GitRateLimited, InvalidInput, RefNotFound
from ocore.git.providers import (
    GitCliProvider,
    GitHubProvider,
    GitLabProvider,
    GitProvider,
    make_provider,
)
from ocore.hosts import LocalHost
from tests.fixtures.forge import Forge, running_forge
from tests.fixtures.gitrepo import GitRepo
from tests.git.history import ADA, History, build_history

TOKEN = "glpat-test-token"


@pytest.fixture
def history(repo: GitRepo) -> History:
    return build_history(repo)


@pytest.fixture
def forge(repo: GitRepo, history: History) -> Iterator[Forge]:
    with running_forge(
        Forge(repos={"acme/addons": repo.origin}, token=TOKEN, users={ADA[1]: "ada-l"})
    ) as forge:
        yield forge


def github(forge: Forge, **options: Any) -> GitHubProvider:
    options.setdefault("token", TOKEN)
    return GitHubProvider("acme/addons", base_url=forge.github_api, **options)


def gitlab(forge: Forge, **options: Any) -> GitLabProvider:
    options.setdefault("token", TOKEN)
    return GitLabProvider("acme/addons", base_url=forge.gitlab_api, **options)


@pytest.fixture(params=["github", "gitlab"])
def rest(request: pytest.FixtureRequest, forge: Forge) -> GitProvider:
    return github(forge) if request.param == "github" else gitlab(forge)


@pytest.fixture
def cli(repo: GitRepo, cache_root: str) -> GitCliProvider:
    return GitCliProvider(LocalHost(), repo.url, cache_root=cache_root)


def same_commit(a: Any, b: Any) -> None:
    assert (a.sha, a.message, a.author_name, a.author_email, a.committed_at) == (
        b.sha,
        b.message,
        b.author_name,
        b.author_email,
        b.committed_at,
    )


async def test_resolve_matches_git(
    rest: GitProvider, cli: GitCliProvider, history: History
) -> None:
    assert isinstance(rest, GitProvider)
    for target in (
        {"branch": "main"},
        {"branch": "feature/x"},
        {"tag": "v1.0"},
        {"tag": "light"},
        {"commit_sha": history.c2},
        {"commit_sha": history.c4[:9]},
    ):
        same_commit(await rest.resolve(**target), await cli.resolve(**target))


async def test_avatars(forge: Forge, history: History) -> None:
    ada = await github(forge).resolve(branch="main")
    assert ada.author_avatar_url is not None
    assert ada.author_avatar_url.startswith("https://avatars.githubusercontent.com/u/")
    # A commit e-mail GitHub knows no user for has no avatar.
    assert (await github(forge).resolve(commit_sha=history.c2)).author_avatar_url is None
    lab = await gitlab(forge).resolve(branch="main")
    assert lab.author_avatar_url is not None
    assert "gravatar" in lab.author_avatar_url
    assert (await gitlab(forge, avatars=False).resolve(branch="main")).author_avatar_url is None


async def test_unknown_refs(rest: GitProvider, history: History) -> None:
    with pytest.raises(RefNotFound, match="branch 'nope' not found"):
        await rest.resolve(branch="nope")
    with pytest.raises(RefNotFound, match="tag 'v9' not found"):
        await rest.resolve(tag="v9")
    with pytest.raises(RefNotFound, match="commit 0123456"):
        await rest.resolve(commit_sha="0123456789abcdef0123456789abcdef01234567")
    with pytest.raises(RefNotFound):
        await rest.commits_since("0123456789abcdef0123456789abcdef01234567", "main")
    with pytest.raises(RefNotFound):
        await rest.commits_since(history.c1, "nope")


async def test_unknown_repository(forge: Forge) -> None:
    with pytest.raises(GitError, match="repository acme/other not found, or the token"):
        await GitHubProvider("acme/other", base_url=forge.github_api, token=TOKEN).resolve(
            branch="main"
        )
    with pytest.raises(GitError, match="project acme/other not found, or the token"):
        await GitLabProvider("acme/other", base_url=forge.gitlab_api, token=TOKEN).resolve(
            branch="main"
        )


async def test_commits_since_matches_git(
    rest: GitProvider, cli: GitCliProvider, history: History
) -> None:
    for since, branch in (
        (history.c1, "main"),
        (history.c1, "feature/x"),
        (history.c5, "main"),
        (history.c3, "main"),
    ):
        ours, theirs = (
            await rest.commits_since(since, branch),
            await cli.commits_since(since, branch),
        )
        assert ours.total_count == theirs.total_count
        assert [c.sha for c in ours.commits] == [c.sha for c in theirs.commits]
    limited = await rest.commits_since(history.c1, "feature/x", limit=2)
    assert limited.total_count == 3
    assert [c.sha for c in limited.commits] == [history.c5, history.c4]


async def test_long_ranges_page_through_github(
    repo: GitRepo, forge: Forge, cli: GitCliProvider, history: History
) -> None:
    for n in range(130):
        repo.commit({"counter.txt": f"{n}\n"}, f"Commit {n}", push=None)
    repo.push("main")
    ours = await github(forge).commits_since(history.c3, "main", limit=120)
    theirs = await cli.commits_since(history.c3, "main", limit=120)
    assert ours.total_count == theirs.total_count == 130
    assert [c.sha for c in ours.commits] == [c.sha for c in theirs.commits]
    assert ours.commits[0].message == "Commit 129"
    assert len(ours.commits) == 120


async def test_changed_files_match_git(
    rest: GitProvider, cli: GitCliProvider, history: History
) -> None:
    pairs = [
        (history.c1, history.c3),  # ahead
        (history.c3, history.c1),  # behind: a rollback
        (history.c2, history.c4),  # a rename
        (history.c3, history.c5),  # diverged
        (history.c5, history.c3),
        (history.c3, history.c3),
    ]
    for old, new in pairs:
        assert await rest.changed_files(old, new) == await cli.changed_files(old, new), (old, new)


async def test_github_file_limit_is_an_error_not_a_short_list(
    repo: GitRepo, forge: Forge, history: History
) -> None:
    big = repo.commit({f"many/f{n}.txt": "x" for n in range(6)}, "Many files")
    forge.max_files = 5
    provider = github(forge)
    provider.max_compare_files = 5
    with pytest.raises(GitError, match="use the git CLI provider"):
        await provider.changed_files(history.c3, big)


async def test_credentials_and_limits(forge: Forge) -> None:
    with pytest.raises(GitAuthFailed, match="invalid or expired"):
        await github(forge, token="wrong").resolve(branch="main")
    with pytest.raises(GitAuthFailed, match="invalid or expired"):
        await gitlab(forge, token="wrong").resolve(branch="main")
    # Private repository without a token: both forges pretend it does not exist.
    with pytest.raises(GitError, match="not found, or the token cannot see it"):
        await github(forge, token=None).resolve(branch="main")
    with pytest.raises(GitError, match="not found, or the token cannot see it"):
        await gitlab(forge, token=None).resolve(branch="main")

    forge.forbidden = True
    with pytest.raises(GitAuthFailed, match="403"):
        await github(forge).resolve(branch="main")
    with pytest.raises(GitAuthFailed, match="403"):
        await gitlab(forge).resolve(branch="main")
    forge.forbidden = False

    forge.rate_limited = True
    with pytest.raises(GitRateLimited) as hub:
        await github(forge).resolve(branch="main")
    assert hub.value.retry_after is not None
    assert 100 <= hub.value.retry_after <= 120
    assert hub.value.status == 503
    with pytest.raises(GitRateLimited) as lab:
        await gitlab(forge).resolve(branch="main")
    assert lab.value.retry_after == 60


async def test_unreachable_api() -> None:
    from tests.fixtures.sshd import free_port

    provider = GitHubProvider("acme/addons", base_url=f"http://127.0.0.1:{free_port()}/api/v3")
    with pytest.raises(GitError, match="unreachable"):
        await provider.resolve(branch="main")


@pytest.mark.parametrize(
    "value", ["--upload-pack=touch /tmp/pwned", "-x", "a..b", "$(id)", "main/../x"]
)
async def test_hostile_refs_never_reach_the_api(
    rest: GitProvider, forge: Forge, value: str
) -> None:
    for attempt in (
        rest.resolve(branch=value),
        rest.resolve(tag=value),
        rest.resolve(commit_sha=value),
        rest.commits_since("a" * 40, value),
        rest.changed_files("a" * 40, value),
    ):
        with pytest.raises(InvalidInput):
            await attempt
    assert forge.requests == []


def test_from_url_and_factory(forge: Forge) -> None:
    hub = GitHubProvider.from_url("git@github.com:acme/addons.git")
    assert hub.repository == "acme/addons"
    assert hub.api.base_url == "https://api.github.com"
    ghe = GitHubProvider.from_url("https://ghe.example.com/acme/addons")
    assert ghe.api.base_url == "https://ghe.example.com/api/v3"
    lab = GitLabProvider.from_url("ssh://git@gitlab.example.com:2222/group/sub/addons.git")
    assert lab.project == "group/sub/addons"
    assert lab.api.base_url == "https://gitlab.example.com/api/v4"

    assert isinstance(make_provider("https://github.com/acme/addons.git"), GitHubProvider)
    assert isinstance(make_provider("git@gitlab.com:acme/addons.git"), GitLabProvider)
    chosen = make_provider(
        "https://git.example.com/acme/addons.git", kind="gitlab", api_base_url=forge.gitlab_api
    )
    assert isinstance(chosen, GitLabProvider)
    assert chosen.api.base_url == forge.gitlab_api
    with pytest.raises(InvalidInput):
        GitHubProvider("acme/../etc")
    with pytest.raises(InvalidInput):
        GitLabProvider("no-namespace")


async def test_factory_provider_talks_to_the_stand_in(forge: Forge, history: History) -> None:
    provider = make_provider(
        "https://ghe.example.com/acme/addons.git",
        kind="github",
        api_base_url=forge.github_api,
        token=TOKEN,
    )
    assert (await provider.resolve(branch="main")).sha == history.c3
