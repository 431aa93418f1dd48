from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, SecretStr

from ocore.core.schemas import InputSchema, Schema, UpdateSchema
from ocore.git.refs import validate_branch_name, validate_repository_url

OdooVersion = Literal["16.0", "17.0", "18.0"]
OdooEdition = Literal["community", "enterprise"]
GitProvider = Literal["local", "ssh", "github", "gitlab"]
TestGate = Literal["block", "warn"]
RepositoryUrl = Annotated[str, Field(max_length=500), AfterValidator(validate_repository_url)]
BranchName = Annotated[str, AfterValidator(validate_branch_name)]
Name = Annotated[str, Field(min_length=1, max_length=120)]
TestTags = Annotated[str, Field(max_length=500, pattern=r"^[A-Za-z0-9_,:/.*+-]*$")]


class ProjectCreate(InputSchema):
    name: Name
    repository_url: RepositoryUrl
    git_provider: GitProvider | None = Field(
        default=None, description="Inferred from the repository URL when left out."
    )
    default_branch: BranchName = "main"
    odoo_version: OdooVersion
    odoo_edition: OdooEdition = "community"
    test_gate_staging: TestGate = "warn"
    test_gate_production: TestGate = "block"
    test_tags: TestTags | None = None
    git_token: SecretStr | None = Field(
        default=None, max_length=1024, description="GitHub/GitLab API token. Write-only."
    )


class ProjectUpdate(UpdateSchema):
    nullable_fields = frozenset({"test_tags", "git_token"})

    name: Name | None = None
    repository_url: RepositoryUrl | None = None
    git_provider: GitProvider | None = None
    default_branch: BranchName | None = None
    odoo_version: OdooVersion | None = None
    odoo_edition: OdooEdition | None = None
    test_gate_staging: TestGate | None = None
    test_gate_production: TestGate | None = None
    test_tags: TestTags | None = None
    git_token: SecretStr | None = Field(default=None, max_length=1024)


class ProjectOut(Schema):
    id: uuid.UUID
    name: str
    repository_url: str
    git_provider: str
    default_branch: str
    odoo_version: str
    odoo_edition: str
    test_gate_staging: str
    test_gate_production: str
    test_tags: str | None
    has_git_token: bool
    created_at: datetime
    updated_at: datetime


class ProjectCreated(ProjectOut):
    webhook_secret: str = Field(
        description="Shown once: configure it as the secret of the repository's webhook."
    )


class WebhookSecret(Schema):
    webhook_secret: str


class ProjectList(Schema):
    projects: list[ProjectOut]
    total: int
    limit: int
    offset: int
