"""The nginx configuration of the share gateway (see ``gateway``), as one include file.

It goes in nginx's ``http {}`` context (Debian: ``/etc/nginx/conf.d/``) and
holds one ``server`` that fronts ocore for everything, with the static-file
shortcut for share links. It needs OpenResty's Lua module (Debian:
``libnginx-mod-http-lua``): a variable upstream port with kept-alive
connections, and a per-worker memory of ocore's answers, are what plain nginx
lacks (``auth_request`` plus ``proxy_cache`` measured at under half the
throughput, bench/README.md). It carries the gateway token: keep it readable
by root only. TLS is the administrator's: add the ``listen … ssl`` and
certificate lines to the server block it writes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ocore.shares import gateway, proxy
from ocore.shares.session import COOKIE_NAME

_LISTEN = re.compile(r"(?:[0-9.]+:|\[[0-9a-fA-F:]+\]:)?[0-9]{1,5}")
_SERVER_NAME = re.compile(r"[A-Za-z0-9*_.-]{1,253}")
_UPSTREAM = re.compile(r"[A-Za-z0-9.-]{1,253}:[0-9]{1,5}|unix:/[A-Za-z0-9_./-]+")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{32,256}")
_CACHE_DIR = re.compile(r"/[A-Za-z0-9_./-]{1,255}")
DEFAULT_STATIC_CACHE_SECONDS = 60
MAX_STATIC_CACHE_SECONDS = 86_400
DEFAULT_CACHE_DIR = "/var/cache/nginx/ocore-share"

# nginx drops hop-by-hop headers itself; these are the rest of what ocore's own
# proxy drops, plus the CORS family it skips by prefix.
_HIDDEN_RESPONSE_HEADERS = sorted(
    (proxy.RESPONSE_DROP - proxy.HOP_BY_HOP - {"content-length", "location"})
    | {"trailer", "proxy-authenticate", "proxy-authentication-info"}
    | {
        f"access-control-{name}"
        for name in (
            "allow-origin",
            "allow-credentials",
            "allow-methods",
            "allow-headers",
            "allow-private-network",
            "expose-headers",
            "max-age",
        )
    }
)
# The request line of a static file nginx may serve (``ocore_static``: its Odoo path
# and query): unreserved characters only, so nothing is left for nginx to decode.
_STATIC_REQUEST = (
    r"~^(?:GET|HEAD) /api/s-proxy(?<ocore_static>"
    r"/(?:web/assets|[a-z0-9_]+/static)/"
    r"(?![^?]*\.\.)"  # no ".." anywhere in the path
    r"[A-Za-z0-9._~-]+(?:/[A-Za-z0-9._~-]+)*"
    r"(?<![.][cC][sS][sS])"  # not a stylesheet
    r"(?:\?[A-Za-z0-9._~=&-]*)?"
    r")$"
)
# What a browser's request for a static file may tell Odoo; nothing else is sent.
_FORWARDED_REQUEST_HEADERS = ("Accept", "Accept-Encoding", "Accept-Language", "User-Agent")
# Without the cache these go to Odoo too; with it, nginx answers them from its copy.
_CONDITIONAL_REQUEST_HEADERS = ("If-None-Match", "If-Modified-Since", "Range", "If-Range")
# Odoo's answer never steers nginx: an X-Accel-Redirect from a module's code would
# otherwise reach nginx's internal locations (the authorization one among them).
_IGNORED_RESPONSE_HEADERS = (
    "X-Accel-Redirect",
    "X-Accel-Expires",
    "X-Accel-Limit-Rate",
    "X-Accel-Buffering",
    "X-Accel-Charset",
)
# With the cache, nginx keeps files for the gateway's own time: Odoo's year-long
# max-age would outlive a deploy, and its session cookie is for nobody (nginx
# sends Odoo no cookie, and drops Set-Cookie from every answer).
_IGNORED_FOR_CACHING = ("Cache-Control", "Expires", "Set-Cookie")

_TEMPLATE = r"""# ocore share gateway, written by `ocore share-gateway nginx-config`.
# Include it in nginx's http {} block. It holds the gateway token: root-readable only.
# nginx.conf's top level needs the Lua module (libnginx-mod-http-lua loads it) and
# `pcre_jit on;` (the maps below run on every request): docs/share-gateway.md.

@CACHE_PATH@
upstream ocore_api {
    server @API@;
    keepalive 32;
}

# A share's Odoo on this machine, at the port ocore named; connections are kept.
upstream ocore_share_odoo {
    server 127.0.0.1:1;
    balancer_by_lua_block {
        local balancer = require "ngx.balancer"
        local ok, err = balancer.set_current_peer("127.0.0.1", tonumber(ngx.var.ocore_share_port))
        if not ok then
            ngx.log(ngx.ERR, "ocore share gateway: ", err)
            return ngx.exit(502)
        end
    }
    keepalive 32;
}

# The Odoo path of a share's static file, or "" for any other request. Raw
# request line only: no percent escapes, no "..", no stylesheets (ocore
# rewrites their URLs), GET and HEAD only.
map "$request_method $request_uri" $ocore_share_static {
    default "";
    "@STATIC_REQUEST@" $ocore_static;
}

# Shared caches must not hand one visitor's answers to another.
map $upstream_http_cache_control $ocore_share_cache_control {
    "" "private";
    "~*^(?<ocore_cc_head>.*)public(?<ocore_cc_tail>.*)$" "${ocore_cc_head}private${ocore_cc_tail}";
    default $upstream_http_cache_control;
}

map $http_upgrade $ocore_connection {
    default upgrade;
    "" "";
}

server {
    listen @LISTEN@;
    server_name @SERVER_NAME@;
    client_max_body_size @MAX_BODY@;

    proxy_http_version 1.1;
    # With its port: ocore compares it with the Origin of state-changing requests.
    proxy_set_header Host $http_host;
    proxy_set_header X-Forwarded-For $remote_addr;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_set_header Upgrade $http_upgrade;
    proxy_set_header Connection $ocore_connection;
    # ocore drops it from what it proxies; should one still come, it is not followed.
    proxy_ignore_headers X-Accel-Redirect;
    # Live logs (SSE) and proxied downloads go out as they come.
    proxy_buffering off;
    proxy_read_timeout 1h;

    location / {
        proxy_pass http://ocore_api;
    }

    location @ocore {
        proxy_pass http://ocore_api;
    }

    # Only nginx itself asks this, with the token below.
    location @AUTH_PATH@ {
        return 404;
    }

    location = /_ocore/share-auth {
        internal;
        proxy_pass http://ocore_api@AUTH_PATH@;
        proxy_pass_request_body off;
        proxy_pass_request_headers off;
        proxy_set_header Host $host;
        proxy_set_header Connection "";
        proxy_set_header Cookie "@COOKIE@=$cookie_@COOKIE@";
        proxy_set_header @TOKEN_HEADER@ "@TOKEN@";
        proxy_connect_timeout 2s;
        proxy_read_timeout 5s;
    }

    location /api/s-proxy/ {
        error_page 418 = @ocore;
        if ($ocore_share_static = "") {
            return 418;
        }
        set $ocore_share_host "";
        set $ocore_share_port "";
        access_by_lua_block {
            local cookie = ngx.var.cookie_@COOKIE@
            if not cookie then
                return ngx.exit(418)
            end
            -- Per worker (a Lua VM each): a table lookup, no shared-memory lock.
            local cache = package.loaded.ocore_share_auth
            if not cache then
                cache = require("resty.lrucache").new(10000)
                package.loaded.ocore_share_auth = cache
                package.loaded.ocore_share_asking = {}
            end
            local asking = package.loaded.ocore_share_asking
            local target, stale = cache:get(cookie)
            local since = asking[cookie]
            if not target and stale and since and ngx.now() - since < 7 then
                -- Another request is asking ocore again right now (its timeouts
                -- bound that): not every request waits for the same answer.
                target = stale
            end
            if not target then
                asking[cookie] = ngx.now()
                local answer = ngx.location.capture("/_ocore/share-auth")
                asking[cookie] = nil
                if answer.status ~= 200 then
                    cache:delete(cookie)
                    return ngx.exit(418)
                end
                -- A subrequest's header table is keyed by the names as sent (lower case).
                local upstream = answer.header["@UPSTREAM_HEADER@"] or ""
                local port = upstream:match("^127%.0%.0%.1:(%d+)$")
                local host = answer.header["@HOST_HEADER@"]
                if not port or not host then
                    return ngx.exit(418)
                end
                target = { port = tonumber(port), host = host }
                local ttl = tonumber(answer.header["@CACHE_HEADER@"]) or 0
                if ttl > 0 then
                    cache:set(cookie, target, ttl)
                end
            end
            ngx.var.ocore_share_port = target.port
            ngx.var.ocore_share_host = target.host
        }
        # A redirect, an error of Odoo's or of reaching it: ocore does the
        # whole request again with all of its checks.
        proxy_intercept_errors on;
        error_page 301 302 303 307 308 401 403 500 502 503 504 = @ocore;

        proxy_pass http://ocore_share_odoo$ocore_share_static;
        proxy_pass_request_headers off;
        proxy_set_header Host $ocore_share_host;
        proxy_set_header X-Forwarded-Host $ocore_share_host;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header X-Forwarded-For $remote_addr;
        proxy_set_header Connection "";
@FORWARDED@
        proxy_ignore_headers @IGNORED@;
@CACHE@
        # Odoo's bundles are hundreds of KB: few, large buffers (measured).
        proxy_buffering on;
        proxy_buffer_size 128k;
        proxy_buffers 4 128k;
        proxy_busy_buffers_size 256k;
        proxy_connect_timeout 10s;
        proxy_read_timeout 180s;
        # A shared page pulls dozens of these; ocore logs the page and each link's use.
        access_log off;
@HIDDEN@
        proxy_hide_header Cache-Control;
        add_header Cache-Control $ocore_share_cache_control always;
        add_header Referrer-Policy same-origin always;
        add_header X-Robots-Tag "noindex, nofollow" always;
    }
}
"""


# Static files nginx fetched, kept on disk (the page cache serves them).
_CACHE_PATH = (
    "# The static files of shared pages that nginx fetched (see the share location).\n"
    "proxy_cache_path @CACHE_DIR@ levels=1:2 keys_zone=ocore_share_static:10m\n"
    "    max_size=1g inactive=10m use_temp_path=off;\n"
)
# Keyed by the Odoo (its port and Host, from ocore's answer) and the path: two
# environments never share a copy, and a deploy moves to the other colour's port.
# Only after the cookie was allowed above; only 200s.
_CACHE = """        proxy_cache ocore_share_static;
        proxy_cache_key "$ocore_share_port|$ocore_share_host|$ocore_static";
        proxy_cache_valid 200 @SECONDS@s;
        proxy_cache_lock on;
        proxy_cache_use_stale updating;"""


@dataclass(frozen=True)
class GatewayConfig:
    listen: str
    server_name: str
    api: str
    token: str
    max_body_bytes: int
    # How long nginx keeps a static file it fetched, per Odoo and path (0: not at all).
    static_cache_seconds: int = DEFAULT_STATIC_CACHE_SECONDS
    cache_dir: str = DEFAULT_CACHE_DIR


def render(config: GatewayConfig) -> str:
    """The include file; every value is checked, so none can add a directive."""
    checks = (
        (_LISTEN, config.listen, "listen: a port or address:port"),
        (_SERVER_NAME, config.server_name, "server name: a host name"),
        (_UPSTREAM, config.api, "API: host:port or unix:/path"),
        (_TOKEN, config.token, "gateway token: 32 or more URL-safe characters"),
    )
    for pattern, value, what in checks:
        if not pattern.fullmatch(value):
            raise ValueError(f"Unusable {what}: {value!r}")
    seconds = config.static_cache_seconds
    if not 0 <= seconds <= MAX_STATIC_CACHE_SECONDS:
        raise ValueError(
            f"Unusable static cache time: {seconds} (0 to {MAX_STATIC_CACHE_SECONDS} s)"
        )
    if seconds and (not _CACHE_DIR.fullmatch(config.cache_dir) or ".." in config.cache_dir):
        raise ValueError(f"Unusable cache directory: {config.cache_dir!r}")
    sent = _FORWARDED_REQUEST_HEADERS + (() if seconds else _CONDITIONAL_REQUEST_HEADERS)
    forwarded = "\n".join(
        f"        proxy_set_header {name} $http_{name.lower().replace('-', '_')};" for name in sent
    )
    ignored = _IGNORED_RESPONSE_HEADERS + (_IGNORED_FOR_CACHING if seconds else ())
    hidden = "\n".join(f"        proxy_hide_header {name};" for name in _HIDDEN_RESPONSE_HEADERS)
    values = {
        "@STATIC_REQUEST@": _STATIC_REQUEST,
        "@API@": config.api,
        "@LISTEN@": config.listen,
        "@SERVER_NAME@": config.server_name,
        "@MAX_BODY@": str(config.max_body_bytes),
        "@AUTH_PATH@": gateway.AUTH_PATH,
        "@COOKIE@": COOKIE_NAME,
        "@TOKEN_HEADER@": gateway.TOKEN_HEADER,
        "@TOKEN@": config.token,
        "@UPSTREAM_HEADER@": gateway.UPSTREAM_HEADER.lower(),
        "@HOST_HEADER@": gateway.HOST_HEADER.lower(),
        "@CACHE_HEADER@": gateway.CACHE_HEADER.lower(),
        "@FORWARDED@": forwarded,
        "@IGNORED@": " ".join(ignored),
        "@CACHE_PATH@": _CACHE_PATH.replace("@CACHE_DIR@", config.cache_dir) if seconds else "",
        "@CACHE@": _CACHE.replace("@SECONDS@", str(seconds)) if seconds else "",
        "@HIDDEN@": hidden,
    }
    text = _TEMPLATE
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    return text
