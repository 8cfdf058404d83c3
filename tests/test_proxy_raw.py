"""The proxy through raw sockets, where an HTTP client would tidy the request up:
framing attacks, unparseable requests, header spellings, paths and Expect."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sidecar.store.management import AdminStore
from tests.kits.proxy import Env, body_of, raw_exchange, status_of
from tests.kits.redis import basic


def request(
    env: Env, head: str, body: bytes = b"", *, token: str | None = None, close: bool = True
) -> bytes:
    """``head`` (request line and extra fields, CRLF-separated) with Host and the token.

    ``close`` asks the server to close after answering, so reading ends at once.
    """
    auth = f"Authorization: Bearer {token or env.tokens.full}\r\n"
    if close:
        auth += "Connection: close\r\n"
    return f"{head}\r\nHost: proxy.test\r\n{auth}\r\n".encode() + body


# -- framing: no smuggling ------------------------------------------------------------

SMUGGLED = b"GET /orders/smuggled HTTP/1.1\r\nHost: proxy.test\r\n\r\n"


@pytest.mark.parametrize(
    "framing",
    [
        "Content-Length: 4\r\nTransfer-Encoding: chunked",
        "Transfer-Encoding: chunked\r\nContent-Length: 4",
        "Content-Length: 4\r\nContent-Length: 5",
        "Content-Length: 4, 5",
        "Transfer-Encoding: gzip, chunked",
        "Transfer-Encoding: identity",
        "Transfer-Encoding: chunked, identity",
        "Content-Length: +4",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
        "Transfer-Encoding: xchunked",
    ],
    ids=[
        "cl-te",
        "te-cl",
        "two-cl",
        "cl-list",
        "gzip-chunked",
        "identity",
        "chunked-id",
        "plus",
        "two-te",
        "xchunked",
    ],
)
async def test_ambiguous_framing_is_refused_and_connection_closed(env: Env, framing: str) -> None:
    """Ambiguous body framing: 400, connection closed, the smuggled request never forwarded."""
    smuggle = b"0\r\n\r\n" + SMUGGLED
    # No "Connection: close": the server must close on its own.
    sent = request(env, f"POST /orders/first HTTP/1.1\r\n{framing}", smuggle, close=False)
    answer = await raw_exchange(env.proxy.port, sent, wait=5, must_close=True)
    assert status_of(answer) in (400, 501)
    assert answer.count(b"HTTP/1.") == 1  # then the connection closed
    assert all("smuggled" not in seen.raw_path for seen in env.upstream.seen)
    assert env.upstream.seen == []


@pytest.mark.slow
def test_pure_python_parser_gives_the_same_answers() -> None:
    """The framing, no-echo and version tests also pass with aiohttp's pure-Python HTTP parser."""
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "AIOHTTP_NO_EXTENSIONS": "1"}
    selected = "ambiguous_framing or unparseable or non_utf8 or two_authorization"
    selected += " or http_versions or http_0_9 or slowloris"
    files = [__file__, str(root / "tests" / "test_listener.py")]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files, "-k", selected],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-2000:]
    assert " passed" in run.stdout


async def test_chunked_upload_is_forwarded_whole(env: Env) -> None:
    """A well-formed chunked body reaches the upstream with every byte."""
    body = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    sent = request(env, "POST /orders/up HTTP/1.1\r\nTransfer-Encoding: chunked", body)
    answer = await raw_exchange(env.proxy.port, sent, wait=1)
    assert status_of(answer) == 200
    assert env.upstream.seen[-1].body_length == 11
    assert env.upstream.seen[-1].header("Content-Length") == []


async def test_upstream_gets_exactly_one_framing(env: Env) -> None:
    """A Content-Length body goes upstream with that length and no Transfer-Encoding."""
    sent = request(env, "POST /orders/up HTTP/1.1\r\nContent-Length: 3", b"abc")
    answer = await raw_exchange(env.proxy.port, sent, wait=1)
    assert status_of(answer) == 200
    seen = env.upstream.seen[-1]
    assert (seen.header("Content-Length"), seen.header("Transfer-Encoding")) == (["3"], [])
    assert seen.body_length == 3


# -- no echo of bad requests ---------------------------------------------------------


@pytest.mark.parametrize(
    "bad_field",
    [
        "Authorization: Bearer {token}\x01",
        "Authorization : Bearer {token}",
        "Authorization: Bearer {token}\r\n Folded: continuation",
        "X-Padding: " + "p" * 9000 + "\r\nAuthorization: Bearer {token}",
    ],
    ids=["control-byte", "space-before-colon", "obs-fold", "too-large"],
)
async def test_unparseable_request_never_echoes_the_credential(
    env: Env, caplog: pytest.LogCaptureFixture, bad_field: str
) -> None:
    """A request aiohttp cannot parse gets a fixed JSON 4xx; no response or log holds the token."""
    token = env.tokens.full
    raw = f"GET /orders/1 HTTP/1.1\r\nHost: x\r\n{bad_field.format(token=token)}\r\n\r\n"
    with caplog.at_level(logging.DEBUG):
        answer = await raw_exchange(env.proxy.port, raw.encode())
    assert 400 <= status_of(answer) < 500
    assert body_of(answer)["error"] in ("invalid_request", "payload_too_large")
    secret = env.tokens.full_secret
    assert secret.encode() not in answer
    assert all(secret not in record.getMessage() for record in caplog.records)
    assert all(secret not in str(getattr(record, "fields", "")) for record in caplog.records)
    assert all(secret not in str(record.exc_info) for record in caplog.records)


async def test_non_utf8_credential_is_a_clean_4xx(env: Env) -> None:
    """Raw bytes that are not UTF-8 in Authorization get a JSON 4xx, never a 500."""
    sent = (
        b"GET /orders/1 HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer \xff\xfe\xfd\r\nConnection: close\r\n\r\n"
    )
    answer = await raw_exchange(env.proxy.port, sent, wait=1)
    assert status_of(answer) in (400, 401)
    assert body_of(answer)["error"] in ("invalid_request", "invalid_token")


async def test_two_authorization_fields_are_400(env: Env) -> None:
    """Two Authorization fields in one request: 400 invalid_request."""
    other = f"Authorization: Bearer {env.tokens.read_orders}"
    answer = await raw_exchange(env.proxy.port, request(env, f"GET /orders/1 HTTP/1.1\r\n{other}"))
    assert status_of(answer) == 400
    assert body_of(answer)["error"] == "invalid_request"
    assert env.upstream.seen == []


async def test_underscore_spellings_of_identity_headers_are_removed(env: Env) -> None:
    """``X_Auth_User`` and odd cases never reach the upstream, which may fold them."""
    spoof = (
        "X_Auth_User: mallory\r\nx-AUTH-user: mallory\r\nX_AUTH_ACCESS: full\r\nX-Auth_Role: root"
    )
    answer = await raw_exchange(
        env.proxy.port, request(env, f"GET /orders/1 HTTP/1.1\r\n{spoof}"), wait=1
    )
    assert status_of(answer) == 200
    names = [name.lower().replace("_", "-") for name, _ in env.upstream.seen[-1].headers]
    assert names.count("x-auth-user") == 1
    assert names.count("x-auth-access") == 1
    assert "x-auth-role" not in names
    assert env.upstream.seen[-1].header("X-Auth-User") == ["alice"]


async def test_method_override_header_is_not_obeyed(env: Env) -> None:
    """A read token cannot DELETE through X-HTTP-Method-Override; the field is stripped."""
    head = "GET /orders/1 HTTP/1.1\r\nX-HTTP-Method-Override: DELETE\r\nX-Method-Override: PUT"
    answer = await raw_exchange(
        env.proxy.port, request(env, head, token=env.tokens.read_orders), wait=1
    )
    assert status_of(answer) == 200
    seen = env.upstream.seen[-1]
    assert seen.method == "GET"
    assert seen.header("X-HTTP-Method-Override") == [] and seen.header("X-Method-Override") == []


# -- paths ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/orders/../billing/x",
        "/orders/%2e%2e/billing/x",
        "/orders/%2E%2e/billing/x",
        "/orders/.%2e/billing/x",
        "/orders/%252e%252e/billing/x",
        "/orders/..;/billing/x",
        "/orders/x%2f..%2f..%2fb/y",
        "/orders/x%5c..%5cb",
        "/orders//etc",
        "//orders/x",
        "/orders/./x",
        "/orders/%00",
        "http://evil.example/orders/x",
    ],
)
async def test_paths_that_could_climb_out_are_refused(env: Env, path: str) -> None:
    """Dot segments, encoded separators and empty segments are a 400, never forwarded."""
    answer = await raw_exchange(env.proxy.port, request(env, f"GET {path} HTTP/1.1"), wait=1)
    assert status_of(answer) == 400
    assert env.upstream.seen == []


async def test_equivalent_escapes_reach_the_same_api_and_path(env: Env) -> None:
    """``/%6Frders/%7Eme`` is ``/orders/~me``: routed and forwarded as such (RFC 3986 6.2.2)."""
    answer = await raw_exchange(
        env.proxy.port, request(env, "GET /%6Frders/%7Eme%2a?q=%2e HTTP/1.1"), wait=1
    )
    assert status_of(answer) == 200
    assert env.upstream.seen[-1].raw_path == "/o/~me%2A?q=%2e"


async def test_prefix_must_end_at_a_segment_boundary(env: Env) -> None:
    """``/ordersX`` is not the orders API."""
    answer = await raw_exchange(env.proxy.port, request(env, "GET /ordersX/1 HTTP/1.1"), wait=1)
    assert status_of(answer) == 404


# -- Expect: 100-continue and HEAD ---------------------------------------------------------


async def test_expect_continue_with_bad_credential_is_refused_before_the_body(env: Env) -> None:
    """With a bad credential the answer is 401 at once, with no 100 Continue first."""
    head = "POST /orders/up HTTP/1.1\r\nContent-Length: 1000000\r\nExpect: 100-continue"
    reader, writer = await asyncio.open_connection("127.0.0.1", env.proxy.port)
    writer.write(request(env, head, token=env.tokens.full[:-1] + "0", close=False))
    answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 401 ")
    assert b"100 Continue" not in answer
    assert env.upstream.seen == []


async def test_expect_continue_with_good_credential_gets_100_then_forwards(env: Env) -> None:
    """With a good credential the client is told to continue, and the body is forwarded."""
    head = "POST /orders/up HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue"
    reader, writer = await asyncio.open_connection("127.0.0.1", env.proxy.port)
    writer.write(request(env, head, close=False))
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
    writer.write(b"hello")
    final = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
    writer.close()
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert final.startswith(b"HTTP/1.1 200 ")
    assert env.upstream.seen[-1].body_length == 5


async def test_head_answer_has_no_body_bytes(env: Env) -> None:
    """A HEAD answer carries the upstream's Content-Length and not one body byte."""
    sent = request(env, "HEAD /orders/download?bytes=5000 HTTP/1.1\r\nConnection: close")
    answer = await raw_exchange(env.proxy.port, sent, wait=1)
    head, _, rest = answer.partition(b"\r\n\r\n")
    assert b"Content-Length: 5000" in head
    assert rest == b""


async def test_basic_credential_splits_at_first_colon(env: Env, store: AdminStore) -> None:
    """Basic ``id:secret`` where the decoded text has extra colons fails as a wrong secret."""
    value = basic(f"{env.tokens.full_id}:{env.tokens.full_secret}:x")
    sent = (
        f"GET /orders/1 HTTP/1.1\r\nHost: x\r\nAuthorization: {value}\r\nConnection: close\r\n\r\n"
    )
    answer = await raw_exchange(env.proxy.port, sent.encode(), wait=1)
    assert status_of(answer) == 401
