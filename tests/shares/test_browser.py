"""Share links in a real browser: headless Chromium (Debian's package) through ocore over HTTP.

The instance is provisioned on the test host (sshd, the stand-in Odoo,
PostgreSQL) and ocore is served by uvicorn on a loopback port, so the browser
does what a customer's browser does: follows the share URL, loads the page's
assets, runs its scripts (ocore's URL shim included), submits Odoo's login
form. What reached Odoo is read from the stand-in's own request log.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, Response, async_playwright
from sqlalchemy import update

from ocore.core.db import utcnow
from ocore.shares.models import ShareLink
from tests.conftest import Tenant
from tests.fixtures.http_server import serving
from tests.shares.conftest import create_link
from tests.shares.test_public_odoo import provision

# scripts/test installs it (Debian package chromium).
CHROMIUM = os.environ.get("OCORE_TEST_CHROMIUM", "/usr/bin/chromium")
STYLESHEET = "/api/s-proxy/web/assets/1/0a1b2c3/web.assets_frontend.min.css"


@pytest.fixture
async def served(embedded_app: Any) -> AsyncIterator[str]:
    """The embedded app (its jobs run in-process) over real HTTP on a loopback port."""
    async with serving(embedded_app, lifespan="off") as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        yield browser
        await browser.close()


@dataclass
class Traffic:
    """Every response a page got, and every request it sent elsewhere than ocore."""

    origin: str
    responses: list[tuple[str, int]] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        page.on("response", self._response)
        page.on(
            "request",
            lambda r: None if r.url.startswith(self.origin) else self.foreign.append(r.url),
        )

    def _response(self, response: Response) -> None:
        self.responses.append((response.url.removeprefix(self.origin), response.status))

    def status_of(self, path: str) -> list[int]:
        return [status for url, status in self.responses if url.split("?")[0] == path]


def odoo_requests(base_dir: Path, slug: str) -> list[str]:
    """Request lines the stand-in Odoo logged, as Odoo's werkzeug logger writes them."""
    lines: list[str] = []
    for log in (base_dir / "instances" / slug).glob("*/odoo.log"):
        lines += re.findall(r'werkzeug: \S+ - - \[[^]]+\] "([A-Z]+ \S+) HTTP', log.read_text())
    return lines


async def test_a_browser_opens_shared_odoo_and_logs_in(
    served: str,
    chromium: Browser,
    embedded_client: Any,
    tenant: Tenant,
    server: dict,
    base_dir: Path,
) -> None:
    client = embedded_client
    instance, env = await provision(client, tenant, server)
    token_id, token_share = await create_link(client, tenant, env, shareType="token")

    context = await chromium.new_context()
    page = await context.new_page()
    traffic = Traffic(served)
    traffic.watch(page)

    # The share URL lands on Odoo's login page, its stylesheet loaded through the proxy.
    response = await page.goto(served + token_share, wait_until="load")
    assert response is not None
    assert response.status == 200
    assert page.url == f"{served}/api/s-proxy/web/login?redirect=%2Fweb"
    assert await page.title() == "Login | My Company"
    assert await page.locator("form.oe_login_form input[name=login]").count() == 1
    assert traffic.status_of(STYLESHEET) == [200]
    assert traffic.foreign == []
    cookies = {c["name"]: c for c in await context.cookies()}
    share_cookie = next(c for name, c in cookies.items() if name.startswith("ocore_share"))
    assert share_cookie["httpOnly"] is True
    assert share_cookie["sameSite"] == "Lax"

    # Odoo's own login form, submitted by the browser (its onsubmit rewrites the action).
    await page.fill("input[name=login]", "admin")
    await page.fill("input[name=password]", "admin")
    async with page.expect_navigation(wait_until="load"):
        await page.click("button[type=submit]")
    assert page.url == f"{served}/api/s-proxy/web"
    assert await page.locator(".o_web_client").count() == 1
    assert traffic.foreign == []
    assert all(status < 400 for url, status in traffic.responses if url != "/favicon.ico"), (
        traffic.responses
    )

    # The database manager and crafted paths are refused by ocore, whatever the browser sends.
    for path in (
        "/api/s-proxy/web/database/manager",
        "/api/s-proxy/web/database/selector",
        "/api/s-proxy/WEB/Database/manager",
        "/api/s-proxy/web/static/..%2f..%2fdatabase/manager",
        "/api/s-proxy/web/%2e%2e/web/database/manager",
    ):
        refused = await page.goto(served + path)
        assert refused is not None
        assert refused.status in (400, 404), path
        assert await page.locator(".o_database_list").count() == 0, path

    seen = odoo_requests(base_dir, instance["slug"])
    assert "GET /web/login?redirect=%2Fweb" in seen
    assert "POST /web/login" in seen
    assert "GET /web/assets/1/0a1b2c3/web.assets_frontend.min.css" in seen
    assert not [line for line in seen if "database" in line.lower() or ".." in line]

    # Deactivated: the next page the browser asks for is ocore's 404 page.
    deleted = await client.delete(f"{env.share_path}/{token_id}", headers=tenant.headers)
    assert deleted.status_code == 200
    gone = await page.goto(served + token_share)
    assert gone is not None
    assert gone.status == 404
    assert "not available" in (await page.content())
    await context.close()


async def test_a_browser_gets_in_with_the_password_only(
    served: str,
    chromium: Browser,
    embedded_client: Any,
    tenant: Tenant,
    server: dict,
    database: Any,
) -> None:
    client = embedded_client
    _, env = await provision(client, tenant, server)
    link_id, share = await create_link(
        client, tenant, env, shareType="password", password="staging-pass-1"
    )

    context = await chromium.new_context()
    page = await context.new_page()
    form = await page.goto(served + share)
    assert form is not None
    assert form.status == 200
    assert await page.locator("input[type=password]").count() == 1
    # The form page runs no script, and the proxy stays shut without the cookie.
    assert await page.locator("script").count() == 0
    assert (await page.request.get(served + STYLESHEET)).status == 404

    await page.fill("input[type=password]", "not-the-password")
    async with page.expect_navigation():
        await page.click("button[type=submit]")
    assert page.url == f"{served}{share}/login"
    assert await page.locator("input[type=password]").count() == 1
    assert (await page.request.get(served + STYLESHEET)).status == 404

    await page.fill("input[type=password]", "staging-pass-1")
    async with page.expect_navigation(wait_until="load"):
        await page.click("button[type=submit]")
    assert page.url == f"{served}/api/s-proxy/web/login?redirect=%2Fweb"
    assert await page.locator("form.oe_login_form").count() == 1

    # Expired: the cookie the browser holds opens nothing any more.
    async with database.sessionmaker() as session:
        await session.execute(
            update(ShareLink)
            .where(ShareLink.id == link_id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        await session.commit()
    expired = await page.goto(served + "/api/s-proxy/web/login")
    assert expired is not None
    assert expired.status == 404
    again = await page.goto(served + share)
    assert again is not None
    assert again.status == 404
    await context.close()
