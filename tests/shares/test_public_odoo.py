"""Share links end to end on a real host: sshd, the stand-in Odoo, PostgreSQL.

The instance is provisioned through the API exactly as in
tests/instances/test_provisioning.py; the share proxy then reaches it the way
it reaches any remote host: an SSH tunnel to the live colour's port.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

from sqlalchemy import update

from ocore.core.db import utcnow
from ocore.shares.models import ShareLink
from tests.conftest import Tenant
from tests.shares.conftest import anonymous_client, create_link, environment_for, job_of

HTML = {"Accept": "text/html,application/xhtml+xml"}
ORIGIN = {"Origin": "http://ocore.test"}
ASSET = "/api/s-proxy/web/assets/1/0a1b2c3/web.assets_frontend.min.css"
DATABASE_MANAGER = (
    "/api/s-proxy/web/database/manager",
    "/api/s-proxy/web/%64atabase/manager",
    "/api/s-proxy/WEB/DATABASE/manager",
    "/api/s-proxy/web//database/manager",
    "/api/s-proxy/web/database/selector",
)


class Env:
    def __init__(self, environment_id: str) -> None:
        self.environment_id = environment_id

    @property
    def share_path(self) -> str:
        return f"/api/environments/{self.environment_id}/share"


async def provision(client, tenant: Tenant, server: dict) -> tuple[dict, Env]:
    slug = f"shared-{uuid.uuid4().hex[:6]}"
    response = await client.post(
        "/api/instances",
        json={"name": "Shared", "slug": slug, "serverId": server["id"], "odooVersion": "17.0"},
        headers=tenant.headers,
    )
    assert response.status_code == 202, response.text
    instance = response.json()
    job = await job_of(client, tenant, instance["id"], "instance.provision")
    assert job["status"] == "succeeded", job
    environment_id = await environment_for(client, tenant, uuid.UUID(instance["id"]), slug)
    return instance, Env(environment_id)


async def test_share_links_reach_the_real_odoo(
    embedded_app, embedded_client, tenant: Tenant, server: dict, database
) -> None:
    client = embedded_client
    _, env = await provision(client, tenant, server)
    token_id, token_share = await create_link(client, tenant, env, shareType="token")
    _, password_share = await create_link(
        client, tenant, env, shareType="password", password="staging-pass-1"
    )

    async with anonymous_client(embedded_app) as browser:
        # The share URL shows Odoo: / → /web → /web/login, every hop rewritten.
        page = await browser.get(token_share, headers=HTML, follow_redirects=True)
        assert page.status_code == 200, page.text
        assert "<form" in page.text
        assert page.url.path == "/api/s-proxy/web/login"
        assert [r.headers["location"] for r in page.history] == [
            "/api/s-proxy/web",
            "/api/s-proxy/web/login?redirect=%2Fweb",
        ]
        assert 'action="/api/s-proxy/web/login"' in page.text
        assert f'href="{ASSET.removeprefix("/api/s-proxy")}"' not in page.text
        assert f'href="{ASSET}"' in page.text
        odoo_cookies = [c for c in browser.cookies.jar if c.name.endswith("_session_id")]
        assert len(odoo_cookies) == 1
        assert odoo_cookies[0].name == f"ocs_{uuid.UUID(token_id).hex[:16]}_session_id"
        assert odoo_cookies[0].path == "/api/s-proxy/"
        assert not odoo_cookies[0].domain_specified

        asset = await browser.get(ASSET)
        assert asset.status_code == 200
        assert asset.headers["content-type"].startswith("text/css")
        async with anonymous_client(embedded_app) as stranger:
            assert (await stranger.get(ASSET)).status_code == 404
            assert (await stranger.get("/api/s-proxy/web/login")).status_code == 404

        # Logging in to Odoo itself through the share (its CSRF token, its cookie).
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert csrf is not None
        logged_in = await browser.post(
            "/api/s-proxy/web/login",
            data={
                "csrf_token": csrf[1],
                "login": "admin",
                "password": "admin",
                "redirect": "/web",
            },
            headers={**HTML, **ORIGIN},
        )
        assert logged_in.status_code == 303, logged_in.text
        assert logged_in.headers["location"] == "/api/s-proxy/web"
        client_page = await browser.get("/api/s-proxy/web", headers=HTML)
        assert client_page.status_code == 200
        assert "o_web_client" in client_page.text

        for path in DATABASE_MANAGER:
            refused = await browser.get(path)
            assert refused.status_code in (400, 404), path
            assert "o_database_list" not in refused.text
            assert "database manager" not in refused.text.lower()

        # The password link: form, wrong password, right password, Odoo.
        async with anonymous_client(embedded_app) as visitor:
            form = await visitor.get(password_share, headers=HTML)
            assert form.status_code == 200
            assert 'type="password"' in form.text
            assert (await visitor.get(ASSET)).status_code == 404
            wrong = await visitor.post(
                f"{password_share}/login", data={"password": "nope"}, headers={**HTML, **ORIGIN}
            )
            assert wrong.status_code == 401
            right = await visitor.post(
                f"{password_share}/login",
                data={"password": "staging-pass-1"},
                headers={**HTML, **ORIGIN},
            )
            assert right.status_code == 303
            assert right.headers["location"] == password_share
            odoo = await visitor.get(password_share, headers=HTML, follow_redirects=True)
            assert odoo.status_code == 200
            assert 'name="csrf_token"' in odoo.text
            assert (await visitor.get(ASSET)).status_code == 200

            # Expired: the share URL and the cookie stop at once.
            async with database.sessionmaker() as session:
                await session.execute(
                    update(ShareLink)
                    .where(ShareLink.token_hash != "")
                    .where(ShareLink.share_type == "password")
                    .values(expires_at=utcnow() - timedelta(seconds=1))
                )
                await session.commit()
            assert (await visitor.get(password_share)).status_code == 404
            assert (await visitor.get(ASSET)).status_code == 404

        # Deactivated: the same for the token link.
        response = await client.delete(f"{env.share_path}/{token_id}", headers=tenant.headers)
        assert response.status_code == 200
        assert (await browser.get(ASSET)).status_code == 404
        gone = await browser.get(token_share)
        assert gone.status_code == 404
        assert "not available" in gone.text


async def test_a_stopped_instance_is_a_502_page(
    embedded_app, embedded_client, tenant: Tenant, server: dict
) -> None:
    client = embedded_client
    instance, env = await provision(client, tenant, server)
    _, share = await create_link(client, tenant, env)
    async with anonymous_client(embedded_app) as browser:
        assert (await browser.get(share)).status_code == 303  # Odoo's / → /web
        assert (await browser.get(ASSET)).status_code == 200
        response = await client.post(
            f"/api/instances/{instance['id']}/control",
            json={"action": "stop"},
            headers=tenant.headers,
        )
        assert response.status_code == 202
        job = await job_of(client, tenant, instance["id"], "instance.control")
        assert job["status"] == "succeeded", job
        down = await browser.get(ASSET, headers=HTML)
        assert down.status_code == 502
        assert "text/html" in down.headers["content-type"]
        assert "Shared environment unreachable" in down.text
        problem = await browser.get(ASSET)
        assert problem.status_code == 502
        assert problem.headers["content-type"] == "application/problem+json"
