"""The proxy end to end: a real HTTP client, the proxy on a real port, a real upstream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from sidecar.store.management import AdminStore
from tests.kits.proxy import Env, running
from tests.kits.redis import RedisProcess, basic

CHALLENGE = 'Bearer realm="keystile"'


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield session


def forged(token: str) -> str:
    """The token with one secret character changed and a checksum that still fits."""
    from sidecar import tokenformat

    prefix, client_id, rest = token.split("_", 2)
    secret = rest[: tokenformat.SECRET_LENGTH]
    changed = ("A" if secret[0] != "A" else "B") + secret[1:]
    return tokenformat.format_token(prefix, client_id, changed)


# -- credentials ---------------------------------------------------------------


async def test_bearer_request_reaches_upstream_with_identity(
    env: Env, http: aiohttp.ClientSession
) -> None:
    """A valid Bearer token is forwarded, prefix stripped, identity set, credential dropped."""
    async with http.get(f"{env.url}/orders/42?x=1", headers=env.bearer()) as response:
        assert response.status == 200
        assert await response.json() == {"path": "/o/42?x=1", "length": 0}
    seen = env.upstream.seen[-1]
    assert seen.header("X-Auth-User") == ["alice"]
    assert seen.header("X-Auth-Client-Id") == [env.tokens.full_id]
    assert seen.header("X-Auth-Access") == ["full"]
    assert seen.header("X-Auth-Role") == []
    assert seen.header("Authorization") == []


async def test_basic_credential_is_accepted(env: Env, http: aiohttp.ClientSession) -> None:
    """Basic base64(client_id:client_secret) authenticates like the Bearer token."""
    headers = {"Authorization": basic(f"{env.tokens.full_id}:{env.tokens.full_secret}")}
    async with http.get(f"{env.url}/orders/1", headers=headers) as response:
        assert response.status == 200
    assert env.upstream.seen[-1].header("X-Auth-User") == ["alice"]


async def test_basic_scheme_name_is_case_insensitive(env: Env, http: aiohttp.ClientSession) -> None:
    """``bAsIc`` is the Basic scheme (RFC 9110 section 11.1)."""
    value = basic(f"{env.tokens.full_id}:{env.tokens.full_secret}")
    headers = {"Authorization": value.replace("Basic", "bAsIc")}
    async with http.get(f"{env.url}/orders/1", headers=headers) as response:
        assert response.status == 200


async def test_header_pair_is_accepted_and_secret_not_forwarded(
    env: Env, http: aiohttp.ClientSession
) -> None:
    """X-Client-Id/X-Client-Secret authenticate; the secret never reaches the upstream."""
    headers = {"X-Client-Id": env.tokens.full_id, "X-Client-Secret": env.tokens.full_secret}
    async with http.post(f"{env.url}/orders/1", headers=headers, data=b"abc") as response:
        assert response.status == 200
    seen = env.upstream.seen[-1]
    assert seen.header("X-Client-Secret") == []
    assert seen.body_length == 3


async def test_no_credential_is_401_with_challenge(env: Env, http: aiohttp.ClientSession) -> None:
    """No credential: 401, the bare Bearer challenge, a JSON error body, nothing upstream."""
    async with http.get(f"{env.url}/orders/1") as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == CHALLENGE
        assert (await response.json())["error"] == "unauthorized"
    assert env.upstream.seen == []


async def test_other_scheme_counts_as_no_credential(env: Env, http: aiohttp.ClientSession) -> None:
    """A Digest credential gets the same 401 as no credential at all."""
    headers = {"Authorization": 'Digest username="a", response="b"'}
    async with http.get(f"{env.url}/orders/1", headers=headers) as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == CHALLENGE


async def test_every_bad_credential_gets_one_identical_401(
    env: Env, http: aiohttp.ClientSession
) -> None:
    """Unknown id, wrong secret, bad checksum, wrong prefix: one body, one challenge."""
    token = env.tokens.full
    unknown = token.replace(env.tokens.full_id, "A" * len(env.tokens.full_id))
    candidates = [forged(token), token[:-1] + ("x" if token[-1] != "x" else "y"), "zz" + token]
    candidates.append(unknown)
    answers = []
    for candidate in candidates:
        headers = {"Authorization": f"Bearer {candidate}"}
        async with http.get(f"{env.url}/orders/1", headers=headers) as response:
            answers.append(
                (response.status, response.headers["WWW-Authenticate"], await response.read())
            )
    assert {a[0] for a in answers} == {401}
    assert {a[1] for a in answers} == {f'{CHALLENGE}, error="invalid_token"'}
    assert len({a[2] for a in answers}) == 1


async def test_two_methods_at_once_is_400(env: Env, http: aiohttp.ClientSession) -> None:
    """Bearer plus the header pair in one request: 400 invalid_request with its challenge."""
    headers = {**env.bearer(), "X-Client-Id": env.tokens.full_id, "X-Client-Secret": "s"}
    async with http.get(f"{env.url}/orders/1", headers=headers) as response:
        assert response.status == 400
        assert response.headers["WWW-Authenticate"] == f'{CHALLENGE}, error="invalid_request"'
        assert (await response.json())["error"] == "invalid_request"
    assert env.upstream.seen == []


@pytest.mark.parametrize(
    "value",
    [
        "Basic !!!not-base64!!!",
        basic("no-colon-here"),
        basic(b"\xff\xfe:\xff"),
        "Bearer " + "a" * 5000,
        "Bearer two words",
    ],
    ids=["bad-base64", "no-colon", "not-utf8", "huge", "two-words"],
)
async def test_malformed_credential_is_4xx_json(
    env: Env, http: aiohttp.ClientSession, value: str
) -> None:
    """Malformed credential values get a 400 or 401 JSON error, never a 500."""
    async with http.get(f"{env.url}/orders/1", headers={"Authorization": value}) as response:
        assert response.status in (400, 401)
        assert set(await response.json()) >= {"error", "message"}
    assert env.upstream.seen == []


async def test_credential_in_query_string_is_never_read(
    env: Env, http: aiohttp.ClientSession
) -> None:
    """A token in the query string does not authenticate."""
    url = f"{env.url}/orders/1?access_token={env.tokens.full}&token={env.tokens.full}"
    async with http.get(url) as response:
        assert response.status == 401


# -- authorization and routing ---------------------------------------------------


async def test_read_level_refuses_unsafe_method(env: Env, http: aiohttp.ClientSession) -> None:
    """A read token may GET but not POST: 403 insufficient_scope."""
    headers = env.bearer(env.tokens.read_orders)
    async with http.get(f"{env.url}/orders/1", headers=headers) as response:
        assert response.status == 200
    async with http.post(f"{env.url}/orders/1", headers=headers, data=b"x") as response:
        assert response.status == 403
        assert response.headers["WWW-Authenticate"] == f'{CHALLENGE}, error="insufficient_scope"'


async def test_no_level_on_api_is_403(env: Env, http: aiohttp.ClientSession) -> None:
    """A token with no access to an API is refused there with 403."""
    async with http.get(f"{env.url}/billing/1", headers=env.bearer(env.tokens.read_orders)) as r:
        assert r.status == 403


async def test_unknown_path_is_404_only_after_authentication(
    env: Env, http: aiohttp.ClientSession
) -> None:
    """A path matching no API is 404 with a valid credential and 401 without."""
    async with http.get(f"{env.url}/nowhere", headers=env.bearer()) as response:
        assert response.status == 404
        assert (await response.json())["error"] == "not_found"
    async with http.get(f"{env.url}/nowhere") as response:
        assert response.status == 401


async def test_store_down_is_503_and_nothing_passes(
    private_redis: RedisProcess, tmp_path: object
) -> None:
    """Store unreachable: 503 with Retry-After, and the upstream sees nothing."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(private_redis.url, decode_responses=True)
    async with running(private_redis.url, AdminStore(client)) as env:
        private_redis.stop()
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{env.url}/orders/1", headers=env.bearer()) as response,
        ):
            assert response.status == 503
            assert response.headers["Retry-After"] == "1"
            assert (await response.json())["error"] == "unavailable"
        assert env.upstream.seen == []
    await client.aclose()


# -- header hygiene ----------------------------------------------------------------


async def test_client_identity_headers_are_replaced(env: Env, http: aiohttp.ClientSession) -> None:
    """Identity headers sent by the client never reach the upstream."""
    spoof = {"X-Auth-User": "mallory", "x-AUTH-role": "admin", "X-Auth-Access": "full"}
    async with http.get(f"{env.url}/orders/1", headers={**env.bearer(), **spoof}) as response:
        assert response.status == 200
    seen = env.upstream.seen[-1]
    assert seen.header("X-Auth-User") == ["alice"]
    assert seen.header("X-Auth-Role") == []


async def test_proxy_headers_follow_rfc_9110(env: Env, http: aiohttp.ClientSession) -> None:
    """Hop-by-hop and Connection-listed fields go; Via, X-Forwarded-* are set."""
    sent = {
        **env.bearer(),
        "Connection": "keep-alive, X-Private",
        "X-Private": "hop only",
        "Keep-Alive": "timeout=5",
        "X-Forwarded-For": "203.0.113.9",
        "X-Forwarded-Host": "spoofed.example",
        "X-HTTP-Method-Override": "DELETE",
        "X-Kept": "end-to-end",
    }
    async with http.get(f"{env.url}/orders/1", headers=sent) as response:
        assert response.status == 200
    seen = env.upstream.seen[-1]
    assert seen.method == "GET"
    assert seen.header("X-Private") == [] and seen.header("Keep-Alive") == []
    assert seen.header("X-HTTP-Method-Override") == []
    assert seen.header("X-Kept") == ["end-to-end"]
    assert seen.header("Via") == ["1.1 keystile"]
    assert seen.header("X-Forwarded-For") == ["203.0.113.9, 127.0.0.1"]
    assert seen.header("X-Forwarded-Proto") == ["http"]
    assert seen.header("X-Forwarded-Host") == [f"127.0.0.1:{env.proxy.port}"]


async def test_request_id_is_kept_or_created_and_returned(
    env: Env, http: aiohttp.ClientSession
) -> None:
    """A client's X-Request-Id goes upstream and comes back; without one, one is made."""
    headers = {**env.bearer(), "X-Request-Id": "abc-123"}
    async with http.get(f"{env.url}/orders/1", headers=headers) as response:
        assert response.headers.getall("X-Request-Id") == ["abc-123"]
    assert env.upstream.seen[-1].header("X-Request-Id") == ["abc-123"]
    async with http.get(f"{env.url}/orders/1", headers=env.bearer()) as response:
        made = response.headers["X-Request-Id"]
    assert env.upstream.seen[-1].header("X-Request-Id") == [made]
    async with http.get(f"{env.url}/orders/1") as response:
        assert response.status == 401
        assert len(response.headers["X-Request-Id"]) == 32


async def test_unsafe_request_id_is_replaced(env: Env, http: aiohttp.ClientSession) -> None:
    """A request id with odd characters is not copied into logs or upstream headers."""
    headers = {**env.bearer(), "X-Request-Id": 'evil" {"injected": 1}'}
    async with http.get(f"{env.url}/orders/1", headers=headers) as response:
        assert response.headers["X-Request-Id"] != headers["X-Request-Id"]


async def test_repeated_response_headers_stay_intact(env: Env, http: aiohttp.ClientSession) -> None:
    """Two Set-Cookie fields arrive as two; the upstream's Connection-listed field is dropped."""
    async with http.get(f"{env.url}/orders/cookies", headers=env.bearer()) as response:
        assert response.headers.getall("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/; HttpOnly"]
        assert "X-Secret-Hop" not in response.headers
        assert response.headers.getall("Via") == ["1.1 keystile"]


async def test_api_may_receive_the_credential_and_full_path(
    env: Env, http: aiohttp.ClientSession
) -> None:
    """An API with forward_credential and strip_prefix off gets both, as configured."""
    async with http.get(f"{env.url}/raw/x", headers=env.bearer()) as response:
        assert await response.json() == {"path": "/raw/x", "length": 0}
    assert env.upstream.seen[-1].header("Authorization") == [f"Bearer {env.tokens.full}"]


# -- bodies -------------------------------------------------------------------------


async def test_head_204_304_carry_no_body(env: Env, http: aiohttp.ClientSession) -> None:
    """HEAD, 204 and 304 answers pass with their headers and no body."""
    async with http.head(f"{env.url}/orders/download?bytes=1000", headers=env.bearer()) as r:
        assert r.status == 200
        assert r.headers["Content-Length"] == "1000"
        assert await r.read() == b""
    async with http.get(f"{env.url}/orders/no-content", headers=env.bearer()) as r:
        assert (r.status, await r.read()) == (204, b"")
    async with http.get(f"{env.url}/orders/not-modified", headers=env.bearer()) as r:
        assert (r.status, r.headers["ETag"], await r.read()) == (304, '"v1"', b"")


async def test_declared_body_over_limit_is_413_before_upstream(
    redis_url: str, store: AdminStore
) -> None:
    """A Content-Length over proxy.max_body_bytes is refused without contacting the upstream."""
    async with running(redis_url, store, proxy={"max_body_bytes": 1024}) as env:
        async with aiohttp.ClientSession() as http:
            url = f"{env.url}/orders/up"
            async with http.post(url, headers=env.bearer(), data=b"x" * 2048) as response:
                assert response.status == 413
                assert (await response.json())["error"] == "payload_too_large"
        assert env.upstream.seen == []


async def test_chunked_body_over_limit_is_413(redis_url: str, store: AdminStore) -> None:
    """A chunked upload that grows past the limit is cut and answered 413."""

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(64):
            yield b"y" * 1024

    async with running(redis_url, store, proxy={"max_body_bytes": 4096}) as env:
        async with aiohttp.ClientSession() as http:
            url = f"{env.url}/orders/up"
            async with http.post(url, headers=env.bearer(), data=chunks()) as response:
                assert response.status == 413
        assert all(seen.body_length <= 4096 for seen in env.upstream.seen)


# -- upstream faults ------------------------------------------------------------------


async def test_refused_upstream_is_502_without_naming_it(
    env: Env, http: aiohttp.ClientSession
) -> None:
    """Connection refused: 502, and the body names no host or port."""
    async with http.get(f"{env.url}/dead/x", headers=env.bearer()) as response:
        assert response.status == 502
        body = await response.text()
    assert "127.0.0.1" not in body and "bad_gateway" in body


async def test_reset_upstream_is_502_and_not_retried(env: Env, http: aiohttp.ClientSession) -> None:
    """An upstream that resets before answering: 502, and the request was sent once."""
    async with http.get(f"{env.url}/orders/warm", headers=env.bearer()) as response:
        assert response.status == 200  # leaves a pooled keep-alive connection
    async with http.get(f"{env.url}/orders/reset", headers=env.bearer()) as response:
        assert response.status == 502
    assert [s.raw_path for s in env.upstream.seen].count("/o/reset") == 1


async def test_slow_upstream_is_504(env: Env, http: aiohttp.ClientSession) -> None:
    """An upstream slower than the API's timeout: 504 without naming it."""
    async with http.get(f"{env.url}/slowapi/slow", headers=env.bearer()) as response:
        assert response.status == 504
        body = await response.text()
    assert "gateway_timeout" in body and str(env.upstream.port) not in body


async def test_client_disconnect_cancels_upstream_request(env: Env) -> None:
    """A client that goes away while the upstream works cancels the upstream request."""
    _, writer = await asyncio.open_connection("127.0.0.1", env.proxy.port)
    token = env.tokens.full
    writer.write(
        f"GET /orders/slow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
    )
    await writer.drain()
    await asyncio.wait_for(env.upstream.arrived.wait(), 3)
    writer.close()
    # The check: a TimeoutError here means the upstream kept working for nobody.
    await asyncio.wait_for(env.upstream.cancelled.wait(), 3)


# -- WebSocket ----------------------------------------------------------------------------


async def test_websocket_passes_through_after_credential_check(
    env: Env, http: aiohttp.ClientSession
) -> None:
    """A WebSocket upgrade with a valid token is tunnelled, with identity and subprotocol."""
    async with http.ws_connect(
        f"{env.url}/orders/ws",
        headers=env.bearer(),
        protocols=("chat.v2",),
    ) as ws:
        await ws.send_str("hi")
        assert (await ws.receive()).data == "echo:hi"
        await ws.send_bytes(b"abc")
        assert (await ws.receive()).data == b"cba"
        assert ws.protocol == "chat.v2"
    seen = env.upstream.seen[-1]
    assert seen.header("X-Auth-User") == ["alice"]
    assert seen.header("Authorization") == []


async def test_websocket_without_credential_is_refused(
    env: Env, http: aiohttp.ClientSession
) -> None:
    """A WebSocket upgrade without a credential is 401 and never reaches the upstream."""
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(f"{env.url}/orders/ws")
    assert refused.value.status == 401
    assert env.upstream.seen == []


async def test_websocket_refused_by_upstream_is_502(env: Env, http: aiohttp.ClientSession) -> None:
    """An upstream that answers the upgrade with a plain response: the client gets 502."""
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(f"{env.url}/orders/not-a-socket", headers=env.bearer())
    assert refused.value.status == 502


async def test_trace_is_never_forwarded(env: Env, http: aiohttp.ClientSession) -> None:
    """TRACE, which would echo the identity headers back, is a 405 even for a full token."""
    async with http.request("TRACE", f"{env.url}/orders/1", headers=env.bearer()) as response:
        assert response.status == 405
        assert (await response.json())["error"] == "method_not_allowed"
        assert "GET" in response.headers["Allow"]
    assert env.upstream.seen == []


async def test_upstream_cut_mid_body_cuts_the_client(env: Env, http: aiohttp.ClientSession) -> None:
    """An upstream that dies mid-body: the client sees a truncated body, not a short one."""
    async with http.get(f"{env.url}/orders/truncate", headers=env.bearer()) as response:
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()
