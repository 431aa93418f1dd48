"""The few pages ocore itself shows on the public share paths.

Every value that comes from outside is escaped. The pages carry a strict CSP
(no scripts at all, forms only to this origin, no framing), and are never
cached or indexed: a share URL holds a secret.
"""

from __future__ import annotations

import html
from urllib.parse import quote

from starlette.requests import HTTPConnection
from starlette.responses import HTMLResponse, Response

from ocore.core.errors import OcoreError
from ocore.core.problems import problem_response

OWN_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    # Not "no-referrer": with it, browsers send "Origin: null" on the login
    # form's POST and the same-origin check refuses it. "same-origin" still
    # keeps the token in the URL from reaching any other site.
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "X-Robots-Tag": "noindex, nofollow",
}

_STYLE = (
    "body{font-family:system-ui,sans-serif;background:#f6f7f9;color:#222;margin:0}"
    "main{max-width:26rem;margin:12vh auto;padding:2rem;background:#fff;border-radius:8px;"
    "box-shadow:0 1px 4px rgba(0,0,0,.12)}h1{font-size:1.25rem;margin-top:0}"
    "label{display:block;margin:1rem 0 .25rem}input{width:100%;box-sizing:border-box;"
    "padding:.5rem;font-size:1rem}button{margin-top:1rem;padding:.5rem 1rem;font-size:1rem}"
    ".error{color:#b00020}"
)


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="robots" content="noindex, nofollow">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n"
        f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


# One fixed page for unknown, expired and deactivated links (and for a proxy
# request without a valid share session): byte for byte the same, so a
# response tells nothing about which it was.
_NOT_FOUND_PAGE = _page(
    "Share link not available",
    "<h1>This link is not available</h1>\n"
    "<p>The share link does not exist, has expired or was switched off. "
    "Ask the person who sent it for a new one.</p>",
)


def not_found() -> HTMLResponse:
    return HTMLResponse(_NOT_FOUND_PAGE, status_code=404, headers=OWN_PAGE_HEADERS)


def login_form(token: str, *, error: str | None = None, status_code: int = 200) -> HTMLResponse:
    # The token only ever has URL-safe characters (checked before we get here);
    # quoting and escaping it anyway keeps this function safe on its own.
    action = html.escape(f"/api/share/{quote(token, safe='')}/login", quote=True)
    alert = f'<p class="error" role="alert">{html.escape(error)}</p>\n' if error else ""
    body = (
        "<h1>This environment is password protected</h1>\n"
        "<p>Enter the password you were given with the link.</p>\n"
        f"{alert}"
        f'<form method="post" action="{action}">\n'
        '<label for="password">Password</label>\n'
        '<input type="password" id="password" name="password" required '
        'autocomplete="current-password" maxlength="1024" autofocus>\n'
        '<button type="submit">Open</button>\n'
        "</form>"
    )
    return HTMLResponse(
        _page("Protected share", body), status_code=status_code, headers=OWN_PAGE_HEADERS
    )


def wants_html(conn: HTTPConnection) -> bool:
    """Browsers navigating ask for text/html first; API clients get problem JSON."""
    accept = conn.headers.get("accept", "")
    return "text/html" in accept or "application/xhtml+xml" in accept


def error(conn: HTTPConnection, exc: OcoreError) -> Response:
    """An error on a public path: a small page for browsers, RFC 9457 for the rest."""
    headers = dict(OWN_PAGE_HEADERS)
    retry_after = exc.extra.get("retry_after")
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    if not wants_html(conn):
        return problem_response(
            exc.status, code=exc.code, title=exc.title, detail=exc.detail, headers=headers
        )
    body = f"<h1>{html.escape(exc.title)}</h1>\n<p>{html.escape(exc.detail)}</p>"
    return HTMLResponse(_page(exc.title, body), status_code=exc.status, headers=headers)
