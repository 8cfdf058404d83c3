"""Retention (store.retention): the audit stream and deleted tokens' histories, trimmed."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from sidecar import clock
from sidecar.config import ConfigError, RetentionConfig
from sidecar.store import keys
from sidecar.store.invariants import find_problems
from sidecar.store.management import AdminStore
from sidecar.store.retention import apply, running
from sidecar.store.snapshot import read_snapshot
from tests.kits.redis import make_config, seed_token
from tests.kits.store import admin_store

__all__ = ["admin_store"]  # a fixture, used by name


async def test_a_deleted_tokens_history_goes_after_its_days_and_its_id_stays_issued(
    admin_store: AdminStore,
) -> None:
    """Past deleted_history_days a deleted token's history is gone; live ones and the id stay."""
    live = await seed_token(admin_store, make_config())
    gone = await seed_token(admin_store, make_config())
    await admin_store.delete_tokens([gone.token.client_id], "t")
    policy = RetentionConfig(deleted_history_days=30)

    assert (await apply(admin_store.redis, policy, clock.now() + timedelta(days=29))).histories == 0
    trimmed = await apply(admin_store.redis, policy, clock.now() + timedelta(days=31))

    assert trimmed.histories == 1
    assert await admin_store.history(gone.token.client_id) == []  # still issued, never reissued
    assert [e["action"] for e in await admin_store.history(live.token.client_id)] == ["created"]
    assert find_problems(await read_snapshot(admin_store.redis)) == []


async def test_the_audit_keeps_its_newest_entries_and_never_the_last_one_lost(
    admin_store: AdminStore,
) -> None:
    """audit_max_entries keeps the newest N; audit_max_age_days drops the old but the newest."""
    for user in ("a", "b", "c"):
        await seed_token(admin_store, make_config(), user=user)  # 2 entries each
    newest = (await admin_store.audit(None, 1))[0]

    by_count = await apply(admin_store.redis, RetentionConfig(audit_max_entries=4), clock.now())
    assert (by_count.audit_entries, await admin_store.redis.xlen(keys.AUDIT)) == (2, 4)
    later = clock.now() + timedelta(days=8)
    by_age = await apply(admin_store.redis, RetentionConfig(audit_max_age_days=7), later)
    assert by_age.audit_entries == 3
    assert await admin_store.audit(None, 10) == [newest]


async def test_passes_run_in_the_background_while_the_context_lasts(
    admin_store: AdminStore,
) -> None:
    """With a short interval, the audit is trimmed without anyone asking."""
    for user in ("a", "b"):
        await seed_token(admin_store, make_config(), user=user)
    policy = RetentionConfig(audit_max_entries=1, interval_seconds=0.05)

    async with running(admin_store.redis, policy):
        for _ in range(100):
            if await admin_store.redis.xlen(keys.AUDIT) == 1:
                break
            await asyncio.sleep(0.02)
    assert await admin_store.redis.xlen(keys.AUDIT) == 1


def test_retention_keys_are_checked_at_start() -> None:
    """A negative count or an unknown key stops the start, naming the key."""
    with pytest.raises(ConfigError) as refused:
        make_config(retention={"audit_max_entries": -1, "keep_forever": True})
    assert refused.value.problems == [
        "retention.keep_forever: unknown key",
        "retention.audit_max_entries: -1 must be at least 0",
    ]
