"""Which headers cross the proxy (sidecar.headers); pure."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sidecar.config import HeadersConfig
from sidecar.headers import (
    HOP_BY_HOP,
    Identity,
    check_answer,
    client_address,
    downstream_response,
    fold,
    request_id,
    upstream_request,
)

NAMES = HeadersConfig()
ALICE = Identity("alice", "cid", "ops", "read")


def forwarded(headers: list[tuple[str, str]], *, credential: bool = False) -> list[tuple[str, str]]:
    return upstream_request(
        headers,
        NAMES,
        ALICE,
        forward_credential=credential,
        peer="10.0.0.9",
        scheme="https",
        host="api.example",
        request_id="rid",
    )


def values(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [v for n, v in headers if n.lower() == name.lower()]


def test_identity_copies_under_any_spelling_are_replaced() -> None:
    """Client copies of identity headers go, whatever their case or underscores."""
    sent = [
        ("X_Auth_User", "m"),
        ("x-AUTH-user", "m"),
        ("X-Auth_Role", "r"),
        ("x_auth_access", "f"),
    ]
    out = forwarded(sent)
    folded = [n.lower().replace("_", "-") for n, _ in out]
    assert folded.count("x-auth-user") == 1 and values(out, "X-Auth-User") == ["alice"]
    assert values(out, "X-Auth-Role") == ["ops"] and values(out, "X-Auth-Access") == ["read"]


def test_role_header_absent_without_a_role() -> None:
    """A token without a role sends no X-Auth-Role."""
    out = upstream_request(
        [("X-Auth-Role", "admin")],
        NAMES,
        Identity("alice", "cid", None, "full"),
        forward_credential=False,
        peer="p",
        scheme="http",
        host="h",
        request_id="r",
    )
    assert values(out, "X-Auth-Role") == []


def test_check_answer_states_every_identity_header() -> None:
    """A forward-auth answer names all four identity headers; no role is an empty one."""
    custom = HeadersConfig(role="X-Team-Role")
    answer = check_answer(custom, Identity("alice", "cid", None, "full"))
    assert answer == [
        ("X-Auth-User", "alice"),
        ("X-Auth-Client-Id", "cid"),
        ("X-Team-Role", ""),
        ("X-Auth-Access", "full"),
    ]
    assert ("X-Team-Role", "ops") in check_answer(custom, ALICE)


def test_credential_dropped_unless_forwarded() -> None:
    """Authorization and the header pair go, unless the API asks for them."""
    sent = [("Authorization", "Bearer t"), ("X-Client-Id", "i"), ("X_Client_Secret", "s")]
    assert forwarded(sent) == forwarded([])
    kept = forwarded(sent, credential=True)
    assert values(kept, "Authorization") == ["Bearer t"]


def test_hop_by_hop_and_connection_listed_fields_go() -> None:
    """RFC 9110 7.6.1: hop-by-hop fields and every field named in Connection are dropped."""
    sent = [
        ("Connection", "close, X-Private"),
        ("connection", "x-other"),
        ("X-Private", "1"),
        ("X-Other", "2"),
        ("TE", "trailers"),
        ("Upgrade", "h2c"),
        ("Proxy-Authorization", "Basic x"),
        ("Transfer-Encoding", "chunked"),
        ("X-Kept", "3"),
    ]
    out = forwarded(sent)
    names = {n.lower() for n, _ in out}
    assert names.isdisjoint(
        {"connection", "x-private", "x-other", "te", "upgrade", "proxy-authorization"}
    )
    assert "transfer-encoding" not in names and values(out, "X-Kept") == ["3"]


def test_forwarding_fields_are_set() -> None:
    """Via and X-Forwarded-For are appended to; -Proto and -Host are ours; Host goes."""
    sent = [
        ("Host", "api.example"),
        ("X-Forwarded-For", "1.2.3.4"),
        ("X-Forwarded-Proto", "gopher"),
        ("Via", "1.0 edge"),
    ]
    out = forwarded(sent)
    assert values(out, "X-Forwarded-For") == ["1.2.3.4, 10.0.0.9"]
    assert values(out, "X-Forwarded-Proto") == ["https"]
    assert values(out, "X-Forwarded-Host") == ["api.example"]
    assert values(out, "Via") == ["1.0 edge, 1.1 keystile"]
    assert values(out, "Host") == []
    assert values(out, "X-Request-Id") == ["rid"]


def test_method_overrides_and_expect_are_stripped() -> None:
    """Method-override fields and Expect never reach the upstream."""
    sent = [("X-HTTP-Method-Override", "DELETE"), ("X-Method-Override", "PUT"), ("Expect", "x")]
    assert forwarded(sent) == forwarded([])


def test_response_keeps_repeats_and_adds_via_and_request_id() -> None:
    """Set-Cookie repeats stay; Connection-listed response fields go; our request id wins."""
    upstream = [
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("Connection", "X-Hop"),
        ("X-Hop", "x"),
        ("X-Request-Id", "other"),
    ]
    out = downstream_response(upstream, NAMES, "rid")
    assert values(out, "Set-Cookie") == ["a=1", "b=2"]
    assert values(out, "X-Hop") == [] and values(out, "Connection") == []
    assert values(out, "X-Request-Id") == ["rid"]
    assert values(out, "Via") == ["1.1 keystile"]


def test_request_id_kept_only_when_plain() -> None:
    """A plain client request id is kept; one with odd characters or too long is replaced."""
    assert request_id("abc-123.x:y_z", "new") == "abc-123.x:y_z"
    assert request_id('a"b', "new") == "new"
    assert request_id("a" * 129, "new") == "new"
    assert request_id(None, "new") == "new"


def test_trusted_front_proxy_keeps_its_forwarded_proto_and_host() -> None:
    """With trusted_hops, X-Forwarded-Proto/-Host set by the front proxy are kept."""
    sent = [("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "public.example")]
    out = upstream_request(
        sent,
        NAMES,
        ALICE,
        forward_credential=False,
        peer="10.0.0.2",
        scheme="http",
        host="internal:8080",
        request_id="r",
        trusted_hops=1,
    )
    assert values(out, "X-Forwarded-Proto") == ["https"]
    assert values(out, "X-Forwarded-Host") == ["public.example"]


def test_client_address_counts_trusted_hops_from_the_right() -> None:
    """The client is the X-Forwarded-For entry added by the outermost trusted proxy."""
    chain = ["spoofed, 203.0.113.7", "10.0.0.1"]
    assert client_address("10.0.0.2", chain, 0) == "10.0.0.2"
    assert client_address("10.0.0.2", chain, 1) == "10.0.0.1"
    assert client_address("10.0.0.2", chain, 2) == "203.0.113.7"
    assert client_address("10.0.0.2", [], 2) == "10.0.0.2"


#: Names a client might send: ours under several spellings, hop-by-hop ones, plain ones.
NAME_POOL = [
    "Accept", "X-Custom", "x_custom", "Connection", "connection", "Keep-Alive", "TE",
    "Via", "VIA", "X-Forwarded-For", "X_Forwarded_For", "X-Auth-User", "x_auth_USER",
    "Authorization", "X-Request-Id", "X-HTTP-Method-Override", "Host", "Expect", "Upgrade",
]  # fmt: skip
VALUE_POOL = ["1", "x-custom", "X-Custom, accept", "close", "keep-alive, te", "a, b"]


@given(st.lists(st.tuples(st.sampled_from(NAME_POOL), st.sampled_from(VALUE_POOL)), max_size=12))
def test_end_to_end_fields_follow_the_rule(headers: list[tuple[str, str]]) -> None:
    """End-to-end fields pass in order, hop-by-hop and ours never do; Via and XFF are appended."""
    # Dropped: hop-by-hop fields, those named in Connection, and any we set or strip, in any case.
    listed = {
        token.strip().lower()
        for name, value in headers
        if name.lower() == "connection"
        for token in value.split(",")
    }
    ours = {fold(n) for n in ("X-Auth-User", "X-Auth-Client-Id", "X-Auth-Role", "X-Auth-Access")}
    ours |= {"x-request-id", "via", "host", "expect", "authorization", "x-client-id"}
    ours |= {"x-client-secret", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"}
    ours |= {"forwarded", "x-http-method-override", "x-http-method", "x-method-override"}
    expected = [
        (n, v) for n, v in headers if n.lower() not in HOP_BY_HOP | listed and fold(n) not in ours
    ]
    out = forwarded(headers)
    assert out[: len(expected)] == expected
    added = out[len(expected) :]
    assert [n for n, _ in added] == [
        "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Via", "X-Request-Id",
        "X-Auth-User", "X-Auth-Client-Id", "X-Auth-Role", "X-Auth-Access",
    ]  # fmt: skip
    assert values(added, "X-Forwarded-For") == [
        ", ".join([*values(headers, "X-Forwarded-For"), "10.0.0.9"])
    ]
    assert values(added, "Via") == [", ".join([*values(headers, "Via"), "1.1 keystile"])]
