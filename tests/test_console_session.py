"""The web console's sessions over HTTP (admin/console/): sign-in, cookie, CSRF, ending.

Real admin app and proxy on loopback, real Redis; the browser's side is in
tests/test_console.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Mapping
from http.cookies import SimpleCookie
from typing import Any

import pytest
import redis.asyncio as aioredis

from sidecar import tokenformat
from tests.kits.admin import Harness, Reply, harness

SESSION = "/console/v1/session"
Headers = Mapping[str, str]


@pytest.fixture
async def h(redis_url: str) -> AsyncIterator[Harness]:
    async with harness(redis_url, limits={"wrong_secrets_per_minute": 2}) as started:
        yield started


async def send(
    h: Harness,
    method: str,
    path: str,
    *,
    json: Any = None,
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """A request with only the headers given: no bearer token (the cookie jar ignores IPs)."""
    async with h.session.request(method, h.admin_url + path, json=json, headers=headers) as resp:
        raw = await resp.read()
        json_body = raw and resp.content_type == "application/json"
        return Reply(resp.status, await resp.json() if json_body else raw, resp.headers)


async def sign_in(h: Harness, token: str) -> tuple[dict[str, str], str]:
    """The ``Cookie`` header of a new session and its CSRF secret."""
    reply = await send(h, "POST", SESSION, json={"token": token})
    assert reply.status == 200, reply.body
    cookie = SimpleCookie(reply.headers["Set-Cookie"])["keystile_console"]
    return {"Cookie": f"keystile_console={cookie.value}"}, reply.body["csrf"]


async def test_sign_in_sets_a_strict_httponly_cookie_that_is_not_the_token(h: Harness) -> None:
    """Signing in answers the caller and a random session cookie: HttpOnly, SameSite=Strict."""
    reply = await send(h, "POST", SESSION, json={"token": h.root})

    assert reply.status == 200
    assert reply.body["user"] == "root" and reply.body["level"] == "full"
    set_cookie = reply.headers["Set-Cookie"]
    cookie = SimpleCookie(set_cookie)["keystile_console"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
    assert not cookie["secure"]  # plain http on loopback; Secure when the request came over TLS
    secret = h.root.split("_")[2]
    assert secret[:20] not in set_cookie and secret[:20] not in str(reply.body)
    assert reply.headers["Cache-Control"] == "no-store"


async def test_the_cookie_is_secure_behind_a_tls_proxy(h: Harness) -> None:
    """Signed in through a proxy that terminated TLS (X-Forwarded-Proto: https): Secure is set."""
    headers = {"X-Forwarded-Proto": "https"}

    reply = await send(h, "POST", SESSION, json={"token": h.root}, headers=headers)

    assert SimpleCookie(reply.headers["Set-Cookie"])["keystile_console"]["secure"]


async def test_a_wrong_token_is_a_401_naming_the_token_field(h: Harness) -> None:
    """A wrong secret and a malformed token both answer 401 with field "token"."""
    wrong = h.root[:-8] + "AAAAAAAA"

    replies = [await send(h, "POST", SESSION, json={"token": t}) for t in (wrong, "not a token")]

    assert [(r.status, r.body["field"]) for r in replies] == [(401, "token"), (401, "token")]
    assert all("Set-Cookie" not in r.headers for r in replies)


async def test_sign_in_counts_toward_the_wrong_secret_limit(h: Harness) -> None:
    """Past limits.wrong_secrets_per_minute wrong secrets, sign-in answers 429, as the API does."""
    made = await h.token(user="root", access={"admin": "full"})
    wrong = tokenformat.format_token("ks", made["client_id"], made["client_secret"][::-1])

    statuses = [(await send(h, "POST", SESSION, json={"token": wrong})).status for _ in range(4)]

    assert statuses[:2] == [401, 401] and statuses[-1] == 429


async def test_a_session_reads_the_api_and_its_changes_need_the_csrf_header(h: Harness) -> None:
    """With the cookie, GETs work; a POST without X-CSRF-Token is a 403, with it a 201."""
    cookie, csrf = await sign_in(h, h.root)
    body = {"username": "carol"}

    listed = await send(h, "GET", "/admin/v1/tokens", headers=cookie)
    refused = await send(h, "POST", "/admin/v1/users", json=body, headers=cookie)
    forged = await send(
        h, "POST", "/admin/v1/users", json=body, headers={**cookie, "X-CSRF-Token": "x"}
    )
    made = await send(
        h, "POST", "/admin/v1/users", json=body, headers={**cookie, "X-CSRF-Token": csrf}
    )

    assert listed.status == 200 and listed.body["total"] == 1
    assert (refused.status, refused.body["error"]) == (403, "csrf_failed")
    assert forged.status == 403
    assert made.status == 201


async def test_a_read_only_session_cannot_change_anything(h: Harness) -> None:
    """A session of a token with read on admin is refused every change, CSRF header or not."""
    await h.user("viewer")
    reader = await h.token(user="viewer", access={"admin": "read"})
    cookie, csrf = await sign_in(h, reader["token"])
    headers = {**cookie, "X-CSRF-Token": csrf}

    created = await send(h, "POST", "/admin/v1/tokens", json={"user": "viewer"}, headers=headers)
    revoked = await send(
        h, "POST", f"/admin/v1/tokens/{reader['client_id']}/revoke", headers=headers
    )
    listed = await send(h, "GET", "/admin/v1/tokens", headers=cookie)

    assert (created.status, revoked.status, listed.status) == (403, 403, 200)
    assert (await h.call("GET", f"/tokens/{reader['client_id']}")).body["status"] == "active"


async def test_the_store_keeps_a_hash_of_the_session_id_with_an_idle_ttl(h: Harness) -> None:
    """Redis holds the SHA-256 of the session id, its client_id and CSRF, and an idle TTL."""
    cookie, csrf = await sign_in(h, h.root)
    session_id = cookie["Cookie"].split("=", 1)[1]
    client = aioredis.Redis.from_url(h.config.redis.url or "", decode_responses=True)

    found = [key async for key in client.scan_iter("{ks}:console-session:*")]
    fields = await client.hgetall(found[0])
    ttl = await client.ttl(found[0])
    await client.aclose()

    assert found == ["{ks}:console-session:" + hashlib.sha256(session_id.encode()).hexdigest()]
    assert fields["csrf"] == csrf and fields["client_id"] == h.root.split("_")[1]
    assert h.root.split("_")[2][:20] not in str(fields)
    assert 0 < ttl <= h.config.admin.session_idle_seconds


@pytest.mark.parametrize("change", ["revoke", "regenerate", "deactivate"])
async def test_a_session_ends_when_its_token_stops_standing(h: Harness, change: str) -> None:
    """Revoking or regenerating the token, or deactivating its user, ends the session at once."""
    await h.user("dora")
    made = await h.token(user="dora", access={"admin": "full"})
    cookie, _ = await sign_in(h, made["token"])
    assert (await send(h, "GET", SESSION, headers=cookie)).status == 200

    if change == "deactivate":
        await h.call("PATCH", "/users/dora", json={"active": False})
    else:
        await h.call("POST", f"/tokens/{made['client_id']}/{change}", json={})

    assert (await send(h, "GET", "/admin/v1/tokens", headers=cookie)).status == 401
    if change == "deactivate":  # ended for good: reactivating does not bring it back
        await h.call("PATCH", "/users/dora", json={"active": True})
    assert (await send(h, "GET", SESSION, headers=cookie)).status == 401


async def test_sign_out_ends_the_session_and_clears_the_cookie(h: Harness) -> None:
    """DELETE on the session (with its CSRF secret) ends it; the cookie is expired."""
    cookie, csrf = await sign_in(h, h.root)

    without = await send(h, "DELETE", SESSION, headers=cookie)
    out = await send(h, "DELETE", SESSION, headers={**cookie, "X-CSRF-Token": csrf})
    after = await send(h, "GET", SESSION, headers=cookie)

    assert without.status == 403
    assert out.status == 204 and 'keystile_console=""' in out.headers["Set-Cookie"]
    assert after.status == 401


async def test_every_answer_carries_the_security_headers(h: Harness) -> None:
    """The page, its script and an API error all carry CSP, no-referrer and nosniff."""
    replies = [
        await send(h, "GET", "/"),
        await send(h, "GET", "/console/static/app.js"),
        await send(h, "GET", "/admin/v1/tokens"),
    ]

    for reply in replies:
        csp = reply.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert reply.headers["Referrer-Policy"] == "no-referrer"
        assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert [r.status for r in replies] == [200, 200, 401]
