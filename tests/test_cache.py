"""The verified-credential cache: keys, bounds, lifetimes, lease, invalidation (pure, no loop)."""

from __future__ import annotations

import hashlib

from sidecar.verification.cache import CredentialCache
from tests.kits.redis import Clock

ID_A = "A" * 22
ID_B = "B" * 22
SECRET = "s" * 32
OTHER_SECRET = "t" * 32


def fresh_cache(
    max_entries: int = 10, negative_ttl: float = 5.0
) -> tuple[CredentialCache[str], Clock]:
    clock = Clock()
    cache: CredentialCache[str] = CredentialCache(max_entries, negative_ttl, monotonic=clock)
    cache.fresh_until = clock.now + 3600
    return cache, clock


def put(
    cache: CredentialCache[str], client_id: str, secret: str, value: str, **kw: object
) -> bytes:
    key = cache.key(client_id, secret)
    fill = cache.begin_fill(client_id)
    options = {"user": "alice", "role": None, "lifetime": 60.0} | kw
    assert cache.put(fill, key, value, **options)  # type: ignore[arg-type]
    cache.end_fill(fill)
    return key


def test_hit_needs_the_whole_credential() -> None:
    """A cached credential is found only with its own secret, never by client_id alone."""
    cache, _ = fresh_cache()
    put(cache, ID_A, SECRET, "alice")

    assert cache.get(cache.key(ID_A, SECRET)) == "alice"
    assert cache.get(cache.key(ID_A, OTHER_SECRET)) is None


def test_key_is_a_keyed_blake2b_of_the_credential() -> None:
    """The entry key is 16 bytes of BLAKE2b of ``client_id:secret`` keyed with the process's key."""
    cache, _ = fresh_cache()

    # The process's key is private on purpose (nothing shows it); the test must read it.
    mac = hashlib.blake2b(f"{ID_A}:{SECRET}".encode(), key=cache._key, digest_size=16)

    assert cache.key(ID_A, SECRET) == mac.digest()


def test_keys_differ_between_processes() -> None:
    """Each cache draws its own HMAC key, so its keys mean nothing to another process."""
    first, _ = fresh_cache()
    second, _ = fresh_cache()

    assert first.key(ID_A, SECRET) != second.key(ID_A, SECRET)
    assert SECRET.encode() not in first.key(ID_A, SECRET)


def test_least_recently_used_entry_goes_first() -> None:
    """Past max_entries the entry unused for longest is evicted, a recently read one stays."""
    cache, _ = fresh_cache(max_entries=2)
    first = put(cache, ID_A, SECRET, "a")
    second = put(cache, ID_B, SECRET, "b")
    cache.get(first)

    put(cache, "C" * 22, SECRET, "c")

    assert len(cache) == 2
    assert cache.get(first) == "a"
    assert cache.get(second) is None


def test_entry_does_not_outlive_its_lifetime() -> None:
    """An entry is gone once its lifetime (token expiry or TTL) has passed."""
    cache, clock = fresh_cache()
    key = put(cache, ID_A, SECRET, "alice", lifetime=30.0)

    clock.now += 29.0
    assert cache.get(key) == "alice"
    clock.now += 2.0
    assert cache.get(key) is None


def test_no_hit_once_the_lease_has_run_out() -> None:
    """Without a recent confirmation from the listener, every lookup is a miss."""
    cache, clock = fresh_cache()
    key = put(cache, ID_A, SECRET, "alice")

    cache.fresh_until = clock.now - 0.001

    assert cache.get(key) is None


def test_fill_overtaken_by_an_invalidation_stores_nothing() -> None:
    """A fill that read the token before a revoke cannot bring it back after the revoke's event."""
    cache, _ = fresh_cache()
    key = cache.key(ID_A, SECRET)
    fill = cache.begin_fill(ID_A)

    cache.drop_client(ID_A)  # the revoke's event arrives while argon2 runs
    stored = cache.put(fill, key, "alice", user="alice", role=None, lifetime=60.0)

    assert stored is False
    assert cache.get(key) is None


def test_fill_for_another_client_survives_a_token_event() -> None:
    """A token event stales only fills for that client_id: busy admins do not starve the cache."""
    cache, _ = fresh_cache()
    fill = cache.begin_fill(ID_B)

    cache.drop_client(ID_A)

    assert cache.put(fill, cache.key(ID_B, SECRET), "bob", user="bob", role=None, lifetime=60.0)


def test_user_and_role_events_drop_their_entries_only() -> None:
    """A user event drops that user's entries (any case); a role event drops its tokens' entries."""
    cache, _ = fresh_cache()
    alice = put(cache, ID_A, SECRET, "alice", user="Alice", role="ops")
    bob = put(cache, ID_B, SECRET, "bob", user="bob", role="dev")

    cache.drop_user("ALICE")
    assert cache.get(alice) is None
    assert cache.get(bob) == "bob"

    cache.drop_role("dev")
    assert cache.get(bob) is None


def test_both_secrets_of_a_grace_period_go_with_the_token() -> None:
    """During a regeneration's grace both secrets are cached, and a token event drops both."""
    cache, _ = fresh_cache()
    old = put(cache, ID_A, SECRET, "old")
    new = put(cache, ID_A, OTHER_SECRET, "new")

    cache.drop_client(ID_A)

    assert cache.get(old) is None
    assert cache.get(new) is None
    assert len(cache) == 0


def test_token_event_drops_the_secret_left_once_the_other_is_gone() -> None:
    """When one entry of a grace period has expired, a token event still drops the other."""
    cache, clock = fresh_cache()
    old = put(cache, ID_A, SECRET, "old", lifetime=10.0)
    new = put(cache, ID_A, OTHER_SECRET, "new", lifetime=60.0)
    clock.now += 11.0
    assert cache.get(old) is None

    cache.drop_client(ID_A)

    assert cache.get(new) is None
    assert len(cache) == 0


def test_unknown_id_is_remembered_briefly_and_dropped_on_creation() -> None:
    """An unknown client_id is remembered for negative_ttl, and forgotten once it is created."""
    cache, clock = fresh_cache(negative_ttl=5.0)
    cache.put_unknown(cache.begin_fill(ID_A))
    cache.put_unknown(cache.begin_fill(ID_B))

    assert cache.is_unknown(ID_A)
    cache.drop_client(ID_A)  # the token event of its creation
    assert not cache.is_unknown(ID_A)
    clock.now += 5.0
    assert not cache.is_unknown(ID_B)


def test_clear_forgets_everything_and_stales_fills() -> None:
    """A flush (missed events) drops every entry and every fill in progress."""
    cache, _ = fresh_cache()
    key = put(cache, ID_A, SECRET, "alice")
    fill = cache.begin_fill(ID_B)

    cache.clear()

    assert cache.get(key) is None
    assert not cache.put(fill, cache.key(ID_B, SECRET), "b", user="b", role=None, lifetime=9.0)
