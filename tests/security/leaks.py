"""Looking for secrets: an API client that keeps every answer, the secrets to look for,
and what ocore logged."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.conftest import wait_for_job


@dataclass
class Exchange:
    label: str
    url: str
    status: int
    text: str


@dataclass
class Recorder:
    """The API as the run uses it: every answer (body and headers) is kept."""

    client: httpx.AsyncClient
    headers: dict[str, str]
    seen: list[Exchange] = field(default_factory=list)

    async def call(
        self,
        method: str,
        url: str,
        *,
        label: str = "",
        expect: int | tuple[int, ...] = 200,
        **kwargs: Any,
    ) -> httpx.Response:
        response = await self.client.request(method, url, headers=self.headers, **kwargs)
        self.keep(label or f"{method} {url}", response)
        expected = (expect,) if isinstance(expect, int) else expect
        assert response.status_code in expected, (method, url, response.text[:500])
        return response

    def keep(self, label: str, response: httpx.Response) -> None:
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.multi_items())
        self.seen.append(
            Exchange(
                label,
                str(response.request.url),
                response.status_code,
                f"{headers}\n\n{response.text}",
            )
        )

    async def job(self, job_id: str, timeout: float = 180) -> dict[str, Any]:
        job = await wait_for_job(self.client, self.headers, job_id, timeout=timeout)
        assert job["status"] == "succeeded", (
            job["error"],
            [s["output"][-800:] for s in job["steps"]],
        )
        return job

    async def job_of(self, target_id: str, kind: str, timeout: float = 180) -> dict[str, Any]:
        jobs = (await self.call("GET", f"/api/jobs?targetId={target_id}")).json()["jobs"]
        return await self.job(next(j["id"] for j in jobs if j["kind"] == kind), timeout)

    async def stream(self, url: str, label: str) -> None:
        """Read a server-sent event stream of a finished thing to its end."""
        async with (
            asyncio.timeout(60),
            self.client.stream("GET", url, headers=self.headers) as response,
        ):
            await response.aread()
            self.keep(label, response)
            assert response.status_code == 200, (url, response.text[:300])


@dataclass
class Secrets:
    """Secret values by name, and the answers allowed to show each (by label)."""

    values: dict[str, list[str]] = field(default_factory=dict)
    shown_once_in: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, *values: str) -> None:
        # A long secret is also caught by its pieces (a PEM line, half a token).
        kept = [v for v in values if len(v) >= 8]
        assert kept, name
        self.values.setdefault(name, []).extend(kept)

    def masked(self, text: str) -> str:
        for values in self.values.values():
            for value in values:
                text = text.replace(value, "<SECRET>")
        return text

    def found_in(self, text: str) -> list[str]:
        return sorted(
            name for name, values in self.values.items() if any(v in text for v in values)
        )


def log_lines(captured: Any, records: list[logging.LogRecord]) -> list[str]:
    """What ocore wrote: structlog's JSON lines and every stdlib record, with tracebacks.

    The test's own HTTP client logs the URLs it calls (share tokens among them)
    through httpx's logger: those lines are the caller's, not ocore's.
    """
    lines = [*captured.out.splitlines(), *captured.err.splitlines()]
    for record in records:
        message = record.getMessage()
        if record.name == "httpx" and "http://ocore.test/" in message:
            continue
        lines.append(f"{record.name} {record.levelname} {message} {record.exc_text or ''}")
    return lines


def pem_lines(key: str) -> list[str]:
    """The base64 body lines of a PEM/OpenSSH key: any one of them in the open is a leak."""
    return [line for line in key.splitlines() if line and not line.startswith("-----")]
