"""A small synchronous client for the ocore API: bearer token, problem+json errors."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from ocore import __version__
from ocore.client.config import Connection
from ocore.client.errors import ApiError, ClientError, UsageError

TIMEOUT = httpx.Timeout(30.0, connect=10.0)
# The server pings an idle build stream every 15 s: a minute of silence is a dead stream.
STREAM_TIMEOUT = httpx.Timeout(10.0, read=60.0)
PAGE = 100


def _problem(response: httpx.Response, connection: Connection) -> ApiError:
    status = response.status_code
    title, detail, code = response.reason_phrase or f"HTTP {status}", "", None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        title = str(body.get("title") or title)
        detail = str(body.get("detail") or "")
        code = body.get("code")
    elif response.text.strip():
        detail = response.text.strip().splitlines()[0][:200]
    if status == 401:
        if connection.token is None:
            hint = "no token was sent: pass --token, set OCORE_TOKEN or run 'ocore login'"
        else:
            hint = "the token is missing, invalid or expired: get a new one ('ocore token create')"
        return ApiError(status, f"401 {title}", f"{detail} ({hint})".strip(), code)
    if status == 404 and code is None and not isinstance(body, dict):
        detail = f"{response.request.url} is not an ocore API ({detail or 'not found'})"
    return ApiError(status, title, detail, code)


def _unreachable(connection: Connection, exc: httpx.HTTPError) -> ClientError:
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return UsageError(f"'{connection.url}' is not a valid ocore URL: {exc}")
    if isinstance(exc, httpx.TimeoutException):
        return ClientError(f"ocore at {connection.url} did not answer in time ({exc or 'timeout'})")
    reason = str(exc) or type(exc).__name__
    return ClientError(f"Cannot reach ocore at {connection.url}: {reason}")


class ApiClient:
    def __init__(self, connection: Connection, transport: httpx.BaseTransport | None = None):
        self.connection = connection
        headers = {"User-Agent": f"ocore-cli/{__version__}", "Accept": "application/json"}
        if connection.token:
            headers["Authorization"] = f"Bearer {connection.token}"
        self._http = httpx.Client(
            base_url=connection.url, headers=headers, timeout=TIMEOUT, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        """The decoded JSON body (text for non-JSON answers, None for 204)."""
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.request(method, "/api" + path, json=json, params=clean)
        except httpx.HTTPError as exc:
            raise _unreachable(self.connection, exc) from None
        if response.status_code >= 400:
            raise _problem(response, self.connection)
        if response.status_code == 204 or not response.content:
            return None
        if "json" in response.headers.get("content-type", ""):
            try:
                return response.json()
            except ValueError:
                raise ClientError(f"{path}: the server sent malformed JSON") from None
        return response.text

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any = None, **params: Any) -> Any:
        return self.request("POST", path, json=body if body is not None else {}, params=params)

    def put(self, path: str, body: Any) -> Any:
        return self.request("PUT", path, json=body)

    def delete(self, path: str, **params: Any) -> Any:
        return self.request("DELETE", path, params=params)

    def collect(self, path: str, key: str, **params: Any) -> list[dict[str, Any]]:
        """Every row of a paginated list (follows limit/offset until ``total``)."""
        rows: list[dict[str, Any]] = []
        while True:
            page = self.get(path, limit=PAGE, offset=len(rows), **params)
            if isinstance(page, list):
                return rows + page
            batch = page.get(key, [])
            rows += batch
            if not batch or len(rows) >= int(page.get("total", len(rows))):
                return rows

    @contextmanager
    def stream(self, path: str, headers: dict[str, str]) -> Iterator[httpx.Response]:
        """An open streaming GET (status checked); transport errors propagate for retries."""
        with self._http.stream(
            "GET", "/api" + path, headers=headers, timeout=STREAM_TIMEOUT
        ) as response:
            if response.status_code >= 400:
                response.read()
                raise _problem(response, self.connection)
            yield response

    def unreachable(self, exc: httpx.HTTPError) -> ClientError:
        return _unreachable(self.connection, exc)

    # Names people type instead of UUIDs.

    def project_id(self, ref: str) -> str:
        return self._find(ref, "/projects", "projects", ("name",), "project")

    def instance_id(self, ref: str) -> str:
        return self._find(ref, "/instances", "instances", ("slug", "name"), "instance")

    def server_id(self, ref: str) -> str:
        return self._find(ref, "/servers", "servers", ("name", "host"), "server")

    def _find(self, ref: str, path: str, key: str, fields: tuple[str, ...], kind: str) -> str:
        try:
            return str(uuid.UUID(ref))
        except ValueError:
            pass
        rows = self.collect(path, key)
        for field in fields:
            found = [row for row in rows if row.get(field) == ref]
            if len(found) == 1:
                return str(found[0]["id"])
            if len(found) > 1:
                raise UsageError(f"More than one {kind} has the {field} '{ref}'; use its id.")
        raise UsageError(f"No {kind} with the id or {' or '.join(fields)} '{ref}'.")
