from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import Field, model_validator

from ocore.core.schemas import InputSchema, Schema, Secret

EXPIRIES = {"24h": timedelta(hours=24), "168h": timedelta(days=7), "720h": timedelta(days=30)}


class ShareCreate(InputSchema):
    share_type: Literal["token", "password"] = "token"
    expires_in: Literal["24h", "168h", "720h"] = "168h"
    label: Annotated[str, Field(max_length=200)] | None = None
    password: Annotated[Secret, Field(min_length=8, max_length=256)] | None = None

    @model_validator(mode="after")
    def _password_matches_type(self) -> ShareCreate:
        if self.share_type == "password" and self.password is None:
            raise ValueError("password is required for a password share link")
        if self.share_type == "token" and self.password is not None:
            raise ValueError("password is only for shareType 'password'")
        return self


class ShareCreated(Schema):
    id: uuid.UUID
    share_type: str
    url: str = Field(description="Shown once: the link holds its secret.")
    expires_at: datetime


class ShareOut(Schema):
    id: uuid.UUID
    environment_id: uuid.UUID
    share_type: str
    label: str | None
    expires_at: datetime
    is_active: bool
    deactivated_at: datetime | None
    last_used_at: datetime | None
    use_count: int
    created_at: datetime


class ShareList(Schema):
    share_links: list[ShareOut]
    total: int
