"""The security headers of every answer of the admin listener, console pages or API.

The console loads only its own files (``default-src 'self'``), runs no inline
script or style, cannot be framed (clickjacking), sends no Referer (a token
page's URL names a client_id) and must not be sniffed into another type.
They are set on every answer, errors and static files included, through
``on_response_prepare``: a JSON answer is harmless under them, and a page
that forgot them would be the one that mattered.
"""

from __future__ import annotations

from aiohttp import web

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; object-src 'none'; "
    "frame-ancestors 'none'"
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
