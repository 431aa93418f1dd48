"""The REST plumbing GitHub and GitLab share: one GET, with their failures made ocore errors."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from ocore.core.errors import GitAuthFailed, GitError, GitRateLimited

DEFAULT_TIMEOUT = 30.0
_USER_AGENT = "ocore"


@dataclass(frozen=True)
class Reply:
    """A 2xx answer, or a 404/422 the provider interprets (unknown ref or repository)."""

    status: int
    body: Any
    headers: httpx.Headers

    @property
    def message(self) -> str:
        if isinstance(self.body, dict):
            return str(self.body.get("message") or self.body.get("error") or "")
        return str(self.body or "")[:300]


def segment(value: str, *, keep_slashes: bool = False) -> str:
    """A path segment, percent-encoded (GitLab wants ``group%2Fproject``)."""
    return quote(value, safe="/" if keep_slashes else "")


class RestClient:
    """GETs JSON from one forge API; a given ``httpx.AsyncClient`` is used, never closed."""

    def __init__(
        self,
        forge: str,
        base_url: str,
        headers: Mapping[str, str],
        *,
        client: httpx.AsyncClient | None,
        timeout: float,
        has_token: bool,
    ) -> None:
        if not base_url.startswith(("https://", "http://")):
            raise ValueError(f"{forge} API base URL must be http(s)://, got {base_url!r}")
        self.forge = forge
        self.base_url = base_url.rstrip("/")
        self.headers = {"User-Agent": _USER_AGENT, **headers}
        self.client = client
        self.timeout = timeout
        self.has_token = has_token

    async def get(self, path: str, params: Mapping[str, str | int] | None = None) -> Reply:
        url = self.base_url + path
        try:
            if self.client is not None:
                response = await self.client.get(
                    url, params=params, headers=self.headers, timeout=self.timeout
                )
            else:
                async with httpx.AsyncClient(timeout=self.timeout) as client:
                    response = await client.get(url, params=params, headers=self.headers)
        except httpx.TimeoutException:
            raise GitError(f"{self.forge} at {self.base_url} did not answer in time") from None
        except httpx.HTTPError as exc:
            raise GitError(f"{self.forge} at {self.base_url} is unreachable: {exc}") from None
        return self._reply(response)

    def _reply(self, response: httpx.Response) -> Reply:
        try:
            body: Any = response.json() if response.content else None
        except ValueError:
            body = response.text[:300]
        reply = Reply(response.status_code, body, response.headers)
        status = response.status_code
        if 200 <= status < 300:
            if not isinstance(body, dict | list):
                raise GitError(f"{self.forge} answered {status} without a JSON document")
            return reply
        if status in (404, 422):
            return reply
        retry_after = _retry_after(response.headers)
        if status == 429 or (status == 403 and retry_after is not None):
            wait = f"; retry in {retry_after}s" if retry_after is not None else ""
            raise GitRateLimited(
                f"{self.forge} rate limit reached{wait}: {reply.message}", retry_after=retry_after
            )
        if status == 401:
            hint = "the token is invalid or expired" if self.has_token else "a token is required"
            raise GitAuthFailed(f"{self.forge} refused the request (401): {hint}")
        if status == 403:
            raise GitAuthFailed(
                f"{self.forge} denied access (403): the token lacks permission"
                + (f" ({reply.message})" if reply.message else "")
            )
        raise GitError(f"{self.forge} answered {status}: {reply.message or response.reason_phrase}")


def _retry_after(headers: httpx.Headers) -> int | None:
    """Seconds until the rate limit lifts, when the answer says it is one."""
    value = headers.get("retry-after")
    if value is not None and value.strip().isdigit():
        return int(value)
    # GitHub's primary limit: remaining 0 and the reset time as a Unix timestamp.
    if headers.get("x-ratelimit-remaining") == "0":
        reset = headers.get("x-ratelimit-reset", "")
        if reset.isdigit():
            return max(0, int(reset) - int(time.time()))
        return 60
    return None


def split_repository_url(url: str) -> tuple[str, str]:
    """``(host, "owner/name")`` of an https, ssh or scp-like repository URL."""
    rest = url.split("://", 1)[1] if "://" in url else url.replace(":", "/", 1)
    hostpart, _, path = rest.partition("/")
    host = hostpart.rsplit("@", 1)[-1].split(":", 1)[0].lower()
    path = path.strip("/").removesuffix(".git")
    if not host or "/" not in path:
        raise ValueError(f"cannot tell the owner and name of the repository from {url!r}")
    return host, path
