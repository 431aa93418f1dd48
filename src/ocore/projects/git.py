"""A project's git provider, as the control plane reaches it."""

from __future__ import annotations

from pathlib import Path

from ocore.core.crypto import SecretBox
from ocore.core.errors import InvalidInput
from ocore.git.providers import GitProvider, make_provider
from ocore.hosts import LocalHost
from ocore.projects.models import Project
from ocore.settings import Settings


def project_provider(settings: Settings, box: SecretBox, project: Project) -> GitProvider:
    """GitHub/GitLab through their APIs; plain git runs here with a cache per organization.

    The cache is per organization so that no project can name another
    organization's mirror as its repository.
    """
    token = box.decrypt(project.git_token_encrypted) if project.git_token_encrypted else None
    if project.git_provider == "github":
        return make_provider(project.repository_url, kind="github", token=token)
    if project.git_provider == "gitlab":
        return make_provider(project.repository_url, kind="gitlab", token=token)
    cache = Path(settings.data_dir) / "git-cache" / str(project.organization_id)
    return make_provider(
        project.repository_url, kind="git", host=LocalHost(), cache_root=str(cache)
    )


def check_repository_location(settings: Settings, repository_url: str) -> None:
    """A local repository must not be inside ocore's own data (secrets, other tenants' mirrors)."""
    path = repository_url.removeprefix("file://")
    if not path.startswith("/"):
        return
    data_dir = Path(settings.data_dir).resolve()
    if Path(path).resolve().is_relative_to(data_dir):
        raise InvalidInput("repositoryUrl must not point inside ocore's data directory.")
