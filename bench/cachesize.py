"""What the credential cache alone holds for N credentials, apart from the rest of a worker.

A worker's RSS also carries the admin token index, the interpreter and the
libraries, and RSS does not shrink when start-up garbage is freed, so the
growth of RSS while credentials are cached understates the cache. This fills
a ``sidecar.verification.cache.CredentialCache`` through the verifier's own
``sidecar.verification.verifier.remember`` with N credentials read as the store reads
them (each field a string of its own, as decoded from Redis; the memory
scenario's tokens: one user, one access map, no role) and prints the bytes
tracemalloc counts for them. Whatever the verifier shares between entries
is shared here too, and nothing more.

    PYTHONPATH=. .venv/bin/python bench/cachesize.py 100000
"""

from __future__ import annotations

import json
import sys
import tracemalloc

from sidecar import tokenformat
from sidecar.records import Token, User
from sidecar.store.protocol import Credential
from sidecar.verification.cache import CredentialCache
from sidecar.verification.verifier import Verified, remember

USER = "bench"


def decoded(text: str) -> str:
    """A string of its own with ``text``'s content, as redis-py hands each field over."""
    return text.encode().decode()


def stored_credential(client_id: str, number: int) -> Credential:
    """A credential as ``RedisStore.load_credential`` builds it: every field freshly decoded."""
    token = Token.from_fields(
        {
            "client_id": client_id,
            "user": decoded(USER),
            "secret_hash": "$argon2id$v=19$m=1024,t=1,p=1$" + "h" * 66,
            "created_at": f"2026-11-24T03:{number // 60 % 60:02d}:{number % 60:02d}Z",
            "expires_at": f"2027-05-24T03:{number // 60 % 60:02d}:{number % 60:02d}Z",
            "description": f"bench token {number}",
            "access": json.dumps({"bench": "full"}),
        }
    )
    return Credential(token, User(decoded(USER)), None)


def cached_bytes(count: int) -> int:
    cache: CredentialCache[Verified] = CredentialCache(count, 10.0)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for number in range(count):
        # The presented client_id: the string the cache and the identity keep.
        client_id = tokenformat.new_client_id()
        # The credential read for it is garbage once cached, as in the verifier.
        credential = stored_credential(decoded(client_id), number)
        fill = cache.begin_fill(client_id)
        key = cache.key(client_id, tokenformat.new_client_secret())
        remember(cache, fill, key, credential, lifetime=300.0)
        cache.end_fill(fill)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(cache) == count
    return after - before


if __name__ == "__main__":
    print(cached_bytes(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000))
