"""Client commands share --url/--token/--profile/--json and one way to fail.

``@command(group)`` adds those options to a function's signature for typer and calls
it with a ready :class:`Ctx` (API client and output) as first argument. Errors print
one plain line to stderr and exit 1 (failure), 2 (usage or bad input) or 3 (a failed
deployment): never a traceback.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import click
import typer

from ocore.client.config import resolve
from ocore.client.errors import ClientError, UsageError
from ocore.client.http import ApiClient
from ocore.client.output import Output

F = TypeVar("F", bound=Callable[..., Any])

URL_HELP = "ocore server URL (or OCORE_URL, or a profile saved by 'ocore login')."
TOKEN_HELP = "API token (or OCORE_TOKEN, or the profile's). Prefer the env var in CI."  # noqa: S105

_COMMON = [
    inspect.Parameter(
        "url",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            str | None,
            typer.Option("--url", envvar="OCORE_URL", help=URL_HELP, rich_help_panel="Connection"),
        ],
    ),
    inspect.Parameter(
        "token",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            str | None,
            typer.Option(
                "--token",
                envvar="OCORE_TOKEN",
                help=TOKEN_HELP,
                show_envvar=False,
                rich_help_panel="Connection",
            ),
        ],
    ),
    inspect.Parameter(
        "profile",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            str | None,
            typer.Option(
                "--profile",
                envvar="OCORE_PROFILE",
                help="Saved profile name.",
                rich_help_panel="Connection",
            ),
        ],
    ),
    inspect.Parameter(
        "as_json",
        inspect.Parameter.KEYWORD_ONLY,
        default=False,
        annotation=Annotated[bool, typer.Option("--json", help="Print JSON (for scripts).")],
    ),
]
_COMMON_NAMES = {p.name for p in _COMMON}


@dataclass
class Ctx:
    api: ApiClient
    out: Output


def fail(exc: ClientError) -> typer.Exit:
    sys.stdout.flush()
    Output(as_json=False).err.print(exc.message, markup=False, soft_wrap=True)
    return typer.Exit(exc.exit_code)


def command(group: typer.Typer, name: str | None = None, **kwargs: Any) -> Callable[[F], F]:
    """Register ``fn(ctx, **options)`` on ``group`` with the connection options added."""

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn, eval_str=True)
        own = list(signature.parameters.values())[1:]  # drop ctx

        @functools.wraps(fn)
        def wrapper(**options: Any) -> Any:
            common = {key: options.pop(key) for key in _COMMON_NAMES}
            output = Output(as_json=common["as_json"])
            try:
                connection = resolve(common["url"], common["token"], common["profile"])
                with ApiClient(connection) as api:
                    return fn(Ctx(api=api, out=output), **options)
            except ClientError as exc:
                raise fail(exc) from None
            except KeyboardInterrupt:
                raise fail(ClientError("interrupted", 130)) from None
            except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
                raise
            except Exception as exc:
                if os.environ.get("OCORE_DEBUG"):
                    raise
                message = (
                    f"unexpected error: {type(exc).__name__}: {exc} (OCORE_DEBUG=1 shows more)"
                )
                raise fail(ClientError(message)) from None

        wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[*own, *_COMMON], return_annotation=inspect.Signature.empty
        )
        wrapper.__annotations__ = {p.name: p.annotation for p in [*own, *_COMMON]}
        group.command(name, **kwargs)(wrapper)
        return fn

    return decorate


def require(value: str | None, message: str) -> str:
    if not value:
        raise UsageError(message)
    return value


def pick(**options: Any) -> dict[str, Any]:
    """Request-body fields that were given (None means 'not given')."""
    return {key: value for key, value in options.items() if value is not None}
