from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from ocore.core.schemas import InputSchema, Schema, UpdateSchema

# "mailpit": outgoing mail goes to the environment's mail catcher; "disable": nowhere.
MailStrategy = Literal["mailpit", "disable"]
# rules.CATEGORIES, spelled out for the OpenAPI document.
Category = Literal[
    "crons", "mail", "payments", "carriers", "social",
    "webhooks", "iap", "calendar", "oauth", "website",
]  # fmt: skip


class ProfileOut(Schema):
    id: uuid.UUID
    project_id: uuid.UUID
    mail_strategy: str
    neutralize_crons: bool
    neutralize_mail: bool
    neutralize_payments: bool
    neutralize_carriers: bool
    neutralize_social: bool
    created_at: datetime
    updated_at: datetime


class ProfileUpdate(UpdateSchema):
    mail_strategy: MailStrategy | None = None
    neutralize_crons: bool | None = None
    neutralize_mail: bool | None = None
    neutralize_payments: bool | None = None
    neutralize_carriers: bool | None = None
    neutralize_social: bool | None = None


class ItemOut(Schema):
    id: uuid.UUID
    environment_id: uuid.UUID
    category: str
    odoo_model: str
    odoo_record_id: int
    record_name: str | None
    is_enabled: bool
    enabled_at: datetime | None
    enabled_by: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


class ItemList(Schema):
    items: list[ItemOut]
    total: int


class CategoryCounts(Schema):
    enabled_items: int
    total_items: int


class Summary(Schema):
    environment_id: uuid.UUID
    is_neutralized: bool
    categories: dict[str, CategoryCounts]
    enabled_items: int
    total_items: int


class Dangerous(Schema):
    has_dangerous_reenabled: bool
    items: list[ItemOut]


class ToggleRequest(InputSchema):
    enable: bool


class CategoryToggleRequest(InputSchema):
    category: Category
    enable: bool


class NeutralizeRequest(InputSchema):
    # Must equal the environment's name: neutralizing rewrites a live database.
    confirm_text: Annotated[str, Field(max_length=255)]


class NeutralizeAccepted(Schema):
    environment_id: uuid.UUID
    message: str
    job_id: uuid.UUID
