"""Odoo 16.0 and 18.0 schemas: version rules, missing tables and columns, profile choices."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.neutralization.conftest import Site, World

SHARED_ROWS = True


def names(items: list[dict[str, Any]], category: str) -> set[str]:
    return {i["recordName"] for i in items if i["category"] == category}


async def toggle(world: World, site: Site, item: dict[str, Any], enable: bool) -> None:
    response = await world.client.post(
        f"{site.path}/items/{item['id']}/toggle",
        json={"enable": enable},
        headers=world.tenant.headers,
    )
    assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
async def odoo16(world: World) -> AsyncIterator[tuple[Site, dict[str, Any]]]:
    site = await world.provision(
        "16.0", ["mail", "payment_stripe", "delivery_fedex", "iap", "website", "auth_oauth"]
    )
    response = await world.client.put(
        f"/api/projects/{site.project['id']}/neutralization/profile",
        json={"mailStrategy": "disable"},
        headers=world.tenant.headers,
    )
    assert response.status_code == 200
    job = await world.neutralize(site)
    assert job["status"] == "succeeded", job
    return site, job


@pytest.fixture(scope="module")
async def odoo18(world: World) -> AsyncIterator[tuple[Site, dict[str, Any]]]:
    site = await world.provision("18.0", ["mail", "payment_adyen", "social_linkedin", "website"])
    # Calendar sync is not in the stand-in: give the database Odoo 18's columns for it.
    await site.execute(
        "CREATE TABLE res_users_settings (id serial PRIMARY KEY, user_id integer,"
        " google_calendar_rtoken varchar, google_calendar_token varchar,"
        " google_synchronization_stopped boolean, microsoft_calendar_sync_token varchar,"
        " microsoft_synchronization_stopped boolean,"
        " microsoft_last_sync_date timestamp without time zone)"
    )
    await site.execute(
        "INSERT INTO res_users_settings (user_id, google_calendar_rtoken, google_calendar_token,"
        " google_synchronization_stopped, microsoft_calendar_sync_token,"
        " microsoft_synchronization_stopped, microsoft_last_sync_date)"
        " SELECT id, 'g-refresh', 'g-access', false, 'ms-sync', false, $1"
        " FROM res_users WHERE login = 'admin'",
        dt.datetime(2024, 5, 6, 7, 8, 9, 123456),
    )
    await site.execute(
        "ALTER TABLE res_users ADD COLUMN microsoft_calendar_token varchar,"
        " ADD COLUMN microsoft_calendar_rtoken varchar"
    )
    await site.execute(
        "UPDATE res_users SET microsoft_calendar_token = 'ms-access' WHERE login = 'admin'"
    )
    await site.execute(
        "INSERT INTO res_users_settings (user_id, google_synchronization_stopped)"
        " SELECT id, false FROM res_users WHERE login = 'public'"
    )
    response = await world.client.put(
        f"/api/projects/{site.project['id']}/neutralization/profile",
        json={"neutralizeCrons": False},
        headers=world.tenant.headers,
    )
    assert response.status_code == 200
    job = await world.neutralize(site)  # mailpit chosen, but the environment has no catcher
    assert job["status"] == "succeeded", job
    return site, job


async def test_odoo16_rules(world: World, odoo16: tuple[Site, dict[str, Any]]) -> None:
    site, job = odoo16
    items = await world.items(site)
    assert "Base: Portal Users Deletion" in names(items, "crons")  # 16: JSONB names too
    # 16.0 switches every carrier off, Odoo's own pricing ones included.
    assert names(items, "carriers") == {"Standard delivery", "Zone rates", "FedEx US"}
    carriers = await site.fetch("SELECT active, prod_environment FROM delivery_carrier")
    assert not any(r["active"] or r["prod_environment"] for r in carriers)
    assert not names(items, "social")
    assert not names(items, "webhooks")
    output = job["steps"][0]["output"]
    assert "skipped social_account (social): not in this database" in output
    assert "dummy server" in output

    servers = await site.fetch("SELECT name, smtp_host, active FROM ir_mail_server")
    assert [(r["name"], r["smtp_host"]) for r in servers if r["active"]] == [
        ("neutralization - disable emails", "invalid")
    ]
    website = (await site.fetch("SELECT * FROM website"))[0]
    assert website["domain"] is None
    assert website["cdn_activated"] is True  # only 17+ switch the CDN off
    assert website["robots_txt"] == "User-agent: *\nAllow: /"

    # 16: IAP goes to the sandbox through ir.config_parameter, one item to restore.
    (iap,) = [i for i in items if i["category"] == "iap"]
    assert (iap["odooModel"], iap["recordName"]) == ("ir.config_parameter", "iap.endpoint")
    query = "SELECT value FROM ir_config_parameter WHERE key = 'iap.endpoint'"
    assert (await site.fetch(query))[0]["value"] == "https://iap-sandbox.odoo.com"
    await toggle(world, site, iap, True)
    assert (await site.fetch(query))[0]["value"] == "https://iap.odoo.com"
    await toggle(world, site, iap, False)
    assert (await site.fetch(query))[0]["value"] == "https://iap-sandbox.odoo.com"


async def test_odoo18_rules(world: World, odoo18: tuple[Site, dict[str, Any]]) -> None:
    site, job = odoo18
    items = await world.items(site)
    categories = {i["category"] for i in items}
    assert "crons" not in categories  # the profile keeps crons running
    assert all(r["active"] for r in await site.fetch("SELECT active FROM ir_cron"))
    assert "skipped delivery_carrier (carriers): not in this database" in job["steps"][0]["output"]
    assert names(items, "social") == {"Example on linkedin"}
    social = (await site.fetch("SELECT * FROM social_account"))[0]
    assert social["linkedin_account_urn"] is None
    assert social["linkedin_access_token"] is None
    assert names(items, "webhooks") == {"Notify order webhook"}
    servers = await site.fetch("SELECT smtp_host FROM ir_mail_server WHERE active")
    assert [r["smtp_host"] for r in servers] == ["invalid"]  # no catcher port: like Odoo

    calendar_items = [i for i in items if i["category"] == "calendar"]
    assert sorted((i["odooModel"], i["recordName"]) for i in calendar_items) == [
        ("res.users", "admin"),
        ("res.users.settings", "admin"),
    ]
    users = await site.fetch("SELECT microsoft_calendar_token FROM res_users")
    assert all(r["microsoft_calendar_token"] is None for r in users)
    (calendar,) = [i for i in calendar_items if i["odooModel"] == "res.users.settings"]
    assert (calendar["odooModel"], calendar["recordName"]) == ("res.users.settings", "admin")
    query = "SELECT * FROM res_users_settings WHERE id = $1"
    row = (await site.fetch(query, calendar["odooRecordId"]))[0]
    assert row["google_calendar_token"] is None
    assert row["microsoft_calendar_sync_token"] is None
    assert row["google_synchronization_stopped"]
    assert row["microsoft_synchronization_stopped"]
    assert row["microsoft_last_sync_date"] is None
    await toggle(world, site, calendar, True)
    row = (await site.fetch(query, calendar["odooRecordId"]))[0]
    assert (row["google_calendar_rtoken"], row["google_calendar_token"]) == (
        "g-refresh",
        "g-access",
    )
    assert row["google_synchronization_stopped"] is False
    assert row["microsoft_last_sync_date"] == dt.datetime(2024, 5, 6, 7, 8, 9, 123456)
    await toggle(world, site, calendar, False)
    row = (await site.fetch(query, calendar["odooRecordId"]))[0]
    assert row["google_calendar_token"] is None
    assert row["microsoft_last_sync_date"] is None


async def test_a_disabled_profile_category_is_left_alone_on_rerun(
    world: World, odoo18: tuple[Site, dict[str, Any]]
) -> None:
    site, _ = odoo18
    before = await world.items(site)
    job = await world.neutralize(site)
    assert job["status"] == "succeeded", job
    after = await world.items(site)
    assert [i["id"] for i in after] == [i["id"] for i in before]
    assert all(r["active"] for r in await site.fetch("SELECT active FROM ir_cron"))
    dummies = await site.fetch("SELECT id FROM ir_mail_server WHERE smtp_host = 'invalid'")
    assert len(dummies) == 1  # Odoo inserts one per run; ocore keeps one
