"""The credential format: generation, checksum and parsing (spec section 2)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar import tokenformat
from sidecar.tokenformat import ALPHABET, MalformedToken, format_token, parse_token

PREFIXES = st.from_regex(r"[a-z][a-z0-9]{0,15}", fullmatch=True)


def _fresh(prefix: str = "ks") -> tuple[str, str, str]:
    client_id, secret = tokenformat.new_client_id(), tokenformat.new_client_secret()
    return client_id, secret, format_token(prefix, client_id, secret)


def test_secret_carries_at_least_190_bits() -> None:
    """A client_secret carries at least 190 random bits; a client_id has 16+ characters."""
    assert tokenformat.SECRET_LENGTH * math.log2(len(ALPHABET)) >= 190
    assert len(tokenformat.new_client_id()) >= 16


def test_token_has_the_documented_shape() -> None:
    """A token reads <prefix>_<client_id>_<secret><checksum> in URL-safe characters."""
    client_id, secret, token = _fresh()
    assert token.startswith(f"ks_{client_id}_{secret}")
    assert len(token) == len("ks_") + 22 + 1 + 32 + 6


@given(prefix=PREFIXES)
def test_every_generated_token_parses_back(prefix: str) -> None:
    """Whatever the configured prefix, a generated token parses to its own id and secret."""
    client_id, secret, token = _fresh(prefix)
    parsed = parse_token(prefix, token)
    assert (parsed.client_id, parsed.client_secret) == (client_id, secret)


@given(data=st.data())
def test_any_one_character_change_is_rejected(data: st.DataObject) -> None:
    """Changing any one character of a token makes it fail to parse, with no store needed."""
    _, _, token = _fresh()
    index = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(st.characters(codec="ascii").filter(lambda c: c != token[index]))
    mutated = token[:index] + replacement + token[index + 1 :]
    with pytest.raises(MalformedToken):
        parse_token("ks", mutated)


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("gh_" + "a" * 22 + "_" + "b" * 38, "wrong prefix"),
        ("ks_" + "a" * 22, "missing or malformed parts"),
        ("ks_" + "a" * 21 + "_" + "b" * 38, "missing or malformed parts"),
        ("", "wrong prefix"),
    ],
)
def test_malformed_tokens_name_their_reason(token: str, reason: str) -> None:
    """Wrong prefix and missing parts are told apart for the logs."""
    with pytest.raises(MalformedToken) as caught:
        parse_token("ks", token)
    assert caught.value.reason == reason


def test_parsed_token_repr_hides_the_secret() -> None:
    """A parsed token printed into a log never shows its secret."""
    _, secret, token = _fresh()
    assert secret not in repr(parse_token("ks", token))


def test_client_ids_do_not_repeat() -> None:
    """Ten thousand draws give ten thousand distinct client_ids."""
    assert len({tokenformat.new_client_id() for _ in range(10_000)}) == 10_000


def test_checksum_encoding_is_fixed() -> None:
    """The checksum is CRC32 as six base62 digits, most significant first."""
    # A change to this encoding would refuse every token already handed out.
    assert format_token("ks", "A" * 22, "s" * 32) == "ks_" + "A" * 22 + "_" + "s" * 32 + "3xQ6sY"
    assert tokenformat.checksum("") == "000000"  # crc32(b"") == 0
    assert tokenformat.checksum("a") == "4GEHKN"  # crc32(b"a") == 3904355907
