"""The admin application's typed state, shared by its views.

``CONFIG`` and ``METRICS`` are the proxy app's own keys: the access-log
middleware (sidecar/proxy/accesslog.py) reads them on both listeners.
"""

from __future__ import annotations

from aiohttp import web

from admin.auth import AdminVerifier
from admin.console.auth import ConsoleAuth
from admin.schema import Rules
from admin.service import Service
from admin.tokenindex import TokenIndex
from sidecar.proxy.state import CONFIG, METRICS
from sidecar.store.management import AdminStore

__all__ = ["CONFIG", "METRICS"]  # and the admin app's own keys below

REDIS_URL = web.AppKey("redis_url", str)
STORE = web.AppKey("store", AdminStore)
VERIFIER = web.AppKey("verifier", AdminVerifier)
#: The web console's sessions (admin/console/).
CONSOLE = web.AppKey("console", ConsoleAuth)
SERVICE = web.AppKey("service", Service)
INDEX = web.AppKey("index", TokenIndex)
RULES = web.AppKey("rules", Rules)
#: Whether this process loads the token index at start (one process of several does).
WARM_INDEX = web.AppKey("warm_index", bool)
