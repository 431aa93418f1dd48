"""Neutralizing a real Odoo 17.0 database (stand-in) through the API, then toggling records.

One instance is provisioned and neutralized for the whole module; tests that
re-enable records switch them off again before they end.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from ocore.neutralization.models import NeutralizationItem
from ocore.neutralization.rules import CATEGORIES
from ocore.neutralization.schemas import Category
from ocore.orgs.models import AuditEntry
from tests.conftest import Tenant
from tests.fixtures.nginx import Nginx
from tests.fixtures.odoo_standin.harness import SmtpCatcher
from tests.neutralization.conftest import Site, World

SHARED_ROWS = True
MODULES = [
    "mail",
    "payment_stripe",
    "payment_adyen",
    "delivery_fedex",
    "iap",
    "website",
    "auth_oauth",
    "social_facebook",
]
STRIPE_KEYS = ("stripe_secret_key", "stripe_publishable_key", "stripe_webhook_secret")


@dataclass
class Neutralized:
    site: Site
    before: dict[str, Any]  # rows as the stand-in made them, read before neutralizing
    catcher: SmtpCatcher
    job: dict[str, Any]


async def snapshot(site: Site) -> dict[str, Any]:
    stripe = (await site.fetch("SELECT * FROM payment_provider WHERE code = 'stripe'"))[0]
    return {
        "stripe": dict(stripe),
        "adyen": dict((await site.fetch("SELECT * FROM payment_provider WHERE code = 'adyen'"))[0]),
        "fedex": dict(
            (await site.fetch("SELECT * FROM delivery_carrier WHERE delivery_type = 'fedex'"))[0]
        ),
        "active_crons": {r["id"] for r in await site.fetch("SELECT id FROM ir_cron WHERE active")},
        "secrets": [
            stripe["stripe_secret_key"],
            stripe["stripe_webhook_secret"],
            "prod-smtp-secret",
            "imap-secret",
            "fdx-key-live",
        ],
    }


@pytest.fixture(scope="module")
def catcher() -> Iterator[SmtpCatcher]:
    server = SmtpCatcher()
    yield server
    server.close()


@pytest.fixture(scope="module")
async def done(world: World, catcher: SmtpCatcher) -> AsyncIterator[Neutralized]:
    site = await world.provision("17.0", MODULES)
    before = await snapshot(site)
    await world.set_mailpit_port(site, catcher.port)
    job = await world.neutralize(site)
    assert job["status"] == "succeeded", job
    return Neutralized(site, before, catcher, job)


def by_name(items: list[dict[str, Any]], model: str, name: str) -> dict[str, Any]:
    return next(i for i in items if i["odooModel"] == model and i["recordName"] == name)


async def toggle(world: World, site: Site, item: dict[str, Any], enable: bool) -> httpx.Response:
    return await world.client.post(
        f"{site.path}/items/{item['id']}/toggle",
        json={"enable": enable},
        headers=world.tenant.headers,
    )


async def test_items_are_recorded_per_record_with_names(world: World, done: Neutralized) -> None:
    items = await world.items(done.site)
    assert all(not i["isEnabled"] and i["enabledAt"] is None for i in items)
    assert all(i["environmentId"] == done.site.environment["id"] for i in items)
    categories = {i["category"] for i in items}
    assert categories == {
        "crons", "mail", "payments", "carriers", "social", "webhooks", "iap", "oauth", "website",
    }  # fmt: skip
    crons = [i for i in items if i["category"] == "crons"]
    # Every active cron but base's autovacuum, named from the translated server action name.
    assert {i["odooRecordId"] for i in crons} == done.before["active_crons"] - {
        r["res_id"]
        for r in await done.site.fetch(
            "SELECT res_id FROM ir_model_data WHERE model = 'ir.cron' AND name = 'autovacuum_job'"
        )
    }
    names = {i["recordName"] for i in crons}
    assert "Base: Portal Users Deletion" in names
    assert "Base: Auto-vacuum internal data" not in names
    assert all(i["odooModel"] == "ir.cron" for i in crons)
    by_name(items, "payment.provider", "Stripe")
    by_name(items, "payment.provider", "Adyen")  # test state, but its keys were set
    assert not [i for i in items if i["recordName"] in ("PayPal", "Demo")]  # disabled already
    by_name(items, "delivery.carrier", "FedEx US")
    assert not [i for i in items if i["recordName"] in ("Standard delivery", "Zone rates")]
    by_name(items, "ir.mail_server", "Primary SMTP")
    by_name(items, "fetchmail.server", "Support inbox")
    assert not [i for i in items if i["recordName"] == "Legacy POP box"]  # inactive already
    by_name(items, "mail.template", "Sales: Order confirmation")
    by_name(items, "ir.actions.server", "Notify order webhook")
    by_name(items, "auth.oauth.provider", "Google OAuth2")
    by_name(items, "website", "My Website")
    iap = {i["recordName"] for i in items if i["odooModel"] == "iap.account"}
    assert iap == {"sms", "partner_autocomplete"}
    assert [i["recordName"] for i in items if i["category"] == "social"] == ["Example on facebook"]
    step = done.job["steps"][0]
    assert step["name"] == "neutralize database"
    assert "crons:" in step["output"]
    assert "mail catcher" in step["output"]


async def test_database_rows_are_neutralized(done: Neutralized) -> None:
    site = done.site
    crons = {r["id"]: r for r in await site.fetch("SELECT id, active FROM ir_cron")}
    autovacuum = (
        await site.fetch(
            "SELECT res_id FROM ir_model_data WHERE model = 'ir.cron' AND name = 'autovacuum_job'"
        )
    )[0]["res_id"]
    assert crons.pop(autovacuum)["active"] is True
    assert not any(r["active"] for r in crons.values())

    servers = await site.fetch("SELECT * FROM ir_mail_server ORDER BY sequence, id")
    active = [r for r in servers if r["active"]]
    assert [(r["smtp_host"], r["smtp_port"]) for r in active] == [("127.0.0.1", done.catcher.port)]
    assert not [r for r in servers if r["smtp_host"] == "invalid"]  # mailpit, not Odoo's dummy
    assert not any(r["active"] for r in await site.fetch("SELECT active FROM fetchmail_server"))
    templates = await site.fetch("SELECT mail_server_id FROM mail_template")
    assert all(r["mail_server_id"] is None for r in templates)

    providers = {r["code"]: r for r in await site.fetch("SELECT * FROM payment_provider")}
    assert providers["stripe"]["state"] == "disabled"
    assert all(providers["stripe"][k] is None for k in STRIPE_KEYS)
    assert providers["adyen"]["state"] == "test"
    assert providers["adyen"]["adyen_api_key"] is None
    assert providers["adyen"]["adyen_merchant_account"] is None
    assert providers["adyen"]["adyen_client_key"] == done.before["adyen"]["adyen_client_key"]

    carriers = {r["delivery_type"]: r for r in await site.fetch("SELECT * FROM delivery_carrier")}
    fedex = carriers["fedex"]
    assert (fedex["active"], fedex["prod_environment"]) == (False, False)
    assert fedex["fedex_developer_key"] == fedex["fedex_meter_number"] == "dummy"
    # 17.0: Odoo's own pricing carriers stay available.
    assert carriers["fixed"]["active"]
    assert carriers["base_on_rule"]["active"]

    social = (await site.fetch("SELECT * FROM social_account"))[0]
    assert social["facebook_account_id"] is None
    assert social["facebook_access_token"] is None
    webhook = await site.fetch("SELECT webhook_url FROM ir_act_server WHERE state = 'webhook'")
    assert [r["webhook_url"] for r in webhook] == ["neutralization - disable webhook"]
    tokens = [r["account_token"] for r in await site.fetch("SELECT * FROM iap_account")]
    assert tokens
    assert all(t.endswith("+disabled") and t.count("+") == 1 for t in tokens)
    oauth = await site.fetch("SELECT name FROM auth_oauth_provider WHERE enabled")
    assert oauth == []
    website = (await site.fetch("SELECT * FROM website"))[0]
    assert website["domain"] is None
    assert website["cdn_activated"] is False
    assert website["robots_txt"] == "User-agent: *\nDisallow: /"
    views = await site.fetch(
        "SELECT key, active FROM ir_ui_view WHERE key IN "
        "('web.neutralize_banner', 'website.neutralize_ribbon')"
    )
    assert len(views) == 2
    assert all(v["active"] for v in views)
    flag = await site.fetch(
        "SELECT value FROM ir_config_parameter WHERE key = 'database.is_neutralized'"
    )
    assert [r["value"] for r in flag] == ["true"]


async def test_mail_reaches_the_catcher(done: Neutralized, nginx: Nginx) -> None:
    slug = done.site.instance["slug"]
    async with httpx.AsyncClient(base_url=nginx.url, timeout=30) as web:
        response = await web.post(
            "/standin/send-mail",
            json={"to": "customer@example.com", "subject": "Order 42", "body": "hello"},
            headers={"Host": f"{slug}.localhost"},
        )
    assert response.status_code == 200, response.text
    assert response.json()["server"]["smtp_port"] == done.catcher.port
    assert any(b"Order 42" in m for m in done.catcher.messages)


async def test_summary_and_environment_flag(world: World, done: Neutralized) -> None:
    site = done.site
    summary = (await world.client.get(f"{site.path}/summary", headers=world.tenant.headers)).json()
    items = await world.items(site)
    assert summary["environmentId"] == site.environment["id"]
    assert summary["isNeutralized"] is True
    assert summary["totalItems"] == len(items)
    assert summary["enabledItems"] == 0
    assert set(summary["categories"]) == set(CATEGORIES)
    assert summary["categories"]["payments"] == {"enabledItems": 0, "totalItems": 2}
    assert summary["categories"]["calendar"] == {"enabledItems": 0, "totalItems": 0}
    environment = (
        await world.client.get(
            f"/api/environments/{site.environment['id']}", headers=world.tenant.headers
        )
    ).json()
    assert environment["isNeutralized"] is True
    assert set(Category.__args__) == set(CATEGORIES)  # type: ignore[attr-defined]


async def test_toggle_payment_provider_restores_state_and_keys(
    world: World, done: Neutralized
) -> None:
    site, headers = done.site, world.tenant.headers
    stripe = by_name(await world.items(site), "payment.provider", "Stripe")
    response = await toggle(world, site, stripe, True)
    assert response.status_code == 200, response.text
    item = response.json()
    assert item["isEnabled"] is True
    assert item["enabledAt"] is not None
    assert item["enabledBy"] == str(world.tenant.owner.user.id)
    row = (await site.fetch("SELECT * FROM payment_provider WHERE code = 'stripe'"))[0]
    assert row["state"] == "enabled"
    assert all(row[k] == done.before["stripe"][k] for k in STRIPE_KEYS)

    dangerous = (await world.client.get(f"{site.path}/dangerous", headers=headers)).json()
    assert dangerous["hasDangerousReenabled"] is True
    assert [i["id"] for i in dangerous["items"]] == [stripe["id"]]
    summary = (await world.client.get(f"{site.path}/summary", headers=headers)).json()
    assert summary["categories"]["payments"] == {"enabledItems": 1, "totalItems": 2}
    assert summary["enabledItems"] == 1
    async with world.database.sessionmaker() as session:
        entry = (
            await session.scalars(
                select(AuditEntry).where(AuditEntry.target_id == uuid.UUID(stripe["id"]))
            )
        ).one()
    assert entry.action == "neutralization.item.enable"
    assert entry.changes["odooModel"] == "payment.provider"

    response = await toggle(world, site, stripe, False)
    assert response.status_code == 200, response.text
    assert response.json()["isEnabled"] is False
    assert response.json()["enabledBy"] is None
    row = (await site.fetch("SELECT * FROM payment_provider WHERE code = 'stripe'"))[0]
    assert row["state"] == "disabled"
    assert all(row[k] is None for k in STRIPE_KEYS)
    dangerous = (await world.client.get(f"{site.path}/dangerous", headers=headers)).json()
    assert dangerous == {"hasDangerousReenabled": False, "items": []}


async def test_cron_can_be_re_enabled_on_a_flagged_database(
    world: World, done: Neutralized
) -> None:
    site = done.site
    cron = by_name(await world.items(site), "ir.cron", "Mail: Email Queue Manager")
    assert (await toggle(world, site, cron, True)).status_code == 200
    flag = await site.fetch(
        "SELECT value FROM ir_config_parameter WHERE key = 'database.is_neutralized'"
    )
    assert flag[0]["value"] == "true"  # Odoo's ir.cron.toggle() would refuse here
    rows = await site.fetch("SELECT active FROM ir_cron WHERE id = $1", cron["odooRecordId"])
    assert rows[0]["active"] is True
    assert (await toggle(world, site, cron, False)).status_code == 200
    rows = await site.fetch("SELECT active FROM ir_cron WHERE id = $1", cron["odooRecordId"])
    assert rows[0]["active"] is False


async def test_toggle_category(world: World, done: Neutralized) -> None:
    site, path = done.site, f"{done.site.path}/toggle-category"
    response = await world.client.post(
        path, json={"category": "carriers", "enable": True}, headers=world.tenant.headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == 1
    assert body["items"][0]["isEnabled"] is True
    fedex = (await site.fetch("SELECT * FROM delivery_carrier WHERE delivery_type = 'fedex'"))[0]
    assert dict(fedex) == {**done.before["fedex"], "write_date": fedex["write_date"]}
    dangerous = await world.client.get(f"{site.path}/dangerous", headers=world.tenant.headers)
    assert dangerous.json()["hasDangerousReenabled"] is True

    response = await world.client.post(
        path, json={"category": "carriers", "enable": False}, headers=world.tenant.headers
    )
    assert response.status_code == 200
    assert response.json()["items"][0]["isEnabled"] is False
    fedex = (await site.fetch("SELECT * FROM delivery_carrier WHERE delivery_type = 'fedex'"))[0]
    assert (fedex["active"], fedex["prod_environment"], fedex["fedex_developer_key"]) == (
        False,
        False,
        "dummy",
    )
    for body in ({"category": "bitcoin", "enable": True}, {"category": "crons"}):
        response = await world.client.post(path, json=body, headers=world.tenant.headers)
        assert response.status_code == 422


async def test_rerun_keeps_the_first_originals(world: World, done: Neutralized) -> None:
    site = done.site
    before = {(i["category"], i["odooModel"], i["odooRecordId"]) for i in await world.items(site)}
    stripe = by_name(await world.items(site), "payment.provider", "Stripe")
    assert (await toggle(world, site, stripe, True)).status_code == 200

    job = await world.neutralize(site)  # on an already neutralized database
    assert job["status"] == "succeeded", job
    items = await world.items(site)
    assert {(i["category"], i["odooModel"], i["odooRecordId"]) for i in items} == before
    assert not any(i["isEnabled"] for i in items)
    row = (await site.fetch("SELECT * FROM payment_provider WHERE code = 'stripe'"))[0]
    assert row["state"] == "disabled"
    assert row["stripe_secret_key"] is None
    servers = await site.fetch("SELECT smtp_host FROM ir_mail_server WHERE active")
    assert [r["smtp_host"] for r in servers] == ["127.0.0.1"]  # the catcher, not duplicated

    # Re-enabling after two runs still brings back the live keys, not NULLs.
    assert (await toggle(world, site, stripe, True)).status_code == 200
    row = (await site.fetch("SELECT * FROM payment_provider WHERE code = 'stripe'"))[0]
    assert all(row[k] == done.before["stripe"][k] for k in STRIPE_KEYS)
    assert (await toggle(world, site, stripe, False)).status_code == 200


async def test_secrets_never_leave_the_database(world: World, done: Neutralized) -> None:
    site, headers = done.site, world.tenant.headers
    stripe = by_name(await world.items(site), "payment.provider", "Stripe")
    texts = [
        (await toggle(world, site, stripe, True)).text,
        (await toggle(world, site, stripe, False)).text,
    ]
    for path in ("items?limit=100", "summary", "dangerous"):
        texts.append((await world.client.get(f"{site.path}/{path}", headers=headers)).text)
    texts.append(
        (
            await world.client.post(
                f"{site.path}/toggle-category",
                json={"category": "payments", "enable": False},
                headers=headers,
            )
        ).text
    )
    texts.append((await world.client.get(f"/api/jobs/{done.job['id']}", headers=headers)).text)
    async with world.database.sessionmaker() as session:
        sealed = list(
            await session.scalars(
                select(NeutralizationItem.original_state_encrypted).where(
                    NeutralizationItem.environment_id == uuid.UUID(site.environment["id"])
                )
            )
        )
    assert sealed
    assert all(s for s in sealed)
    for secret in done.before["secrets"]:
        assert secret
        assert not [t for t in texts + sealed if secret in t], secret


async def test_other_tenant_sees_nothing(
    world: World, done: Neutralized, other_tenant: Tenant
) -> None:
    site = done.site
    stripe = by_name(await world.items(site), "payment.provider", "Stripe")
    for method, path, body in (
        ("GET", "items", None),
        ("GET", "summary", None),
        ("GET", "dangerous", None),
        ("POST", f"items/{stripe['id']}/toggle", {"enable": True}),
        ("POST", "toggle-category", {"category": "payments", "enable": True}),
        ("POST", "neutralize", {"confirmText": site.environment["name"]}),
    ):
        response = await world.client.request(
            method, f"{site.path}/{path}", json=body, headers=other_tenant.headers
        )
        assert response.status_code == 404, (path, response.text)
    row = (await site.fetch("SELECT state FROM payment_provider WHERE code = 'stripe'"))[0]
    assert row["state"] == "disabled"
