from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from ocore.core.schemas import InputSchema, Schema, UpdateSchema
from ocore.git.refs import validate_branch_name

OdooVersion = Literal["16.0", "17.0", "18.0"]
OdooEdition = Literal["community", "enterprise"]
EnvironmentType = Literal["development", "staging", "production"]
Name = Annotated[str, Field(min_length=1, max_length=120)]

# Used with fullmatch: ``match`` would let a trailing newline through ``$``.
_SLUG = re.compile(r"[a-z][a-z0-9-]{1,62}")
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,63}")
_ADDONS_DIR = re.compile(r"/[A-Za-z0-9._/-]+")
MAX_ENV_VARS = 100
MAX_ENV_VALUE = 4096
# Names Odoo or the runtime sets itself: an instance may not override them.
RESERVED_ENV = frozenset({"PATH", "HOME", "USER", "PGPASSWORD", "PGHOST", "PGUSER", "ODOO_RC"})


def validate_slug(value: str) -> str:
    if not _SLUG.fullmatch(value) or value.endswith("-") or "--" in value:
        raise ValueError(
            "must be 2-63 lowercase letters, digits and single hyphens, starting with a letter"
        )
    return value


def validate_addons_path(value: str) -> str:
    parts = [p.strip() for p in value.split(",") if p.strip()]
    if not parts:
        raise ValueError("must list at least one directory")
    for part in parts:
        if not _ADDONS_DIR.fullmatch(part) or ".." in part.split("/"):
            raise ValueError(f"'{part}' is not an absolute directory path")
    return ",".join(parts)


def validate_env_vars(value: dict[str, str]) -> dict[str, str]:
    if len(value) > MAX_ENV_VARS:
        raise ValueError(f"at most {MAX_ENV_VARS} variables")
    for name, content in value.items():
        if not _ENV_NAME.fullmatch(name):
            raise ValueError(f"'{name[:70]}' is not a variable name (A-Z, 0-9, _)")
        if name in RESERVED_ENV:
            raise ValueError(f"'{name}' is set by ocore and cannot be overridden")
        if len(content) > MAX_ENV_VALUE or "\x00" in content:
            raise ValueError(f"the value of '{name}' is too long or contains a NUL byte")
    return value


Slug = Annotated[str, AfterValidator(validate_slug)]
AddonsPath = Annotated[str, Field(max_length=2000), AfterValidator(validate_addons_path)]
EnvVars = Annotated[dict[str, str], AfterValidator(validate_env_vars)]
BranchName = Annotated[str, AfterValidator(validate_branch_name)]


class InstanceCreate(InputSchema):
    name: Name
    server_id: uuid.UUID
    slug: Slug | None = None
    odoo_version: OdooVersion | None = None
    odoo_edition: OdooEdition | None = None
    template_id: uuid.UUID | None = None
    addons_path: AddonsPath | None = None
    env_vars: EnvVars = Field(default_factory=dict)
    project_id: uuid.UUID | None = None
    branch: BranchName | None = None
    environment_type: EnvironmentType | None = None


class InstanceUpdate(UpdateSchema):
    nullable_fields = frozenset({"addons_path"})

    name: Name | None = None
    addons_path: AddonsPath | None = None
    env_vars: EnvVars | None = None
    mcp_write_enabled: bool | None = None


class ControlRequest(InputSchema):
    action: Literal["start", "stop", "restart"]


class DomainOut(Schema):
    id: uuid.UUID
    domain: str
    is_primary: bool
    is_auto_generated: bool
    dns_provider: str | None
    dns_record_id: str | None
    dns_status: str
    ssl_status: str
    ssl_expires_at: datetime | None
    created_at: datetime


class InstanceOut(Schema):
    id: uuid.UUID
    name: str
    slug: str
    server_id: uuid.UUID
    template_id: uuid.UUID | None
    status: str
    status_message: str | None
    odoo_version: str
    odoo_edition: str
    addons_path: str | None
    env_vars: dict[str, str]
    http_port: int
    http_port_host: int | None
    longpolling_port: int
    longpolling_port_host: int | None
    workers: int
    limit_memory_soft: int
    limit_memory_hard: int
    limit_time_cpu: int
    limit_time_real: int
    max_cron_threads: int
    log_level: str
    active_color: str
    auto_subdomain: str | None
    domains: list[DomainOut]
    mcp_write_enabled: bool
    restart_required: bool = Field(
        description="A setting changed that takes effect at the next restart or deploy."
    )
    health_score: int | None
    health_score_grade: str | None
    health_score_updated_at: datetime | None
    last_seen_at: datetime | None
    last_restart_at: datetime | None
    restart_count: int
    wkhtmltopdf_status: str | None
    wkhtmltopdf_version: str | None
    enterprise_build_id: str | None
    enterprise_deployed_at: datetime | None
    enterprise_update_available: bool
    created_at: datetime
    updated_at: datetime


class InstanceList(Schema):
    instances: list[InstanceOut]
    total: int
    limit: int
    offset: int


class InstanceHealth(Schema):
    id: uuid.UUID
    slug: str
    status: str
    status_message: str | None
    last_seen_at: datetime | None


class HealthFactor(Schema):
    name: str
    score: int
    weight: float
    weighted: float
    details: str


class HealthScore(Schema):
    score: int
    grade: str
    computed_at: datetime
    factors: list[HealthFactor]


class Accepted(Schema):
    message: str
    job_id: uuid.UUID | None = None


def instance_out(instance: Any, domains: list[Any]) -> InstanceOut:
    data = {name: getattr(instance, name) for name in InstanceOut.model_fields if name != "domains"}
    return InstanceOut(**data, domains=[DomainOut.model_validate(d) for d in domains])
