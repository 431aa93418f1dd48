"""Repositories reached over ssh:// and user@host:path: BatchMode and the known-hosts policy.

The git "server" is the test sshd: git runs ``git-upload-pack`` there as the
test user, reading the same bare repository the other tests use.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ocore.core.errors import GitAuthFailed, InvalidInput
from ocore.git.checkout import checkout
from ocore.git.providers import GitCliProvider, SshSettings
from ocore.hosts import LocalHost
from tests.fixtures.gitrepo import GitRepo
from tests.fixtures.sshd import Sshd


@pytest.fixture
def identity(sshd: Sshd, tmp_path: Path) -> str:
    key = tmp_path / "deploy_key"
    key.write_text(sshd.client_private_key)
    key.chmod(0o600)
    return str(key)


def ssh_url(sshd: Sshd, repo: GitRepo) -> str:
    return f"ssh://{sshd.username}@{sshd.host}:{sshd.port}{repo.origin}"


async def test_first_key_is_learned_then_pinned(
    sshd: Sshd, repo: GitRepo, identity: str, tmp_path: Path
) -> None:
    sha = repo.commit({"a.txt": "a"}, "first")
    known = tmp_path / "known_hosts"
    settings = SshSettings(known_hosts_file=str(known), identity_file=identity)
    provider = GitCliProvider(
        LocalHost(), ssh_url(sshd, repo), cache_root=str(tmp_path / "c"), ssh=settings
    )
    assert (await provider.resolve(branch="main")).sha == sha
    # Trust on first use: the server's key is now recorded...
    assert sshd.host_public_key.split()[1] in known.read_text()
    # ...and a server showing another key is refused from then on.
    sshd.restart(new_host_key=True)
    try:
        with pytest.raises(GitAuthFailed, match="host key"):
            await provider.resolve(branch="main")
    finally:
        known.unlink()


async def test_strict_mode_accepts_only_preloaded_keys(
    sshd: Sshd, repo: GitRepo, identity: str, tmp_path: Path
) -> None:
    sha = repo.commit({"a.txt": "a"}, "first")
    known = tmp_path / "known_hosts"
    known.write_text("")
    strict = SshSettings(known_hosts_file=str(known), identity_file=identity, strict=True)
    url = ssh_url(sshd, repo)
    provider = GitCliProvider(LocalHost(), url, cache_root=str(tmp_path / "c"), ssh=strict)
    with pytest.raises(GitAuthFailed, match="host key"):
        await provider.resolve(branch="main")
    assert known.read_text() == ""  # strict never adds keys

    known.write_text(f"[{sshd.host}]:{sshd.port} {sshd.host_public_key}\n")
    assert (await provider.resolve(branch="main")).sha == sha


@pytest.fixture
def stranger_key(tmp_path: Path) -> str:
    """A key the git server has never heard of."""
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    return str(other)


async def test_refused_key_fails_fast_without_prompting(
    sshd: Sshd, repo: GitRepo, stranger_key: str, tmp_path: Path
) -> None:
    repo.commit({"a.txt": "a"}, "first")
    settings = SshSettings(known_hosts_file=str(tmp_path / "kh"), identity_file=stranger_key)
    url = ssh_url(sshd, repo)
    provider = GitCliProvider(LocalHost(), url, cache_root=str(tmp_path / "c"), ssh=settings)
    with pytest.raises(GitAuthFailed, match="could not authenticate"):
        await provider.resolve(branch="main")


async def test_checkout_over_ssh_url(
    sshd: Sshd, repo: GitRepo, identity: str, tmp_path: Path
) -> None:
    sha = repo.commit({"a.txt": "a"}, "first")
    settings = SshSettings(known_hosts_file=str(tmp_path / "kh"), identity_file=identity)
    dest = tmp_path / "checkout"
    done = await checkout(
        LocalHost(),
        ssh_url(sshd, repo),
        sha,
        str(dest),
        cache_root=str(tmp_path / "c"),
        ssh=settings,
    )
    assert done == sha
    assert (dest / "a.txt").read_text() == "a"


def test_settings_paths_must_be_absolute() -> None:
    with pytest.raises(InvalidInput):
        SshSettings(known_hosts_file="known_hosts").command("/var/cache/ocore/git")
    with pytest.raises(InvalidInput):
        SshSettings(identity_file="../key").command("/var/cache/ocore/git")
    command = SshSettings(identity_file="/etc/ocore/key with space").command("/c")
    assert "'/etc/ocore/key with space'" in command
    assert "BatchMode=yes" in command
    assert "StrictHostKeyChecking=accept-new" in command
    assert "UserKnownHostsFile=/c/known_hosts" in command
