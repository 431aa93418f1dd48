"""The camelCase base models every API schema derives from."""

from __future__ import annotations

from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic.alias_generators import to_camel


class Schema(BaseModel):
    """Response models: camelCase on the wire, built from ORM rows."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        from_attributes=True,
        serialize_by_alias=True,
    )


class InputSchema(BaseModel):
    """Request bodies: camelCase, and unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=False,
        extra="forbid",
        str_strip_whitespace=True,
    )


class Message(Schema):
    message: str


class UpdateSchema(InputSchema):
    """Partial updates: a field left out is unchanged; ``null`` only where clearing makes sense."""

    nullable_fields: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _no_null_for_required(self) -> Self:
        for name in self.model_fields_set:
            if getattr(self, name) is None and name not in self.nullable_fields:
                raise ValueError(f"{to_camel(name)} cannot be null; leave it out to keep it")
        return self

    def changes(self, *, exclude: set[str] | None = None) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True, exclude=exclude)
