"""What neutralizing an Odoo database changes, record by record (Odoo 16.0 - 18.0).

Each ``Rule`` names a table, the columns ocore may change there and a
function giving, for one live row, the values those columns take once
neutralized. The rules follow the ``data/neutralize.sql`` files of Odoo's own
modules (see odoo-facts.md), with two deliberate differences:

- only rows that actually change become items, so a user sees what was
  switched off (an inactive cron stays out of the list);
- credentials are only overwritten where they are set (Odoo also writes
  ``'dummy'`` over NULLs, which changes nothing that matters).

Values are PostgreSQL text representations (``col::text``), so one code path
reads, stores and writes every column type; ``None`` is SQL NULL. Tables and
columns a database lacks (other version, module not installed, community
edition) are left out by the engine, never an error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

Row = Mapping[str, str | None]
Values = dict[str, str | None]

# The categories a project's profile switches on and off.
PROFILE_CATEGORIES = ("crons", "mail", "payments", "carriers", "social")
# What Odoo's own neutralization always does; ocore does it on every run too.
ALWAYS_CATEGORIES = ("webhooks", "iap", "calendar", "oauth", "website")
CATEGORIES = PROFILE_CATEGORIES + ALWAYS_CATEGORIES
# Re-enabling one of these can move real money or real parcels.
DANGEROUS_CATEGORIES = ("payments", "carriers")

TRUE, FALSE = "true", "false"
DISABLED_WEBHOOK = "neutralization - disable webhook"  # Odoo's own marker value
ROBOTS_DISALLOW = "User-agent: *\nDisallow: /"
IAP_SANDBOX = "https://iap-sandbox.odoo.com"
IAP_PRODUCTION = "https://iap.odoo.com"  # Odoo 16's default when iap.endpoint is unset

# ir_mail_server rows that are the neutralization itself, never items.
CATCHER_NAME = "ocore - mail catcher"
DUMMY_NAME = "neutralization - disable emails"  # the row Odoo's base neutralize.sql inserts
DUMMY_HOST = "invalid"

# Key columns of payment_provider, from the payment_<code> modules' neutralize.sql.
PAYMENT_KEYS = (
    "stripe_secret_key", "stripe_publishable_key", "stripe_webhook_secret",
    "adyen_api_key", "adyen_hmac_key", "adyen_merchant_account",
    "paypal_email_account", "paypal_pdt_token", "paypal_client_id", "paypal_client_secret",
    "authorize_login", "authorize_transaction_key", "authorize_signature_key",
    "authorize_client_key",
    "mollie_api_key",
    "buckaroo_website_key", "buckaroo_secret_key",
    "ogone_pspid", "ogone_userid", "ogone_password", "ogone_shakey_in", "ogone_shakey_out",
    "flutterwave_public_key", "flutterwave_secret_key", "flutterwave_webhook_secret",
    "mercado_pago_access_token",
    "razorpay_key_id", "razorpay_key_secret", "razorpay_webhook_secret",
    "xendit_secret_key", "xendit_webhook_token",
    "alipay_merchant_partner_id", "alipay_md5_signature_key", "alipay_seller_email",
    "asiapay_merchant_id", "asiapay_secure_hash_secret",
    "aps_merchant_identifier", "aps_access_code", "aps_sha_request", "aps_sha_response",
    "payulatam_merchant_id", "payulatam_account_id", "payulatam_api_key",
    "payumoney_merchant_key", "payumoney_merchant_salt",
    "sips_merchant_id", "sips_secret",
    "worldline_pspid", "worldline_api_key", "worldline_api_secret",
    "worldline_webhook_key", "worldline_webhook_secret",
    "nuvei_merchant_identifier", "nuvei_site_identifier", "nuvei_secret_key",
    "esewa_secret_key",
)  # fmt: skip
# Point of sale terminals: forced into test mode, credentials replaced (pos_* modules).
POS_TEST_MODES = (
    "adyen_test_mode", "viva_wallet_test_mode", "bancontact_test_mode", "paymob_test_mode",
    "pine_labs_test_mode",
)  # fmt: skip
POS_SECRETS = (
    "mp_bearer_token", "mp_webhook_secret_key", "pine_labs_merchant", "pine_labs_security_token",
)  # fmt: skip
# Carrier credentials of the (enterprise) delivery_<carrier> modules: set to 'dummy'.
CARRIER_SECRETS = (
    "fedex_developer_key", "fedex_developer_password", "fedex_account_number",
    "fedex_meter_number",
    "fedex_rest_developer_key", "fedex_rest_developer_password", "fedex_rest_account_number",
    "ups_username", "ups_passwd", "ups_shipper_number", "ups_access_number",
    "ups_client_id", "ups_client_secret",
    "usps_username",
    "dhl_SiteID", "dhl_password", "dhl_account_number", "dhl_api_key", "dhl_api_secret",
    "bpost_account_number", "bpost_developer_password",
    "easypost_test_api_key", "easypost_production_api_key",
    "sendcloud_public_key", "sendcloud_secret_key",
    "starshipit_api_key", "starshipit_subscription_key",
    "envia_production_api_key", "envia_sandbox_api_key",
    "shipstation_production_api_key",
)  # fmt: skip
# Network account ids and tokens of the (enterprise) social_<network> modules.
SOCIAL_SECRETS = (
    "facebook_account_id", "facebook_access_token",
    "instagram_account_id", "instagram_facebook_account_id", "instagram_access_token",
    "linkedin_account_urn", "linkedin_access_token",
    "twitter_user_id", "twitter_oauth_token", "twitter_oauth_token_secret",
    "youtube_channel_id", "youtube_access_token", "youtube_refresh_token",
)  # fmt: skip
GOOGLE_TOKENS_16 = ("calendar_rtoken", "calendar_token")
GOOGLE_TOKENS = ("google_calendar_rtoken", "google_calendar_token")
MICROSOFT_SETTINGS = ("microsoft_calendar_sync_token", "microsoft_last_sync_date")
MICROSOFT_TOKENS = ("microsoft_calendar_token", "microsoft_calendar_rtoken")


@dataclass(frozen=True)
class Rule:
    category: str
    table: str
    model: str
    # Columns ocore may change (and stores the original values of).
    columns: tuple[str, ...]
    # Neutral values for a live row (it has every existing column of ``columns`` and
    # ``reads``); None: the row is out of scope. Columns the table lacks are dropped.
    neutral: Callable[[Row, int], Values | None]
    # Columns only read to decide.
    reads: tuple[str, ...] = ()
    # Columns the table must have for the rule to apply at all.
    requires: tuple[str, ...] = ()
    # A static filter with its own $n parameters, for rows the rule never touches.
    where: tuple[str, tuple[str, ...]] | None = None
    # The record's name: a column, or an expression over the row aliased ``t``.
    name: str | None = "name"
    # Tables and columns the name expression uses; without them the name is NULL.
    name_needs: tuple[tuple[str, str], ...] = ()
    # Tables that must exist (the module is installed) for the rule to apply.
    requires_tables: tuple[str, ...] = ()
    # A config parameter made explicit before neutralizing, with Odoo's default value,
    # so that restoring it later is an ordinary update (key, value).
    seed: tuple[str, str] | None = None
    min_major: int = 0
    max_major: int = 99


def _set(columns: tuple[str, ...], value: str | None) -> Values:
    return dict.fromkeys(columns, value)


def _set_if_present(row: Row, columns: tuple[str, ...], value: str | None) -> Values:
    """Overwrite only credentials that are set: a NULL one has nothing to leak."""
    return {c: value for c in columns if c in row and row[c] is not None}


def _deactivate(row: Row, major: int) -> Values:
    return {"active": FALSE}


def _mail_server(row: Row, major: int) -> Values | None:
    if row.get("name") in (CATCHER_NAME, DUMMY_NAME) or row.get("smtp_host") == DUMMY_HOST:
        return None  # the neutralization's own placeholder servers
    return {"active": FALSE}


def _payment_provider(row: Row, major: int) -> Values:
    values = _set(PAYMENT_KEYS, None)
    if row.get("state") not in ("test", "disabled"):
        values["state"] = "disabled"
    return values


def _pos_method(row: Row, major: int) -> Values | None:
    if row.get("use_payment_terminal") is None:
        return None  # cash, bank, customer account: nothing to reach
    return {**_set(POS_TEST_MODES, TRUE), **_set_if_present(row, POS_SECRETS, "dummy_value")}


def _carrier(row: Row, major: int) -> Values:
    values: Values = {"prod_environment": FALSE}
    # 16.0 switched every carrier off; 17.0 and later keep Odoo's own pricing carriers.
    if major < 17 or row.get("delivery_type") not in ("fixed", "base_on_rule"):
        values["active"] = FALSE
    return {**values, **_set_if_present(row, CARRIER_SECRETS, "dummy")}


def _social(row: Row, major: int) -> Values:
    return _set(SOCIAL_SECRETS, None)


def _webhook(row: Row, major: int) -> Values | None:
    return {"webhook_url": DISABLED_WEBHOOK} if row.get("state") == "webhook" else None


def _iap_token(row: Row, major: int) -> Values | None:
    token = row.get("account_token")
    if token is None:
        return None
    # Odoo: REGEXP_REPLACE(account_token, '(\+.*)?$', '+disabled')
    return {"account_token": token.split("+", 1)[0] + "+disabled"}


def _iap_endpoint(row: Row, major: int) -> Values:
    return {"value": IAP_SANDBOX}


def _tokens_then_stop(tokens: tuple[str, ...], stop: Values) -> Callable[[Row, int], Values | None]:
    """Calendar sync: only accounts that hold a token are touched (and then stopped)."""

    def neutral(row: Row, major: int) -> Values | None:
        if not any(row.get(c) is not None for c in tokens):
            return None
        return {**_set(tokens, None), **stop}

    return neutral


def _google_and_microsoft(row: Row, major: int) -> Values | None:
    values: Values = {}
    if any(row.get(c) is not None for c in GOOGLE_TOKENS):
        values.update(_set(GOOGLE_TOKENS, None), google_synchronization_stopped=TRUE)
    if row.get("microsoft_calendar_sync_token") is not None:
        values.update(_set(MICROSOFT_SETTINGS, None), microsoft_synchronization_stopped=TRUE)
    return values or None


def _oauth(row: Row, major: int) -> Values:
    return {"enabled": FALSE}


def _website(row: Row, major: int) -> Values:
    values: Values = {"domain": None}
    if major >= 17:
        values.update(cdn_activated=FALSE, robots_txt=ROBOTS_DISALLOW)
    return values


# The name of a cron is its server action's (translated) name; see odoo_db.record_name.
CRON_NAME = "$cron"
_USER_LOGIN = "(SELECT u.login FROM res_users u WHERE u.id = t.user_id)"

RULES: tuple[Rule, ...] = (
    Rule(
        "crons", "ir_cron", "ir.cron", ("active",), _deactivate, requires=("active",),
        # Like Odoo: base's autovacuum keeps running, or the copy's tables grow forever.
        where=("t.id NOT IN (SELECT res_id FROM ir_model_data WHERE model = $1 AND name = $2)",
               ("ir.cron", "autovacuum_job")),
        name=CRON_NAME,
    ),
    Rule("mail", "ir_mail_server", "ir.mail_server", ("active",), _mail_server,
         reads=("name", "smtp_host"), requires=("active",)),
    Rule("mail", "fetchmail_server", "fetchmail.server", ("active",), _deactivate,
         requires=("active",)),
    Rule("mail", "mail_template", "mail.template", ("mail_server_id",),
         lambda row, major: {"mail_server_id": None}, requires=("mail_server_id",)),
    Rule("payments", "payment_provider", "payment.provider", ("state", *PAYMENT_KEYS),
         _payment_provider, requires=("state",)),
    Rule("payments", "pos_payment_method", "pos.payment.method",
         POS_TEST_MODES + POS_SECRETS, _pos_method, reads=("use_payment_terminal",),
         requires=("use_payment_terminal",)),
    Rule("carriers", "delivery_carrier", "delivery.carrier",
         ("active", "prod_environment", *CARRIER_SECRETS), _carrier, reads=("delivery_type",),
         requires=("delivery_type",)),
    Rule("social", "social_account", "social.account", SOCIAL_SECRETS, _social),
    Rule("webhooks", "ir_act_server", "ir.actions.server", ("webhook_url",), _webhook,
         reads=("state",), requires=("webhook_url",), min_major=17),
    Rule("iap", "iap_account", "iap.account", ("account_token",), _iap_token,
         name="service_name", min_major=17),
    Rule("iap", "ir_config_parameter", "ir.config_parameter", ("value",), _iap_endpoint,
         where=("t.key = $1", ("iap.endpoint",)), name="key", requires_tables=("iap_account",),
         seed=("iap.endpoint", IAP_PRODUCTION), max_major=16),
    Rule("calendar", "google_calendar_credentials", "google.calendar.credentials",
         (*GOOGLE_TOKENS_16, "synchronization_stopped"),
         _tokens_then_stop(GOOGLE_TOKENS_16, {"synchronization_stopped": TRUE}),
         name="(SELECT u.login FROM res_users u WHERE u.google_calendar_account_id = t.id"
              " ORDER BY u.id LIMIT 1)",
         name_needs=(("res_users", "google_calendar_account_id"),), max_major=16),
    Rule("calendar", "res_users_settings", "res.users.settings",
         (*GOOGLE_TOKENS, "google_synchronization_stopped", *MICROSOFT_SETTINGS,
          "microsoft_synchronization_stopped"),
         _google_and_microsoft, name=_USER_LOGIN,
         name_needs=(("res_users_settings", "user_id"), ("res_users", "login"))),
    # Only users holding a token are read (and locked), not every user of the database.
    Rule("calendar", "res_users", "res.users", MICROSOFT_TOKENS,
         _tokens_then_stop(MICROSOFT_TOKENS, {}), requires=MICROSOFT_TOKENS,
         where=("(t.microsoft_calendar_token IS NOT NULL"
                " OR t.microsoft_calendar_rtoken IS NOT NULL)", ()),
         name="login"),
    Rule("oauth", "auth_oauth_provider", "auth.oauth.provider", ("enabled",), _oauth,
         requires=("enabled",)),
    Rule("website", "website", "website", ("domain", "cdn_activated", "robots_txt"), _website),
)  # fmt: skip

_BY_MODEL = {(r.category, r.model): r for r in RULES}


def rules_for(categories: set[str], major: int) -> list[Rule]:
    return [r for r in RULES if r.category in categories and r.min_major <= major <= r.max_major]


def rule_of(category: str, model: str) -> Rule | None:
    return _BY_MODEL.get((category, model))


def major_of(version: str) -> int:
    """``"17.0"`` → 17 (also ``"saas~17.2"``-like strings)."""
    digits = version.rsplit("~", 1)[-1].split(".", 1)[0]
    return int(digits) if digits.isdigit() else 17
