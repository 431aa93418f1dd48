"""The rewriting rules on their own: paths in, redirects and cookies out, the page script."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from ocore.shares import rewrite
from ocore.shares import session as share_session

DOMAINS = frozenset({"shop.example.com", "shop.localhost"})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"/api/s-proxy", "/"),
        (b"/api/s-proxy/", "/"),
        (b"/api/s-proxy/web/login", "/web/login"),
        (b"/api/s-proxy/web/", "/web/"),
        (b"/api/s-proxy/web/login?redirect=/web", "/web/login"),
        (b"/api/s-proxy/shop/caf%c3%a9", "/shop/caf%C3%A9"),
        (b"/api/s-proxy/web/image/res.partner/1/avatar_128", "/web/image/res.partner/1/avatar_128"),
        (b"/api/s-proxy/web/content/1?download=true", "/web/content/1"),
        (b"/api/s-proxy/web/%7Euser", "/web/~user"),
        (b"/api/s-proxy/web/a%20b", "/web/a%20b"),
        (b"/api/s-proxy/web/databases", "/web/databases"),
        (b"/api/s-proxy/website/database/manager", "/website/database/manager"),
    ],
)
def test_accepted_paths(raw: bytes, expected: str) -> None:
    assert rewrite.upstream_path(raw) == expected


def test_locations() -> None:
    def loc(value: str, current: str = "/web") -> str:
        return rewrite.location(value, domains=DOMAINS, current_path=current)

    assert loc("/web/login?redirect=%2Fweb") == "/api/s-proxy/web/login?redirect=%2Fweb"
    assert loc("http://shop.example.com/odoo") == "/api/s-proxy/odoo"
    assert loc("https://SHOP.localhost:8069") == "/api/s-proxy/"
    assert loc("//shop.example.com/x#y") == "/api/s-proxy/x#y"
    assert loc("login", "/web/session/x") == "/api/s-proxy/web/session/login"
    assert loc("?a=1", "/web/login") == "/api/s-proxy/web/login?a=1"
    for hostile in (
        "https://evil.example/",
        "//evil.example",
        "///evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "data:text/html,x",
        "https://shop.example.com.evil.example/",
        "https://evil.example@shop.example.com.evil/",
        "/web\r\nSet-Cookie: x=1",
        "",
    ):
        with pytest.raises(rewrite.UpstreamRefused):
            loc(hostile)


def test_set_cookie() -> None:
    prefix = rewrite.cookie_prefix(uuid.uuid4().hex)
    assert (
        rewrite.set_cookie(
            "session_id=abc; Expires=Wed, 01 Jan 2031 00:00:00 GMT; Max-Age=604800; "
            "HttpOnly; Path=/; SameSite=Lax; Domain=.example.com; Priority=High",
            prefix,
        )
        == f"{prefix}session_id=abc; Path=/api/s-proxy/; Expires=Wed, 01 Jan 2031 00:00:00 GMT; "
        "Max-Age=604800; HttpOnly; SameSite=Lax"
    )
    assert rewrite.set_cookie("tz=Europe/Brussels; Path=/web", prefix) == (
        f"{prefix}tz=Europe/Brussels; Path=/api/s-proxy/web"
    )
    assert rewrite.set_cookie("x=1; Path=relative", prefix) == f"{prefix}x=1; Path=/api/s-proxy/"
    for bad in ("novalue", "bad name=1", "=1", "a\x00b=1"):
        assert rewrite.set_cookie(bad, prefix) is None


def test_upstream_cookies_only_carry_the_links_own() -> None:
    mine = rewrite.cookie_prefix("a" * 32)
    theirs = rewrite.cookie_prefix("b" * 32)
    header = f"ocore_share=v1.x; {mine}session_id=1; {theirs}session_id=2; {mine}tz=UTC; other=3"
    assert rewrite.upstream_cookies([header], mine) == "session_id=1; tz=UTC"
    assert rewrite.upstream_cookies(["ocore_share=1", f"{mine}=x"], mine) is None


def test_session_cookie_verification() -> None:
    link = uuid.uuid4()
    now = datetime.now(UTC)
    expires = now + timedelta(hours=1)
    value = share_session.issue("key", link, expires, "hash")
    claim = share_session.parse(value)
    assert claim is not None
    assert claim.link_id == link

    def ok(secret: str = "key", token_hash: str = "hash", at: datetime = now) -> bool:
        return share_session.verify(
            secret, claim, token_hash=token_hash, expires_at=expires, now=at
        )

    assert ok()
    assert not ok(secret="other key")
    assert not ok(token_hash="another link's hash")
    assert not ok(at=expires + timedelta(seconds=1))
    for malformed in ("", "v1", value + "x", value.replace("v1.", "v0."), " " + value, None):
        assert share_session.parse(malformed) is None


SHIM_HARNESS = r"""
const vm = require('vm');
const calls = [];
const listeners = {};
class FakeXHR { open(method, url) { calls.push(['xhr', url]); } }
class FakeWS { constructor(url) { calls.push(['ws', url]); } }
class FakeWorker { constructor(url) { calls.push(['worker', url]); } }
FakeWS.OPEN = 1;
const ctx = {
  URL, Request,
  location: { href: 'http://ocore.test/api/s-proxy/web/login', host: 'ocore.test' },
  fetch: (input) => { calls.push(['fetch', typeof input === 'string' ? input : input.url]); },
  XMLHttpRequest: FakeXHR, WebSocket: FakeWS, SharedWorker: FakeWorker,
  navigator: { sendBeacon(url) { calls.push(['beacon', url]); return true; } },
  history: { pushState(s, t, u) { calls.push(['push', u]); }, replaceState() {} },
  document: { addEventListener(type, fn) { listeners[type] = fn; } },
};
ctx.window = ctx;
vm.createContext(ctx);
vm.runInContext(process.argv[process.argv.length - 1], ctx);
ctx.fetch('/web/dataset/call_kw');
ctx.fetch('/api/s-proxy/web/already');
ctx.fetch('https://other.example/x');
ctx.fetch('//evil.example/x');
ctx.fetch('relative/x');
ctx.fetch(new Request('http://ocore.test/web/req'));
new ctx.XMLHttpRequest().open('POST', '/web/action/load');
new ctx.WebSocket('ws://ocore.test/websocket');
new ctx.SharedWorker('/bus/websocket_worker_bundle?v=1');
ctx.navigator.sendBeacon('/web/beacon');
ctx.history.pushState({}, '', '/web#action=1');
const form = { attrs: { action: '/web/login#' },
  getAttribute(n) { return this.attrs[n]; }, setAttribute(n, v) { this.attrs[n] = v; } };
listeners.submit({ target: form });
calls.push(['form', form.attrs.action]);
const link = { attrs: { href: '/web/session/logout' },
  getAttribute(n) { return this.attrs[n]; }, setAttribute(n, v) { this.attrs[n] = v; } };
listeners.click({ target: { closest: () => link } });
calls.push(['link', link.attrs.href]);
console.log(JSON.stringify({ calls, ws: new ctx.WebSocket('ws://x') instanceof FakeWS }));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the page script")
def test_page_script_maps_root_relative_urls() -> None:
    script = rewrite.SHIM.decode()
    script = script[script.index(">") + 1 : script.rindex("</script>")]
    result = subprocess.run(
        ["node", "-e", SHIM_HARNESS, script], capture_output=True, text=True, check=True
    )
    output = json.loads(result.stdout)
    assert output["ws"] is True
    assert output["calls"][:-1] == [
        ["fetch", "http://ocore.test/api/s-proxy/web/dataset/call_kw"],
        ["fetch", "/api/s-proxy/web/already"],
        ["fetch", "https://other.example/x"],
        ["fetch", "//evil.example/x"],
        ["fetch", "relative/x"],
        ["fetch", "http://ocore.test/api/s-proxy/web/req"],
        ["xhr", "http://ocore.test/api/s-proxy/web/action/load"],
        ["ws", "ws://ocore.test/api/s-proxy/websocket"],
        ["worker", "http://ocore.test/api/s-proxy/bus/websocket_worker_bundle?v=1"],
        ["beacon", "http://ocore.test/api/s-proxy/web/beacon"],
        ["push", "http://ocore.test/api/s-proxy/web#action=1"],
        ["form", "http://ocore.test/api/s-proxy/web/login#"],
        ["link", "http://ocore.test/api/s-proxy/web/session/logout"],
    ]
