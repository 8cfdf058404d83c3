"""Expiry and leak notices (sidecar/notify/): found once, signed, delivered once, retried."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from sidecar import clock
from sidecar.config import Config, NoticesConfig
from sidecar.notify import expiry, notifier, signing
from sidecar.notify.delivery import backoff
from sidecar.store import keys, notices
from sidecar.store.management import AdminStore
from tests.kits.admin import harness
from tests.kits.processes import serving, write_config
from tests.kits.proxy import Upstream, running
from tests.kits.redis import make_config, seed_token
from tests.kits.webhooks import Receiver, documented_verifier, receiving

SECRET = "whsec-test-4f1b2c9d"
FAST = {"scan_seconds": 0.1, "retry_first_seconds": 0.05, "claim_after_seconds": 0.3}


def config_for(
    receiver: Receiver, *, notices_: dict[str, Any] | None = None, **hook: Any
) -> Config:
    webhook = {"url": receiver.url, "secret": SECRET, "timeout": 2, **hook}
    return make_config(notify=[webhook], notices={**FAST, **(notices_ or {})})


async def replicas(
    stack: AsyncExitStack, redis_url: str, config: Config, count: int = 1
) -> list[CollectorRegistry]:
    """``count`` notifiers, each with its own Redis client, as ``count`` replicas run them."""
    registries = []
    for _ in range(count):
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        stack.push_async_callback(client.aclose)
        registries.append(CollectorRegistry())
        await stack.enter_async_context(notifier.running(client, config, registries[-1]))
    return registries


async def expiring_in(store: AdminStore, days: float, *, user: str = "alice") -> str:
    issued = await seed_token(store, make_config(), user=user)
    expires_at = clock.to_rfc3339(clock.now() + timedelta(days=days))
    await store.patch_token(issued.token.client_id, {"expires_at": expires_at}, "test")
    return issued.token.client_id


async def queue_leak(store: AdminStore, client_id: str, user: str) -> None:
    """A ``token.leaked`` notice, queued in a transaction as the leak endpoint queues it."""
    async with store.redis.pipeline(transaction=True) as pipe:
        notices.queue(pipe, notices.LEAKED, client_id, user, action="revoke")
        await pipe.execute()


def counted(registry: CollectorRegistry, event: str, result: str) -> float:
    value = registry.get_sample_value("keystile_notices_total", {"event": event, "result": result})
    return value or 0.0


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as opened:
        yield opened


async def test_a_token_five_days_out_gets_the_seven_day_notice_once_across_two_replicas(
    store: AdminStore, redis_url: str, stack: AsyncExitStack
) -> None:
    """Only the 7-day notice fires (not 30, not twice), signed; revoked and far tokens get none."""
    near = await expiring_in(store, 5)
    await expiring_in(store, 60, user="bob")
    revoked = await expiring_in(store, 3, user="carol")
    await store.revoke_tokens([revoked], "test")
    receiver = await stack.enter_async_context(receiving(Receiver()))

    await replicas(stack, redis_url, config_for(receiver), count=2)
    await receiver.wait_for(1)
    await asyncio.sleep(0.6)  # six scan periods, by two replicas

    assert len(receiver.calls) == 1
    call = receiver.calls[0]
    assert call.json["event"] == "token.expiring"
    assert (call.json["client_id"], call.json["user"], call.json["days_before"]) == (
        near,
        "alice",
        7,
    )
    assert call.headers["Keystile-Event"] == "token.expiring"
    assert call.headers["Keystile-Delivery"] == call.json["id"]
    verify, signed = documented_verifier(), call.headers["Keystile-Signature"]
    assert verify(SECRET, call.body, signed)
    assert not verify("another secret", call.body, signed)
    assert not verify(SECRET, call.body.replace(b"alice", b"mallory"), signed)
    assert await store.redis.xlen(keys.NOTICES) == 0  # delivered, so trimmed


async def test_a_regeneration_that_moves_the_expiry_allows_a_fresh_notice(
    store: AdminStore, redis_url: str, stack: AsyncExitStack
) -> None:
    """The marker is keyed by expires_at: a new expiry inside a threshold is noticed again."""
    client_id = await expiring_in(store, 5)
    receiver = await stack.enter_async_context(receiving(Receiver()))
    await replicas(stack, redis_url, config_for(receiver))
    await receiver.wait_for(1)

    later = clock.to_rfc3339(clock.now() + timedelta(days=6))
    await store.regenerate_token(client_id, "$argon2id$new", later, None, "test")
    await receiver.wait_for(2)

    assert [call.json["expires_at"] for call in receiver.calls] == [
        receiver.calls[0].json["expires_at"],
        later,
    ]


async def test_a_receiver_answering_500_twice_gets_the_notice_on_the_third_try(
    store: AdminStore, redis_url: str, stack: AsyncExitStack
) -> None:
    """A failed call is retried with backoff; the same delivery id arrives until a 2xx."""
    receiver = await stack.enter_async_context(receiving(Receiver(statuses=[500, 500])))
    [registry] = await replicas(stack, redis_url, config_for(receiver))

    await queue_leak(store, "abc123", "alice")
    await receiver.wait_for(3)
    await asyncio.sleep(0.1)

    assert len({call.headers["Keystile-Delivery"] for call in receiver.calls}) == 1
    assert counted(registry, "token.leaked", "failed") == 2
    assert counted(registry, "token.leaked", "delivered") == 1
    assert await store.redis.xlen(keys.NOTICES) == 0


async def test_a_queued_leak_notice_is_delivered_to_the_webhooks_that_take_it(
    store: AdminStore, redis_url: str, stack: AsyncExitStack
) -> None:
    """token.leaked reaches a webhook taking every event, not one taking only expiries."""
    every = await stack.enter_async_context(receiving(Receiver()))
    expiries = await stack.enter_async_context(receiving(Receiver()))
    hooks = [
        {"url": every.url, "secret": SECRET},
        {"url": expiries.url, "secret": SECRET, "events": ["token.expiring"]},
    ]
    await replicas(stack, redis_url, make_config(notify=hooks, notices=FAST))

    await queue_leak(store, "abc123", "alice")
    await every.wait_for(1)
    await asyncio.sleep(0.2)

    body = every.calls[0].json
    assert {k: body[k] for k in ("event", "client_id", "user", "action")} == {
        "event": "token.leaked",
        "client_id": "abc123",
        "user": "alice",
        "action": "revoke",
    }
    assert body["at"] and body["id"]
    assert expiries.calls == []


async def test_a_notice_never_delivered_is_given_up_and_the_secret_never_logged(
    store: AdminStore, redis_url: str, stack: AsyncExitStack, caplog: pytest.LogCaptureFixture
) -> None:
    """Past retry_for_seconds the notice is dropped with a warning naming it, never the secret."""
    receiver = await stack.enter_async_context(receiving(Receiver(statuses=[503] * 100)))
    config = config_for(receiver, notices_={"retry_for_seconds": 0.3})
    caplog.set_level(logging.INFO, logger="keystile")
    [registry] = await replicas(stack, redis_url, config)

    await queue_leak(store, "abc123", "alice")
    async with asyncio.timeout(5):
        # A Prometheus counter has no event to wait on: poll it.
        while counted(registry, "token.leaked", "given_up") < 1:  # noqa: ASYNC110
            await asyncio.sleep(0.05)

    assert await store.redis.xlen(keys.NOTICES) == 0
    assert any(r.getMessage() == "webhook notice given up" for r in caplog.records)
    logged = caplog.text + repr([getattr(r, "fields", None) for r in caplog.records])
    assert "status 503" in logged and SECRET not in logged and SECRET not in repr(config)


async def test_a_notice_held_by_a_crashed_replica_is_taken_over(
    store: AdminStore, redis_url: str, stack: AsyncExitStack
) -> None:
    """A notice read but never settled by a dead consumer is delivered after claim_after."""
    await store.redis.xgroup_create(keys.NOTICES, keys.NOTIFY_GROUP, "0", mkstream=True)
    await queue_leak(store, "abc123", "alice")
    taken = await store.redis.xreadgroup(keys.NOTIFY_GROUP, "dead", {keys.NOTICES: ">"}, 10)
    assert taken  # pending with the dead consumer now
    receiver = await stack.enter_async_context(receiving(Receiver()))

    await replicas(stack, redis_url, config_for(receiver))
    await receiver.wait_for(1, within=3)

    assert receiver.calls[0].json["client_id"] == "abc123"


async def test_serve_calls_a_hanging_webhook_without_delaying_a_proxied_request(
    store: AdminStore, redis_url: str, stack: AsyncExitStack, tmp_path: Path
) -> None:
    """Requests answer at once while hooks hang; no secret logged; unsigned warned; lease freed."""
    receiver = await stack.enter_async_context(receiving(Receiver(hang=True)))
    upstream = Upstream()
    await upstream.start()
    stack.push_async_callback(upstream.stop)
    path = tmp_path / "keystile.toml"
    ports = write_config(path, upstream.url, redis_url)
    hook = f'url = "{receiver.url}"\nsecret_env = "KEYSTILE_TEST_HOOK_SECRET"\ntimeout = 30'
    unsigned = 'url = "http://127.0.0.1:9/unsigned"\nevents = ["token.expiring"]'
    notify = f"[[notify]]\n{hook}\n[[notify]]\n{unsigned}\n"
    path.write_text(f"{path.read_text()}\n[notices]\nconcurrency = 2\n{notify}")
    issued = await seed_token(store, make_config(), access={"orders": "read"})
    env = {"KEYSTILE_TEST_HOOK_SECRET": SECRET}

    async with serving(path, ports["proxy"], env=env) as process:
        for n in range(5):
            await queue_leak(store, f"leaked{n}", "alice")
        await receiver.wait_for(2)
        leased = await store.redis.exists(keys.NOTIFY_SCAN_LEASE)
        started = time.monotonic()
        async with aiohttp.ClientSession() as http:
            headers = {"Authorization": f"Bearer {issued.bearer}"}
            for _ in range(20):
                url = f"http://127.0.0.1:{ports['proxy']}/orders/x"
                async with http.get(url, headers=headers) as answer:
                    assert answer.status == 200
        elapsed = time.monotonic() - started

    assert elapsed < 3  # the webhook has been hanging all along, for up to 30 s a call
    assert leased and not await store.redis.exists(keys.NOTIFY_SCAN_LEASE)  # released on stop
    delivered = [call.headers["Keystile-Delivery"] for call in receiver.calls]
    assert len(set(delivered)) == len(delivered)  # each worker took its own notices
    assert process.stderr is not None
    logged = (await process.stderr.read()).decode()
    assert SECRET not in logged
    warned = [line for line in logged.splitlines() if "called unsigned" in line]
    assert len(warned) == 1 and "notify[1].secret" in warned[0]
    assert "notify[0]" not in warned[0]


def test_the_signature_binds_the_body_the_secret_and_a_recent_time() -> None:
    """verify accepts its own signature; another body, key or an old timestamp is refused."""
    body, now = b'{"event":"token.leaked"}', int(time.time())
    header = signing.signature(SECRET, body, now)

    assert signing.verify(SECRET, body, header, now)
    assert not signing.verify(SECRET, body + b" ", header, now)
    assert not signing.verify("other", body, header, now)
    assert not signing.verify(SECRET, body, header, now + 301)
    assert not signing.verify(SECRET, body, "v1=00", now)


def test_retries_wait_one_second_doubling_up_to_ten_minutes_by_default() -> None:
    """The default schedule: 1, 2, 4 ... seconds, capped at 600."""
    policy = NoticesConfig()

    assert [backoff(policy, n) for n in range(4)] == [1.0, 2.0, 4.0, 8.0]
    assert backoff(policy, 10) == backoff(policy, 100) == 600.0


async def test_a_flushed_store_gets_its_consumer_group_back_and_delivery_goes_on(
    store: AdminStore, redis_url: str, stack: AsyncExitStack
) -> None:
    """After FLUSHALL (the group gone with the stream) a new notice is still delivered."""
    receiver = await stack.enter_async_context(receiving(Receiver()))
    await replicas(stack, redis_url, config_for(receiver))
    await queue_leak(store, "before", "alice")
    await receiver.wait_for(1)

    await store.redis.flushall()
    await queue_leak(store, "after", "alice")
    await receiver.wait_for(2)

    assert [call.json["client_id"] for call in receiver.calls] == ["before", "after"]


async def test_a_scan_queues_each_threshold_once_whatever_form_expires_at_takes(
    store: AdminStore,
) -> None:
    """A pass queues due notices once; an expiry with an offset is judged as well as a Z one."""
    plain = await expiring_in(store, 0.5)
    offset = await expiring_in(store, 20, user="bob")
    moment = (clock.now() + timedelta(days=20)).astimezone(timezone(timedelta(hours=2)))
    await store.redis.hset(keys.token(offset), "expires_at", moment.isoformat(timespec="seconds"))

    first = await expiry.scan(store.redis, (30, 7, 1), clock.now())
    again = await expiry.scan(store.redis, (30, 7, 1), clock.now())

    entries = await store.redis.xrange(keys.NOTICES)
    days = {fields["client_id"]: fields["days_before"] for _, fields in entries}
    assert (first, again, days) == (2, 0, {plain: "1", offset: "30"})


async def test_two_scans_racing_without_the_lease_still_queue_each_notice_once(
    store: AdminStore, redis_url: str
) -> None:
    """The marker and the notice share one WATCHed transaction: racing passes queue once."""
    for user in ("a", "b", "c", "d"):
        await expiring_in(store, 5, user=user)
    other = aioredis.Redis.from_url(redis_url, decode_responses=True)

    counts = await asyncio.gather(
        expiry.scan(store.redis, (30, 7, 1), clock.now()),
        expiry.scan(other, (30, 7, 1), clock.now()),
    )
    await other.aclose()

    assert sum(counts) == 4 and await store.redis.xlen(keys.NOTICES) == 4


async def test_a_consumer_gone_with_nothing_pending_is_dropped_from_the_group(
    store: AdminStore, redis_url: str, stack: AsyncExitStack
) -> None:
    """Restarts leave no trail of consumers: an idle one holding nothing is forgotten."""
    await store.redis.xgroup_create(keys.NOTICES, keys.NOTIFY_GROUP, "0", mkstream=True)
    await store.redis.xgroup_createconsumer(keys.NOTICES, keys.NOTIFY_GROUP, "gone")
    receiver = await stack.enter_async_context(receiving(Receiver()))

    await replicas(stack, redis_url, config_for(receiver))
    await asyncio.sleep(0.5)  # idle past claim_after (0.3 s), then one claim turn

    names = [c["name"] for c in await store.redis.xinfo_consumers(keys.NOTICES, "notify")]
    assert "gone" not in names


async def test_a_leak_report_through_the_proxy_reaches_the_webhook(
    store: AdminStore, redis_url: str, stack: AsyncExitStack
) -> None:
    """POST /_keystile/leaks with a real token: the webhook gets token.leaked, action revoke."""
    receiver = await stack.enter_async_context(receiving(Receiver()))
    env = await stack.enter_async_context(
        running(redis_url, store, leaks={"answer_floor_seconds": 0})
    )
    await replicas(stack, redis_url, config_for(receiver))

    async with aiohttp.ClientSession() as http:
        report = {"tokens": [env.tokens.full]}
        async with http.post(f"{env.url}/_keystile/leaks", json=report) as answer:
            assert answer.status < 300
    await receiver.wait_for(1)

    body = receiver.calls[0].json
    assert (body["event"], body["client_id"], body["action"]) == (
        "token.leaked",
        env.tokens.full_id,
        "revoke",
    )
    assert env.tokens.full_secret not in receiver.calls[0].body.decode()


async def test_a_token_created_through_the_api_inside_a_threshold_is_noticed_at_once(
    redis_url: str, stack: AsyncExitStack
) -> None:
    """POST /tokens expiring in 5 days: one token.expiring (7) within 2 s, not at the next scan."""
    receiver = await stack.enter_async_context(receiving(Receiver()))
    hook = {"url": receiver.url, "secret": SECRET, "timeout": 2}
    admin = await stack.enter_async_context(
        harness(redis_url, notify=[hook], notices={"scan_seconds": 600})
    )
    await admin.user("alice")
    await asyncio.sleep(0.3)  # the start's scan has run (nothing due) and sleeps 600 s

    expires_at = clock.to_rfc3339(clock.now() + timedelta(days=5))
    created = await admin.token(user="alice", expires_at=expires_at)
    await receiver.wait_for(1, within=2)
    await asyncio.sleep(0.3)

    assert len(receiver.calls) == 1
    body = receiver.calls[0].json
    assert (body["event"], body["client_id"], body["days_before"]) == (
        "token.expiring",
        created["client_id"],
        7,
    )


async def test_a_patch_or_regeneration_into_a_threshold_queues_its_notice_in_the_write(
    store: AdminStore,
) -> None:
    """A write inside a threshold queues its notice once, the scan then none; no hooks: none."""
    client_id = await expiring_in(store, 60)
    soon = clock.to_rfc3339(clock.now() + timedelta(days=5))
    await store.patch_token(client_id, {"expires_at": soon}, "test")  # no thresholds set
    assert await store.redis.xlen(keys.NOTICES) == 0

    store.notice_days = (30, 7, 1)
    await store.patch_token(client_id, {"expires_at": soon}, "test")
    await store.patch_token(client_id, {"description": "again"}, "test")  # marker set: no second
    sooner = clock.to_rfc3339(clock.now() + timedelta(hours=12))
    await store.regenerate_token(client_id, "$argon2id$new", sooner, None, "test")
    rescanned = await expiry.scan(store.redis, (30, 7, 1), clock.now())

    entries = [fields for _, fields in await store.redis.xrange(keys.NOTICES)]
    assert [(f["days_before"], f["expires_at"]) for f in entries] == [("7", soon), ("1", sooner)]
    assert rescanned == 0


async def test_a_clean_stop_releases_the_scan_lease_it_holds_and_no_other(
    store: AdminStore, redis_url: str, stack: AsyncExitStack
) -> None:
    """After a stop the next start scans at once; a lease another replica holds is left alone."""
    receiver = await stack.enter_async_context(receiving(Receiver()))
    config = config_for(receiver, notices_={"scan_seconds": 600})
    async with AsyncExitStack() as first:
        await replicas(first, redis_url, config)
        await asyncio.sleep(0.2)
        assert await store.redis.exists(keys.NOTIFY_SCAN_LEASE)
    assert not await store.redis.exists(keys.NOTIFY_SCAN_LEASE)

    await store.redis.set(keys.NOTIFY_SCAN_LEASE, "another-replica")
    await expiry.release(store.redis, "this-replica")
    assert await store.redis.get(keys.NOTIFY_SCAN_LEASE) == "another-replica"


async def test_a_signed_call_carries_the_hmac_of_the_raw_body_github_style(
    store: AdminStore, redis_url: str, stack: AsyncExitStack
) -> None:
    """X-Keystile-Signature-256 is sha256= and the HMAC-SHA256 of the raw body; docs verify it."""
    receiver = await stack.enter_async_context(receiving(Receiver()))
    await replicas(stack, redis_url, config_for(receiver))
    await queue_leak(store, "signed", "alice")
    await receiver.wait_for(1)

    call = receiver.calls[0]
    digest = hmac.new(SECRET.encode(), call.body, hashlib.sha256).hexdigest()
    assert call.headers["X-Keystile-Signature-256"] == f"sha256={digest}"
    verify_256 = documented_verifier("verify_256")
    assert verify_256(SECRET, call.body, call.headers["X-Keystile-Signature-256"])
    assert not verify_256(SECRET, call.body + b" ", call.headers["X-Keystile-Signature-256"])


async def test_a_webhook_without_a_secret_is_called_without_signature_headers(
    store: AdminStore, redis_url: str, stack: AsyncExitStack
) -> None:
    """No secret: the notice is POSTed with neither signature header."""
    receiver = await stack.enter_async_context(receiving(Receiver()))
    await replicas(stack, redis_url, config_for(receiver, secret=""))
    await queue_leak(store, "unsigned", "alice")
    await receiver.wait_for(1)

    headers = {name.lower() for name in receiver.calls[0].headers}
    assert receiver.calls[0].json["client_id"] == "unsigned"
    assert not headers & {"keystile-signature", "x-keystile-signature-256"}
