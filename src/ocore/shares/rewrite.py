"""Keeping a shared Odoo inside ``/api/s-proxy``: request paths in, URLs and cookies out.

Odoo's pages use root-relative URLs (``/web/assets/…``, ``/web/login``). On
ocore's origin those would miss the proxy, so:

- ``Location`` headers are mapped under the prefix; an absolute one is only
  accepted for one of the instance's own domains, anything else is refused.
- ``Set-Cookie``: the cookie is renamed with a per-link prefix, its Path moved
  under the prefix and its Domain dropped. On the way back only cookies with
  that link's prefix are forwarded (prefix removed), so one link's Odoo
  session never reaches another link's Odoo, and ocore's own cookies never
  reach Odoo at all.
- HTML and CSS bodies (up to ``REWRITE_MAX_BYTES``) get ``href="/…"``,
  ``src="/…"``, ``action="/…"`` and ``url(/…)`` prefixed, and HTML pages get a
  small script (``SHIM``) that prefixes the root-relative URLs Odoo's own
  JavaScript builds (fetch, XHR, WebSocket, (Shared)Worker scripts, form
  actions, pushState, clicked links). Best effort: ``location.href = "/…"``
  assignments and URLs built inside web workers (Odoo's bus worker builds its
  websocket URL there) are not caught this way.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote_to_bytes, urljoin, urlsplit, urlunsplit

from ocore.core.errors import BadRequest, HostError, NotFound

PREFIX = "/api/s-proxy"
REWRITE_MAX_BYTES = 5 * 1024 * 1024
_MAX_PATH = 4096

# RFC 3986 pchar plus "/": what may appear in a raw request path at all.
_RAW_PATH = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*")
_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
# %2f and %5c would hide a separator from the checks below, %00 is NUL, and
# %25 would let a second decoding (by anything behind us) produce any of them.
_FORBIDDEN_ESCAPES = ("%2f", "%5c", "%00", "%25")
_COOKIE_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,128}")
_COOKIE_ATTRIBUTES = ("expires", "max-age", "secure", "httponly", "samesite", "partitioned")


class BadProxyPath(BadRequest):
    code = "share_bad_path"
    title = "Bad request path"


class BlockedPath(NotFound):
    code = "share_path_blocked"
    title = "Not found"


class UpstreamRefused(HostError):
    code = "share_upstream_refused"
    title = "Refused answer from the shared environment"


def upstream_path(raw_path: bytes) -> str:
    """The path to ask Odoo for, from the raw (still percent-encoded) request path.

    Checked on the raw bytes, then once more after a single decoding, so an
    encoding trick cannot pass one check and fail the other. The result is
    re-encoded from what was checked: Odoo sees exactly the path we judged.
    """
    raw = raw_path.split(b"?", 1)[0]
    if len(raw) > _MAX_PATH or not raw.startswith(PREFIX.encode()):
        raise BadProxyPath("The request path is not allowed.")
    try:
        rest = raw[len(PREFIX) :].decode("ascii")
    except UnicodeDecodeError:
        raise BadProxyPath("The request path is not allowed.") from None
    if rest and not rest.startswith("/"):
        raise BadProxyPath("The request path is not allowed.")
    lowered = rest.lower()
    if (
        not _RAW_PATH.fullmatch(rest)
        or _PERCENT.search(rest)
        or any(escape in lowered for escape in _FORBIDDEN_ESCAPES)
    ):
        raise BadProxyPath("The request path contains characters or escapes that are refused.")
    try:
        path = unquote_to_bytes(rest).decode("utf-8")
    except UnicodeDecodeError:
        raise BadProxyPath("The request path is not valid UTF-8.") from None
    path = path or "/"
    if any(ord(c) < 0x20 or ord(c) == 0x7F or c == "\\" for c in path):
        raise BadProxyPath("The request path contains characters that are refused.")
    segments = path.split("/")[1:]
    # An empty segment ("//") would turn into a scheme-relative URL or let a
    # second "/" slip between the parts we match on; "." and ".." walk paths.
    if any(segment in ("", ".", "..") for segment in segments[:-1]) or segments[-1] in (".", ".."):
        raise BadProxyPath("Empty, '.' and '..' path segments are refused.")
    if is_blocked([segment.lower() for segment in segments]):
        raise BlockedPath("Not found.")
    return quote(path, safe="/!$&'()*+,;=:@-._~")


def is_blocked(segments: list[str]) -> bool:
    """Odoo's database manager, in every form: never reachable through a share.

    ``/web/database/*`` is the page; ``/xmlrpc/…`` and ``/jsonrpc`` carry its
    ``db`` service (list, dump, drop, …) and the external API, which nobody
    needs through a browser share.
    """
    head = segments[0] if segments else ""
    if head == "web" and len(segments) > 1 and segments[1] == "database":
        return True
    return head in ("xmlrpc", "jsonrpc")


def location(value: str, *, domains: frozenset[str], current_path: str) -> str:
    """Map an upstream ``Location`` under the prefix; refuse one that leaves the instance."""
    value = value.strip()
    if not value or "\\" in value or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise UpstreamRefused("The shared environment sent an unusable redirect.")
    parts = urlsplit(value)
    # "///host" has no netloc for Python but is host "host" for a browser.
    if parts.scheme or parts.netloc or value.startswith("//"):
        if parts.scheme not in ("http", "https", "") or (parts.hostname or "") not in domains:
            raise UpstreamRefused("The shared environment redirected outside of itself.")
        path = parts.path or "/"
    else:
        path = urljoin(current_path, parts.path) if parts.path else current_path
    if not path.startswith("/"):
        path = "/" + path
    return urlunsplit(("", "", PREFIX + path, parts.query, parts.fragment))


def cookie_prefix(link_id_hex: str) -> str:
    return f"ocs_{link_id_hex[:16]}_"


def set_cookie(value: str, prefix: str) -> str | None:
    """An upstream ``Set-Cookie`` renamed and scoped under the prefix; None to drop it."""
    first, *attributes = value.split(";")
    name, sep, cookie_value = first.partition("=")
    name = name.strip()
    if not sep or not _COOKIE_NAME.fullmatch(name):
        return None
    path = "/"
    kept: list[str] = []
    for attribute in attributes:
        key, _, attr_value = attribute.strip().partition("=")
        key = key.strip().lower()
        if key == "path":
            path = attr_value.strip()
        elif key in _COOKIE_ATTRIBUTES:
            kept.append(attribute.strip())
        # Domain and anything unknown are dropped: the cookie is ocore's origin's now.
    if not path.startswith("/") or any(c in path for c in ";,\\ \t"):
        path = "/"
    return "; ".join([f"{prefix}{name}={cookie_value.strip()}", f"Path={PREFIX}{path}", *kept])


def upstream_cookies(headers: list[str], prefix: str) -> str | None:
    """The ``Cookie`` header for Odoo: this link's cookies only, under their own names."""
    pairs: list[str] = []
    for header in headers:
        for part in header.split(";"):
            name, sep, value = part.strip().partition("=")
            if sep and name.startswith(prefix) and len(name) > len(prefix):
                pairs.append(f"{name[len(prefix) :]}={value}")
    return "; ".join(pairs) or None


_ATTR = re.compile(
    rb"""(\s(?:href|src|action|formaction|poster|data-src|srcset)\s*=\s*["']?)/(?![/\\])""",
    re.IGNORECASE,
)
_CSS_URL = re.compile(rb"""(url\(\s*["']?)/(?![/\\])""", re.IGNORECASE)
_HEAD = re.compile(rb"<head\b[^>]*>", re.IGNORECASE)
_PREFIX_BYTES = PREFIX.encode() + b"/"

# Runs first in every proxied HTML page (static text, no data from anywhere).
SHIM = (
    b'<script data-ocore-share="1">(function(){var P="' + PREFIX.encode() + b'";'
    b"function fix(u){try{var s=String(u),r=new URL(s,location.href);"
    b'if(r.host!==location.host||r.pathname===P||r.pathname.indexOf(P+"/")===0)return u;'
    b"r.pathname=P+r.pathname;return r.href}catch(e){return u}}"
    b"var F=window.fetch;if(F){window.fetch=function(i,o){"
    b'if(typeof Request!=="undefined"&&i instanceof Request){var g=fix(i.url);'
    b"if(g!==i.url)i=new Request(g,i)}else{i=fix(i)}return F.call(this,i,o)}}"
    b"var X=window.XMLHttpRequest;if(X){var O=X.prototype.open;"
    b"X.prototype.open=function(){var a=Array.prototype.slice.call(arguments);"
    b"a[1]=fix(a[1]);return O.apply(this,a)}}"
    b"var W=window.WebSocket;if(W){var S=function(u,p){"
    b"return p===undefined?new W(fix(u)):new W(fix(u),p)};S.prototype=W.prototype;"
    b'["CONNECTING","OPEN","CLOSING","CLOSED"].forEach(function(k){S[k]=W[k]});'
    b"window.WebSocket=S}"
    b'["Worker","SharedWorker"].forEach(function(n){var C=window[n];if(C){'
    b"var K=function(u,o){return new C(fix(u),o)};K.prototype=C.prototype;window[n]=K}});"
    b"var N=window.navigator;if(N&&N.sendBeacon){var B=N.sendBeacon;"
    b"N.sendBeacon=function(u,d){return B.call(N,fix(u),d)}}"
    b'["pushState","replaceState"].forEach(function(m){var H=window.history,h=H&&H[m];'
    b"if(h)H[m]=function(s,t,u){return u===undefined||u===null?h.call(H,s,t):"
    b"h.call(H,s,t,fix(u))}});"
    b'document.addEventListener("submit",function(e){var f=e.target,a=f&&f.getAttribute'
    b'&&f.getAttribute("action");if(a){var g=fix(a);if(g!==a)f.setAttribute("action",g)}});'
    b'document.addEventListener("click",function(e){var t=e.target,l=t&&t.closest&&'
    b't.closest("a[href]"),h=l&&l.getAttribute("href");'
    b'if(h&&h.charAt(0)==="/"){var g=fix(h);if(g!==h)l.setAttribute("href",g)}},true)'
    b"})();</script>"
)


def html(body: bytes) -> bytes:
    body = _CSS_URL.sub(rb"\1" + _PREFIX_BYTES, _ATTR.sub(rb"\1" + _PREFIX_BYTES, body))
    head = _HEAD.search(body)
    if head is None:
        return body
    return body[: head.end()] + SHIM + body[head.end() :]


def css(body: bytes) -> bytes:
    return _CSS_URL.sub(rb"\1" + _PREFIX_BYTES, body)
