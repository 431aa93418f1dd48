from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from ocore.core.schemas import Schema, UpdateSchema

# "mailpit": outgoing mail goes to the environment's mail catcher; "disable": nowhere.
MailStrategy = Literal["mailpit", "disable"]


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
