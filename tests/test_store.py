"""The Redis store: atomic writes, indexes, history and fail-closed errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest
import redis.asyncio as aioredis

from sidecar import clock
from sidecar.errors import StoreUnavailable
from sidecar.records import Token, User
from sidecar.store import keys
from sidecar.store.changes import Conflict
from sidecar.store.management import AdminStore
from sidecar.verification.hashing import Argon2Hasher
from sidecar.verification.issuing import issue_token
from sidecar.verification.runtime import redis_client
from tests.kits.redis import RedisProcess, free_port, make_config, seed_role, seed_token


def _draft(client_id: str, user: str = "alice", role: str | None = None) -> Token:
    now = clock.to_rfc3339(clock.now())
    return Token(
        client_id=client_id,
        user=user,
        secret_hash="$argon2id$fake",
        created_at=now,
        expires_at="2099-01-01T00:00:00Z",
        role=role,
    )


async def test_usernames_are_case_insensitive(store: AdminStore) -> None:
    """Creating 'ALICE' after 'alice' returns the existing user instead of a second one."""
    await store.ensure_user(User("alice", created_at="2026-01-01T00:00:00Z"), actor="t")
    again = await store.ensure_user(User("ALICE", created_at="2026-01-02T00:00:00Z"), actor="t")
    assert again.username == "alice"
    assert await store.redis.zcard(keys.USERS) == 1


async def test_token_for_unknown_user_is_refused_and_writes_nothing(store: AdminStore) -> None:
    """A token for a user that does not exist is a conflict naming 'user', and no key appears."""
    with pytest.raises(Conflict) as caught:
        await store.create_token(_draft("a" * 22, user="ghost"), actor="t")
    assert caught.value.field == "user"
    assert await store.redis.dbsize() == 0


async def test_token_with_unknown_role_is_refused(store: AdminStore) -> None:
    """A token naming a role that does not exist is a conflict naming 'role'."""
    await store.ensure_user(User("alice", created_at="2026-01-01T00:00:00Z"), actor="t")
    with pytest.raises(Conflict) as caught:
        await store.create_token(_draft("b" * 22, role="ghost"), actor="t")
    assert caught.value.field == "role"
    assert await store.get_token("b" * 22) is None


async def test_client_id_is_never_issued_twice_even_after_deletion(store: AdminStore) -> None:
    """Once issued, a client_id stays taken after its token's key is gone."""
    await store.ensure_user(User("alice", created_at="2026-01-01T00:00:00Z"), actor="t")
    await store.create_token(_draft("c" * 22), actor="t")
    assert await store.delete_tokens(["c" * 22], actor="t") == 1
    with pytest.raises(Conflict) as caught:
        await store.create_token(_draft("c" * 22), actor="t")
    assert caught.value.field == "client_id"


async def test_created_token_is_indexed_recorded_and_announced(store: AdminStore) -> None:
    """Creation lands the record, its indexes, a history entry, an audit entry and an event."""
    cfg = make_config()
    await seed_role(store, "reader", {"*": "read"})
    generation = await store.generation()
    issued = await seed_token(store, cfg, user="Bob", role="reader")
    client_id = issued.token.client_id
    assert await store.redis.sismember(keys.user_tokens("bob"), client_id)
    assert await store.redis.sismember(keys.role_tokens("reader"), client_id)
    assert await store.redis.zscore(keys.TOKENS, client_id) is not None
    history = [
        json.loads(e) for e in await store.redis.lrange(keys.token_history(client_id), 0, -1)
    ]
    assert [(e["action"], e["actor"]) for e in history] == [("created", "test")]
    assert history[0]["changes"]["user"] == [None, "Bob"]
    assert await store.generation() > generation


async def test_no_secret_or_hash_reaches_history_or_audit(store: AdminStore) -> None:
    """History and audit entries never carry the secret or its hash."""
    issued = await seed_token(store, make_config())
    history = await store.redis.lrange(keys.token_history(issued.token.client_id), 0, -1)
    audit = await store.redis.xrange(keys.AUDIT)
    text = json.dumps([history, audit])
    assert issued.client_secret not in text
    assert issued.token.secret_hash not in text
    assert "argon2" not in text


async def test_credential_loads_with_user_and_role(store: AdminStore) -> None:
    """load_credential returns the token with its user and its role in one call."""
    cfg = make_config()
    await seed_role(store, "ops", {"orders": "full"})
    issued = await seed_token(store, cfg, user="carol", role="ops")
    credential = await store.load_credential(issued.token.client_id)
    assert credential is not None
    assert credential.user is not None and credential.user.username == "carol"
    assert credential.role is not None and credential.role.access == {"orders": "full"}


async def test_last_used_is_touched_in_a_batch_but_never_resurrects(store: AdminStore) -> None:
    """touch_last_used updates live tokens and leaves no stub behind for a deleted one."""
    issued = await seed_token(store, make_config())
    client_id = issued.token.client_id
    await store.touch_last_used(
        {client_id: "2026-11-24T10:00:00Z", "z" * 22: "2026-11-24T10:00:00Z"}
    )
    await store.touch_last_used({client_id: "2026-11-24T09:00:00Z"})  # older: ignored
    token = await store.get_token(client_id)
    assert token is not None and token.last_used_at == "2026-11-24T10:00:00Z"
    assert not await store.redis.exists(keys.token("z" * 22))


async def test_unreachable_store_is_store_unavailable(private_redis: RedisProcess) -> None:
    """With the server stopped, reads fail as StoreUnavailable (a 503), not a redis-py error."""
    client = aioredis.Redis.from_url(private_redis.url, decode_responses=True, socket_timeout=1)
    store = AdminStore(client)
    await store.ping()
    private_redis.stop()
    with pytest.raises(StoreUnavailable):
        await store.get_token("a" * 22)
    await client.aclose()


class ExecAnswerCut:
    """A TCP relay to Redis that, once, cuts the connection that sent an EXEC when Redis
    answers it: the transaction applied, and its client never hears so."""

    def __init__(self, redis_port: int) -> None:
        self.redis_port = redis_port
        self.cut = False
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.redis_port)
        exec_sent = asyncio.Event()

        async def upstream() -> None:
            while data := await client_r.read(65536):
                server_w.write(data)
                if b"EXEC\r\n" in data:
                    exec_sent.set()
            server_w.close()

        async def downstream() -> None:
            while data := await server_r.read(65536):
                if exec_sent.is_set() and not self.cut:
                    self.cut = True
                    break  # the answer to MULTI ... EXEC is dropped with the connection
                client_w.write(data)
            client_w.close()

        await asyncio.gather(upstream(), downstream(), return_exceptions=True)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[ExecAnswerCut]:
        server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        try:
            yield self
        finally:
            server.close()


async def test_a_token_create_whose_answer_was_lost_is_not_made_twice(
    store: AdminStore, redis_server: RedisProcess
) -> None:
    """An issue whose EXEC applied but whose answer was cut is a 503, and exactly one token."""
    config = make_config()
    await store.ensure_user(User("alice", created_at="2026-01-01T00:00:00Z"), actor="t")
    async with ExecAnswerCut(redis_server.port).running() as relay:
        client = redis_client(relay.url, 2.0)
        with pytest.raises(StoreUnavailable):
            await issue_token(
                AdminStore(client),
                Argon2Hasher(config.hashing),
                "ks",
                user="alice",
                actor="t",
                expires_at=clock.now() + timedelta(days=1),
            )
        await client.aclose()
    assert relay.cut
    assert await store.redis.zcard(keys.TOKENS) == 1
