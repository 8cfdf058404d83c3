"""The whole admin store: ``AdminStore``, the parts of ``tokens``, ``people`` and ``listing``
with the proxy's reads (``redis_store``), as one object.

Failed preconditions: ``changes.Missing`` (the target does not exist),
``changes.Conflict`` with a ``field`` (the request names something that does
not exist, e.g. a user) or without one (the write contradicts the stored
state: exists already, in use, revoked for good).
"""

from __future__ import annotations

from sidecar.store.listing import ListingStore
from sidecar.store.people import PeopleStore
from sidecar.store.redis_store import RedisStore


class AdminStore(PeopleStore, ListingStore, RedisStore):
    """Every admin read and write on one connection.

    A facade rather than three objects so that the admin views, the service
    and the CLI keep one ``STORE`` and call ``store.patch_token`` directly, and
    so that every part shares the one ``after_commit`` list and durability wait
    of ``base.StoreBase`` (a write through any part reaches the same hooks).
    The parts define no ``__init__``; only ``StoreBase`` holds state.
    """
