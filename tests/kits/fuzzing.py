"""Schemathesis hooks for ``tests/test_admin_openapi.py``: a fresh full-admin caller per case.

Schemathesis learns values from answers (``GET /me`` tells it the caller's
client_id), so a single caller soon revokes, regenerates or deactivates
itself, and every later case would only test the 401. Each case therefore
gets a token of its own, for a user of its own, written straight to the store
as ``keystile bootstrap`` does. The store's URL comes from
``KEYSTILE_FUZZ_REDIS_URL``, set by the test.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from typing import Any

import redis.asyncio as aioredis
import schemathesis

from sidecar.store.management import AdminStore
from tests.kits.redis import make_config, seed_token

_numbers = itertools.count()


async def _mint(url: str) -> str:
    client = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        user = f"fuzz-{os.getpid()}-{next(_numbers)}"
        store = AdminStore(client)
        issued = await seed_token(store, make_config(url), user=user, access={"admin": "full"})
        return issued.bearer
    finally:
        await client.aclose()


@schemathesis.auth(refresh_interval=None)
class FreshAdmin:
    def get(self, case: Any, context: Any) -> str:
        return asyncio.run(_mint(os.environ["KEYSTILE_FUZZ_REDIS_URL"]))

    def set(self, case: Any, data: str, context: Any) -> None:
        case.headers = dict(case.headers or {})
        case.headers["Authorization"] = f"Bearer {data}"
