"""What the credential cache alone holds for N credentials, apart from the rest of a worker.

A worker's RSS also carries the admin token index, the interpreter and the
libraries, and RSS does not shrink when start-up garbage is freed, so the
growth of RSS while credentials are cached understates the cache. This fills
a ``sidecar.cache.CredentialCache`` with N entries shaped like the verifier's
(a ``Verified`` with its own access map, as read from the store) and prints
the bytes tracemalloc counts for them.

    PYTHONPATH=. .venv/bin/python bench/cachesize.py 100000
"""

from __future__ import annotations

import json
import sys
import tracemalloc

from sidecar import tokenformat
from sidecar.cache import CredentialCache
from sidecar.verifier import Verified


def cached_bytes(count: int) -> int:
    cache: CredentialCache[Verified] = CredentialCache(count, 10.0)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(count):
        client_id = tokenformat.new_client_id()
        verified = Verified(
            client_id=client_id,
            username="bench",
            role=None,
            access=json.loads('{"bench": "full"}'),
            expires_at="2027-05-24T00:00:00Z",
        )
        fill = cache.begin_fill(client_id)
        key = cache.key(client_id, tokenformat.new_client_secret())
        cache.put(fill, key, verified, user="bench", role=None, lifetime=300.0)
        cache.end_fill(fill)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(cache) == count
    return after - before


if __name__ == "__main__":
    print(cached_bytes(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000))
