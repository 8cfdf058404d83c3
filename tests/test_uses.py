"""Counting uses per API and method class (sidecar/verification/uses.py) into a real Redis
(sidecar/store/uses.py), and the pure proposal made from them (admin/advice.py)."""

from __future__ import annotations

import asyncio
from datetime import date

import pytest
import redis.asyncio as aioredis

from admin.advice import ApiUses, advise
from sidecar.store import keys
from sidecar.store.changes import Conflict
from sidecar.store.management import AdminStore
from sidecar.store.uses import read_uses
from sidecar.verification.uses import UseCounter
from tests.kits.redis import make_config, seed_role, seed_token

APIS = ("orders", "billing")


class Days:
    """A settable UTC day for the counter."""

    def __init__(self, today: date) -> None:
        self.today = today

    def __call__(self) -> date:
        return self.today


async def test_replicas_add_up_and_old_days_are_trimmed(store: AdminStore) -> None:
    """Two counters add to one count; a batch on a later day drops days past usage_days."""
    issued = await seed_token(store, make_config())
    client_id = issued.token.client_id
    days = Days(date(2026, 11, 1))
    first, second = UseCounter(store, 10, days), UseCounter(store, 10, days)
    for counter in (first, second):
        counter.note(client_id, "orders", "GET")
        counter.note(client_id, "orders", "DELETE")
        await counter.flush()
    days.today = date(2026, 11, 20)
    first.note(client_id, "billing", "HEAD")
    await first.flush()

    kept = await read_uses(store, client_id, "2000-01-01")
    ttl = await store.redis.ttl(keys.token_uses(client_id))

    assert [(d.day, d.api, d.safe, d.unsafe) for d in kept] == [("2026-11-20", "billing", 1, 0)]
    assert 9 * 86400 < ttl <= 10 * 86400


async def test_a_failed_flush_is_kept_and_sent_later(redis_url: str, store: AdminStore) -> None:
    """Counts noted while the store does not answer are written by a later flush."""
    impatient = aioredis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=0.2)
    issued = await seed_token(store, make_config())
    counter = UseCounter(AdminStore(impatient), 90)
    counter.note(issued.token.client_id, "orders", "POST")
    await store.redis.execute_command("CLIENT", "PAUSE", "600", "ALL")
    during = await counter.flush()
    await asyncio.sleep(0.7)
    counter.note(issued.token.client_id, "orders", "POST")
    after = await counter.flush()
    kept = await read_uses(store, issued.token.client_id, "2000-01-01")
    await impatient.aclose()
    assert (during, after) == (0, 1)
    assert [(d.safe, d.unsafe) for d in kept] == [(0, 2)]


async def test_uses_of_a_deleted_token_write_nothing(store: AdminStore) -> None:
    """Counting a token deleted meanwhile leaves no usage hash behind."""
    counter = UseCounter(store, 90)
    counter.note("A" * 22, "orders", "GET")
    await counter.flush()
    assert await store.redis.exists(keys.token_uses("A" * 22)) == 0


def test_a_role_wildcard_is_closed_in_the_token_map() -> None:
    """A role granting "*": full gets an explicit entry per API, admin included, and "*": none."""
    uses = [ApiUses("orders", safe=3)]
    found = advise({}, "ops", {"*": "full"}, APIS, uses)
    assert found.proposed == {"orders": "read", "billing": "none", "admin": "none", "*": "none"}
    assert found.changes == {
        "orders": ["full", "read"],
        "billing": ["full", "none"],
        "admin": ["full", "none"],
    }
    assert any("'ops'" in note for note in found.notes)


def test_admin_is_tightened_like_any_api_and_a_role_match_is_explicit() -> None:
    """Admin read never used becomes none; an API the role already grants as needed is named."""
    uses = [ApiUses("orders", unsafe=1)]
    found = advise({"admin": "read", "billing": "full"}, "w", {"orders": "full"}, APIS, uses)
    assert found.proposed == {"orders": "full", "billing": "none", "admin": "none"}
    assert found.changes == {"billing": ["full", "none"], "admin": ["read", "none"]}


def test_every_key_of_the_map_is_stated_and_its_wildcard_closed() -> None:
    """A "*" and a key no API is configured for are in the proposal, as none where unused."""
    uses = [ApiUses("admin", unsafe=2), ApiUses("billing", safe=1)]
    found = advise({"*": "full", "gone": "read"}, None, None, APIS, uses)
    assert found.proposed == {
        "orders": "none",
        "billing": "read",
        "admin": "full",
        "gone": "none",
        "*": "none",
    }
    assert found.changes == {
        "orders": ["full", "none"],
        "billing": ["full", "read"],
        "gone": ["read", "none"],
    }
    assert not found.unchanged and found.notes == []


async def test_a_proposal_made_before_its_role_changed_is_not_applied(store: AdminStore) -> None:
    """Narrowing the token's role after the advice was read makes apply a conflict."""
    role = await seed_role(store, "ops", {"billing": "full"})
    token = (await seed_token(store, make_config(), role="ops")).token
    await seed_role(store, "ops", {"billing": "read"})

    with pytest.raises(Conflict):
        await store.patch_token(
            token.client_id,
            {"access": {"billing": "full"}},
            "admin",
            unless_changed=token,
            role_access=role.access,
        )

    assert (await store.get_token(token.client_id)).access == token.access  # type: ignore[union-attr]
