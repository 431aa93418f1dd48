"""The camelCase base models every API schema derives from."""

from __future__ import annotations

from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, SecretStr, field_validator, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import CoreSchema, core_schema


class Schema(BaseModel):
    """Response models: camelCase on the wire, built from ORM rows."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        from_attributes=True,
        serialize_by_alias=True,
    )


def _reject_nul(value: Any) -> Any:
    """``value`` as it is, unless a string in it holds a NUL character or is not text."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("must not contain NUL characters (\\u0000)")
        if not value.isascii():
            try:
                value.encode()
            except UnicodeEncodeError:
                # JSON's "\ud800" escapes: no encoder (argon2, asyncpg, a file) takes them.
                raise ValueError("must be valid Unicode text (no lone surrogates)") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _reject_nul(key)
            _reject_nul(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _reject_nul(item)
    return value


class InputSchema(BaseModel):
    """Request bodies: camelCase, and unknown fields are an error, not silently dropped.

    No string may hold a NUL character: PostgreSQL cannot store one in text, and
    neither a command argument nor a file path can carry one. Nor a lone surrogate,
    which only a ``Secret`` (not stripped, so never encoded by pydantic) would keep.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=False,
        extra="forbid",
        str_strip_whitespace=True,
    )

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        return _reject_nul(value)


class Secret(SecretStr):
    """A write-only string kept exactly as sent.

    ``InputSchema`` strips the whitespace around every other string; a password
    or passphrase stripped on the way in no longer matches the one its owner types.
    """

    _inner_schema: ClassVar[CoreSchema] = core_schema.str_schema(strip_whitespace=False)


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
