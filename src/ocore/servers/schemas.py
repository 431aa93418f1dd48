from __future__ import annotations

import ipaddress
import re
import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, SecretStr, model_validator

from ocore.core.errors import InvalidInput
from ocore.core.schemas import InputSchema, Schema, Secret, UpdateSchema
from ocore.hosts.odoo import check_text

# All used with fullmatch: ``match`` would let a trailing newline through ``$``.
_HOSTNAME = re.compile(
    r"(?=.{1,253}\Z)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
_USERNAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
_BASE_DIR = re.compile(r"/[A-Za-z0-9._/-]*")
_DB_USER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def _host(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not _HOSTNAME.fullmatch(value):
            raise ValueError("must be a hostname or an IP address") from None
    return value


def _username(value: str) -> str:
    if not _USERNAME.fullmatch(value):
        raise ValueError("must be a POSIX user name (lowercase letters, digits, _ and -)")
    return value


def _base_dir(value: str) -> str:
    if not _BASE_DIR.fullmatch(value) or ".." in value.split("/"):
        raise ValueError("must be an absolute path of letters, digits, '.', '_', '-' and '/'")
    return value.rstrip("/") or "/"


def _db_user(value: str) -> str:
    if not _DB_USER.fullmatch(value):
        raise ValueError("must be a PostgreSQL role name (letters, digits and _)")
    return value


def _db_password(value: Secret) -> Secret:
    # It goes into odoo.conf as is: refuse now what that file cannot hold, rather
    # than fail the provisioning job later. The message never quotes the value.
    try:
        check_text("dbPassword", value.get_secret_value())
    except InvalidInput:
        raise ValueError(
            "must be one line without control characters or surrounding whitespace, "
            "and not True, False or None"
        ) from None
    return value


Host = Annotated[str, AfterValidator(_host)]
DbUser = Annotated[str, AfterValidator(_db_user)]
DbPassword = Annotated[Secret, Field(min_length=1, max_length=1024), AfterValidator(_db_password)]
_ARG = re.compile(r"[A-Za-z0-9._/=:@+-]{1,255}")


def _nginx_command(value: list[str]) -> list[str]:
    if value[0] not in ("nginx", "sudo") and not value[0].startswith("/"):
        raise ValueError(
            "must start with the nginx program (e.g. ['nginx'] or ['sudo', '-n', 'nginx'])"
        )
    for arg in value:
        if not _ARG.fullmatch(arg):
            raise ValueError(f"'{arg[:60]}' is not a plain argument")
    return value


def _listen(value: str) -> str:
    if (
        not re.fullmatch(r"(\[[0-9a-f:]+\]:|[0-9.]+:)?[0-9]{1,5}", value)
        or not 0 < int(value.rsplit(":", 1)[-1]) < 65536
    ):
        raise ValueError("must be a port or address:port")
    return value


NginxCommand = Annotated[
    list[str], Field(min_length=1, max_length=8), AfterValidator(_nginx_command)
]
NginxListen = Annotated[str, AfterValidator(_listen)]
Username = Annotated[str, AfterValidator(_username)]
BaseDir = Annotated[str, Field(max_length=255), AfterValidator(_base_dir)]
Runtime = Literal["docker", "native"]
Name = Annotated[str, Field(min_length=1, max_length=120)]
Port = Annotated[int, Field(ge=1, le=65535)]
PrivateKey = Annotated[SecretStr, Field(max_length=16384)]


class ServerCreate(InputSchema):
    name: Name
    host: Host = "localhost"
    port: Port = 22
    username: Username = "root"
    is_local: bool = False
    private_key: PrivateKey | None = Field(
        default=None, description="OpenSSH or PEM private key. Write-only: never returned."
    )
    private_key_passphrase: Secret | None = Field(default=None, max_length=1024)
    runtime: Runtime = "native"
    base_dir: BaseDir = "/opt/ocore"
    db_host: Host = "127.0.0.1"
    db_port: Port = 5432
    db_user: DbUser = "odoo"
    db_password: DbPassword | None = Field(
        default=None, description="Password of db_user on the host's PostgreSQL. Write-only."
    )
    nginx_sites_dir: BaseDir = "/etc/nginx/conf.d"
    nginx_command: NginxCommand = Field(default_factory=lambda: ["nginx"])
    nginx_listen: NginxListen = "80"

    @model_validator(mode="after")
    def _key_for_remote(self) -> ServerCreate:
        if not self.is_local and self.private_key is None:
            raise ValueError("privateKey is required for a server reached over SSH")
        return self


class ServerUpdate(UpdateSchema):
    nullable_fields = frozenset({"db_password"})
    name: Name | None = None
    host: Host | None = None
    port: Port | None = None
    username: Username | None = None
    private_key: PrivateKey | None = None
    private_key_passphrase: Secret | None = Field(default=None, max_length=1024)
    runtime: Runtime | None = None
    base_dir: BaseDir | None = None
    db_host: Host | None = None
    db_port: Port | None = None
    db_user: DbUser | None = None
    db_password: DbPassword | None = None
    nginx_sites_dir: BaseDir | None = None
    nginx_command: NginxCommand | None = None
    nginx_listen: NginxListen | None = None


class ServerOut(Schema):
    id: uuid.UUID
    name: str
    host: str
    port: int
    username: str
    is_local: bool
    runtime: str
    base_dir: str
    db_host: str
    db_port: int
    db_user: str
    has_db_password: bool
    nginx_sites_dir: str
    nginx_command: list[str]
    nginx_listen: str
    status: str
    status_message: str | None
    host_key_fingerprint: str | None
    has_private_key: bool
    last_seen_at: datetime | None
    created_at: datetime
    updated_at: datetime


class ServerList(Schema):
    servers: list[ServerOut]
    total: int
    limit: int
    offset: int
