"""Reading the presented credential from header values (sidecar.credentials); pure."""

from __future__ import annotations

import pytest

from sidecar import tokenformat
from sidecar.credentials import MAX_CREDENTIAL_LENGTH, read
from sidecar.errors import InvalidRequest, InvalidToken, MissingCredential
from tests.kits.redis import basic

CLIENT_ID = "A" * tokenformat.CLIENT_ID_LENGTH
SECRET = "s" * tokenformat.SECRET_LENGTH
TOKEN = tokenformat.format_token("ks", CLIENT_ID, SECRET)


def test_bearer_token_yields_its_parts() -> None:
    """A Bearer token is split into client_id and secret."""
    presented = read("ks", [f"Bearer {TOKEN}"], [], [])
    assert (presented.client_id, presented.client_secret, presented.method) == (
        CLIENT_ID,
        SECRET,
        "bearer",
    )


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "BeArEr"])
def test_scheme_names_are_case_insensitive(scheme: str) -> None:
    """``bearer`` in any case is the Bearer scheme (RFC 9110 section 11.1)."""
    assert read("ks", [f"{scheme} {TOKEN}"], [], []).client_id == CLIENT_ID


def test_basic_splits_at_the_first_colon() -> None:
    """RFC 7617: the user-id ends at the first colon; the rest is the secret."""
    with pytest.raises(InvalidToken):  # "secret:x" is not a well-formed secret
        read("ks", [basic(f"{CLIENT_ID}:{SECRET}:x")], [], [])
    presented = read("ks", [basic(f"{CLIENT_ID}:{SECRET}")], [], [])
    assert (presented.client_id, presented.client_secret) == (CLIENT_ID, SECRET)


def test_header_pair_yields_its_parts() -> None:
    """The X-Client-Id/X-Client-Secret pair is one credential."""
    presented = read("ks", [], [CLIENT_ID], [SECRET])
    assert (presented.client_id, presented.method) == (CLIENT_ID, "header")


def test_no_credential_and_unknown_scheme_are_missing() -> None:
    """No header, or a scheme we do not speak, counts as no credential (401 challenge)."""
    with pytest.raises(MissingCredential):
        read("ks", [], [], [])
    with pytest.raises(MissingCredential):
        read("ks", ['Digest username="x"'], [], [])


@pytest.mark.parametrize(
    ("authorization", "header_id", "header_secret"),
    [
        ([f"Bearer {TOKEN}"], [CLIENT_ID], [SECRET]),
        ([f"Bearer {TOKEN}", f"Bearer {TOKEN}"], [], []),
        ([], [CLIENT_ID, CLIENT_ID], [SECRET]),
        ([], [CLIENT_ID], []),
        ([], [], [SECRET]),
    ],
    ids=["two-methods", "two-authorization", "two-ids", "id-alone", "secret-alone"],
)
def test_ambiguous_credentials_are_invalid_requests(
    authorization: list[str], header_id: list[str], header_secret: list[str]
) -> None:
    """Two methods, repeated fields or half a pair: 400 invalid_request."""
    with pytest.raises(InvalidRequest):
        read("ks", authorization, header_id, header_secret)


@pytest.mark.parametrize(
    "value",
    [
        "Basic !!!",
        basic("no colon"),
        basic(b"\xff:\xfe"),
        "Bearer " + "a" * (MAX_CREDENTIAL_LENGTH + 1),
        "Bearer a\x01b",
        "Bearer caf\u00e9",
        "Bearer",
        "Bearer a b",
    ],
    ids=["bad-base64", "no-colon", "not-utf8", "huge", "control", "non-ascii", "empty", "spaces"],
)
def test_malformed_values_are_invalid_requests(value: str) -> None:
    """Malformed credential values raise the 400 error, never anything unexpected."""
    with pytest.raises(InvalidRequest):
        read("ks", [value], [], [])


@pytest.mark.parametrize(
    "token",
    [
        "xx" + TOKEN[2:],
        TOKEN[:-1] + ("0" if TOKEN[-1] != "0" else "1"),
        "ks_short_parts",
    ],
    ids=["wrong-prefix", "bad-checksum", "missing-parts"],
)
def test_bad_tokens_are_invalid_tokens(token: str) -> None:
    """Wrong prefix, bad checksum or missing parts: 401 invalid_token without a store call."""
    with pytest.raises(InvalidToken):
        read("ks", [f"Bearer {token}"], [], [])


def test_presented_repr_hides_the_secret() -> None:
    """A presented credential never shows its secret in a repr (logs, tracebacks)."""
    assert SECRET not in repr(read("ks", [f"Bearer {TOKEN}"], [], []))
