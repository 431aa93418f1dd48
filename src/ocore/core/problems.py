"""RFC 9457 problem documents for every error path."""

from __future__ import annotations

import errno
import socket
import traceback
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from redis import exceptions as redis_errors
from sqlalchemy import exc as sqlalchemy_errors
from starlette.exceptions import HTTPException as StarletteHTTPException

from ocore.core.errors import OcoreError, ServiceUnavailable, Unauthorized

PROBLEM_MEDIA_TYPE = "application/problem+json"
log = structlog.get_logger("ocore.errors")


class FieldError(BaseModel):
    location: str
    message: str


class Problem(BaseModel):
    type: str
    title: str
    status: int
    detail: str
    code: str
    errors: list[FieldError] | None = None


def problem_response(
    status: int,
    *,
    code: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"urn:ocore:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _location(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


async def _ocore_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OcoreError)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
    if exc.status >= 500:
        log.error("request_failed", code=exc.code, detail=exc.detail)
    return problem_response(
        exc.status, code=exc.code, title=exc.title, detail=exc.detail, headers=headers
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # The offending input is left out on purpose: it may be a password or a key.
    errors = [
        {"location": _location(tuple(err.get("loc", ()))), "message": err.get("msg", "")}
        for err in exc.errors()
    ]
    detail = "; ".join(f"{e['location']}: {e['message']}" for e in errors) or "Invalid request."
    return problem_response(
        422, code="invalid_input", title="Invalid input", detail=detail, errors=errors
    )


_HTTP_TITLES = {
    400: ("bad_request", "Bad request"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    413: ("payload_too_large", "Payload too large"),
}


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code, title = _HTTP_TITLES.get(exc.status_code, ("http_error", "HTTP error"))
    detail = str(exc.detail)
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"No route matches {request.method} {request.url.path}."
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}."
    return problem_response(
        exc.status_code,
        code=code,
        title=title,
        detail=detail,
        headers=dict(exc.headers) if exc.headers else None,
    )


# Connection-level failures: the database or Redis cannot be reached right now (down,
# restarting, refusing connections). The request was fine and the code is not at fault,
# so the client is told to try again (503), not that ocore broke (500). Errors of a
# connection that works (ProgrammingError, IntegrityError, ...) stay unexpected.
_NETWORK_ERRNOS = frozenset(
    {errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.EPIPE, errno.ETIMEDOUT,
     errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN}
)  # fmt: skip
_POSTGRES_UNREACHABLE = (
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08, and a connection found closed
    asyncpg.CannotConnectNowError,  # 57P03: starting up or shutting down
    asyncpg.AdminShutdownError,  # 57P01: `pg_ctl stop -m fast` ended the session
    asyncpg.CrashShutdownError,  # 57P02
    asyncpg.TooManyConnectionsError,  # 53300
)
_REDIS_UNREACHABLE = (redis_errors.ConnectionError, redis_errors.TimeoutError)


def _network_failure(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionError | TimeoutError | socket.gaierror):
        return True
    return isinstance(exc, OSError) and exc.errno in _NETWORK_ERRNOS


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and what it wraps (SQLAlchemy's ``orig``, the ``raise ... from`` chain).

    Not ``__context__``: an error raised while handling an unrelated connection
    failure is not one itself.
    """
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo and len(seen) < 10:
        current = todo.pop()
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        todo += [getattr(current, "orig", None), current.__cause__]
    return seen


def _raised_by(exc: BaseException) -> str:
    """Which service a bare socket error is about, from the library whose code raised it."""
    modules = [f.f_globals.get("__name__", "") for f, _ in traceback.walk_tb(exc.__traceback__)]
    if any(m.startswith(("redis", "arq")) for m in modules):
        return "Redis"
    if any(m.startswith(("asyncpg", "sqlalchemy")) for m in modules):
        return "The database"
    return "A service ocore depends on"


def unavailable(exc: BaseException) -> ServiceUnavailable | None:
    """``exc`` as a ServiceUnavailable when it is a connection-level failure, else None."""
    causes = _causes(exc)
    if isinstance(exc, sqlalchemy_errors.TimeoutError):
        service = "The database"  # every pooled connection is busy
    elif isinstance(exc, sqlalchemy_errors.DBAPIError):
        # invalidated: the connection broke mid-statement (the server went away).
        lost = exc.connection_invalidated or any(
            isinstance(c, _POSTGRES_UNREACHABLE) or _network_failure(c) for c in causes
        )
        if not lost:
            return None
        service = "The database"
    elif any(isinstance(c, _REDIS_UNREACHABLE) for c in causes):
        service = "Redis"
    elif any(isinstance(c, _POSTGRES_UNREACHABLE) for c in causes):
        service = "The database"
    elif _network_failure(exc):
        service = _raised_by(exc)
    else:
        return None
    return ServiceUnavailable(
        f"{service} cannot be reached right now ({type(causes[-1]).__name__}); "
        "try again in a moment."
    )


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    """Errors of the libraries that reach services: a 503 when the service is unreachable."""
    problem = unavailable(exc)
    if problem is None:
        return await _unexpected_error(request, exc)
    log.warning("service_unavailable", detail=problem.detail, exc_type=type(exc).__name__)
    return problem_response(
        problem.status, code=problem.code, title=problem.title, detail=problem.detail
    )


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled_error", exc_type=type(exc).__name__)
    return problem_response(
        500,
        code="internal_error",
        title="Internal server error",
        detail="An unexpected error occurred; it has been logged with this request's id.",
    )


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(OcoreError, _ocore_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # Registered by class, not under Exception: the catch-all runs outermost, where
    # Starlette re-raises after answering, and the server then drops the connection.
    for family in (
        sqlalchemy_errors.DBAPIError,
        sqlalchemy_errors.TimeoutError,
        asyncpg.PostgresError,
        redis_errors.RedisError,
        OSError,
    ):
        app.add_exception_handler(family, _service_error)
    app.add_exception_handler(Exception, _unexpected_error)


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}}, "description": description}
    for status, description in {
        401: "Missing or invalid token",
        403: "Missing permission",
        404: "Not found (or another organization's)",
        409: "Conflicts with the current state",
        422: "Invalid input",
    }.items()
}


PROBLEM_REF = "#/components/schemas/Problem"
_VALIDATION_REFS = ("#/components/schemas/HTTPValidationError", PROBLEM_REF)
# What any operation can answer, whatever its router declares.
_EVERY_OPERATION = {
    413: "Payload too large",
    500: "Unexpected error (logged with the request's id)",
    503: "Service unavailable (the database or Redis cannot be reached)",
}
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def _problem_content() -> dict[str, Any]:
    return {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": PROBLEM_REF}}}


def _names(response: dict[str, Any], refs: tuple[str, ...]) -> bool:
    return any(
        media.get("schema", {}).get("$ref") in refs
        for media in response.get("content", {}).values()
    )


def _as_problem(response: dict[str, Any]) -> dict[str, Any]:
    """The response as a problem document; media types of its own (an HTML page) stay."""
    own = {
        media_type: media
        for media_type, media in response.get("content", {}).items()
        if media_type != PROBLEM_MEDIA_TYPE
        and media.get("schema", {}).get("$ref") not in _VALIDATION_REFS
    }
    return {**response, "content": {**own, **_problem_content()}}


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(value) for value in node))
    return set()


def document_problems(openapi: dict[str, Any]) -> dict[str, Any]:
    """Make the OpenAPI document say what the error handlers above really answer.

    FastAPI puts a ``responses`` model under ``application/json`` (``text/plain``
    on a plain-text route) and describes 422 with its own ``HTTPValidationError``,
    while every error here is an ``application/problem+json`` ``Problem``. So, in
    every operation: an error response naming either model, and an error response
    without content where the router declares the problem responses, become
    problem+json; 413, 500 and 503, which any request can get, are declared; 400
    (a body that cannot be decoded) where there is a body; 422 where there are
    parameters or a body. Changes the document in place and returns it.
    """
    for path_item in openapi.get("paths", {}).values():
        for method in _METHODS:
            operation = path_item.get(method)
            if operation is None:
                continue
            responses: dict[str, Any] = operation.setdefault("responses", {})
            declares_problems = any(_names(r, (PROBLEM_REF,)) for r in responses.values())
            for status, response in list(responses.items()):
                if not status.isdigit() or int(status) < 400:
                    continue
                if (
                    status == "422"
                    or _names(response, _VALIDATION_REFS)
                    or (declares_problems and not response.get("content"))
                ):
                    responses[status] = _as_problem(response)
            needed = dict(_EVERY_OPERATION)
            if "requestBody" in operation:
                needed[400] = "The body cannot be read (not UTF-8, or not the declared format)"
            if "requestBody" in operation or operation.get("parameters"):
                needed[422] = "Invalid input"
            for code, description in needed.items():
                responses.setdefault(
                    str(code), {"description": description, "content": _problem_content()}
                )
    schemas: dict[str, Any] = openapi.setdefault("components", {}).setdefault("schemas", {})
    if "Problem" not in schemas:
        problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(problem.pop("$defs", {}))
        schemas["Problem"] = problem
    # FastAPI's own validation models, once nothing names them any more.
    others = {name: schema for name, schema in schemas.items() if name != "HTTPValidationError"}
    if "#/components/schemas/HTTPValidationError" not in _refs(openapi["paths"]) | _refs(others):
        schemas.pop("HTTPValidationError", None)
        if "#/components/schemas/ValidationError" not in _refs(openapi["paths"]) | _refs(
            {n: s for n, s in others.items() if n != "ValidationError"}
        ):
            schemas.pop("ValidationError", None)
    return openapi
