"""Seeding many tokens straight into Redis, fast, in the product's real format.

Records are built by ``sidecar.records`` and written under ``sidecar.store.keys``
exactly as ``TokenStore.create_token`` writes them (token hash, issued set,
token index, the user's token set), but in pipelines of thousands and without
history or events: a fresh benchmark store has no past to record and no cache
to invalidate.

argon2 of a million secrets would take hours, so only the tokens a scenario
presents get real secrets. ``distinct=True`` gives each its own secret and
argon2id hash (computed on every core); otherwise they share one secret and
one hash, which changes nothing for a cache keyed by client_id. Filler tokens
carry the hash of a throwaway secret nobody knows.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta

import redis

from sidecar import clock, tokenformat
from sidecar.config import HashingConfig
from sidecar.records import Token, User
from sidecar.store import keys
from sidecar.verification.hashing import Argon2Hasher

BATCH = 5000
USER = "bench"


def _random_id(rng: random.Random, length: int) -> str:
    return "".join(rng.choices(tokenformat.ALPHABET, k=length))


def _hash(args: tuple[dict[str, int], str]) -> str:
    hashing, secret = args
    return Argon2Hasher(HashingConfig(**hashing)).hash(secret)


def hashes(hashing: dict[str, int], secrets_: list[str]) -> list[str]:
    """argon2id hashes of ``secrets_``, on every core."""
    if len(secrets_) < 8:
        return [_hash((hashing, s)) for s in secrets_]
    with ProcessPoolExecutor() as pool:
        return list(pool.map(_hash, [(hashing, s) for s in secrets_], chunksize=64))


def ensure_user(client: redis.Redis, username: str = USER) -> None:
    user = User(username, display_name="Benchmark", created_at=clock.to_rfc3339(clock.now()))
    client.hset(keys.user(username), mapping=user.to_fields())  # type: ignore[arg-type]
    client.zadd(keys.USERS, {username.lower(): int(clock.now().timestamp() * 1000)})


def _template(access: dict[str, str]) -> dict[str, str]:
    now = clock.now()
    return Token(
        client_id="",
        user=USER,
        secret_hash="",
        created_at=clock.to_rfc3339(now),
        expires_at=clock.to_rfc3339(clock.add_months(now, 6)),
        access=access,
        created_by="bench",
    ).to_fields()


def _write(
    client: redis.Redis, records: Iterator[tuple[str, str, int]], template: dict[str, str]
) -> int:
    """Write (client_id, secret_hash, index) records in pipelines of BATCH tokens."""
    written = 0
    base = clock.now()
    batch: list[tuple[str, str, int]] = []
    for record in records:
        batch.append(record)
        if len(batch) == BATCH:
            written += _flush(client, batch, template, base)
            batch = []
    if batch:
        written += _flush(client, batch, template, base)
    return written


def _flush(
    client: redis.Redis, batch: list[tuple[str, str, int]], template: dict[str, str], base: datetime
) -> int:
    pipe = client.pipeline(transaction=False)
    scores: dict[str, int] = {}
    for client_id, secret_hash, index in batch:
        created = base - timedelta(seconds=index)
        fields = dict(template, client_id=client_id, secret_hash=secret_hash)
        fields["created_at"] = clock.to_rfc3339(created)
        fields["description"] = f"bench token {index}"
        pipe.hset(keys.token(client_id), mapping=fields)  # type: ignore[arg-type]
        scores[client_id] = int(created.timestamp() * 1000)
    ids = list(scores)
    pipe.sadd(keys.ISSUED_IDS, *ids)
    pipe.zadd(keys.TOKENS, scores)
    pipe.sadd(keys.user_tokens(USER), *ids)
    pipe.execute()
    return len(batch)


def seed_presented(
    redis_url: str,
    count: int,
    hashing: dict[str, int],
    *,
    distinct: bool,
    prefix: str = "ks",
    access: dict[str, str] | None = None,
) -> list[str]:
    """``count`` valid tokens; returns their bearer strings (the only copy of the secrets)."""
    rng = random.Random(secrets.randbits(64))
    ids = [_random_id(rng, tokenformat.CLIENT_ID_LENGTH) for _ in range(count)]
    secret_list = [tokenformat.new_client_secret() for _ in range(count if distinct else 1)]
    hash_list = hashes(hashing, secret_list)
    if not distinct:
        secret_list, hash_list = secret_list * count, hash_list * count
    client = redis.Redis.from_url(redis_url)
    try:
        ensure_user(client)
        records = ((cid, h, i) for i, (cid, h) in enumerate(zip(ids, hash_list, strict=True)))
        _write(client, records, _template(access or {"bench": "full"}))
    finally:
        client.close()
    return [
        tokenformat.format_token(prefix, cid, s) for cid, s in zip(ids, secret_list, strict=True)
    ]


def seed_filler(redis_url: str, count: int, hashing: dict[str, int]) -> int:
    """``count`` tokens nobody can present (the hash of a throwaway secret)."""
    rng = random.Random(secrets.randbits(64))
    throwaway = _hash((hashing, tokenformat.new_client_secret()))
    client = redis.Redis.from_url(redis_url)
    try:
        ensure_user(client)
        records = (
            (_random_id(rng, tokenformat.CLIENT_ID_LENGTH), throwaway, i) for i in range(count)
        )
        return _write(client, records, _template({"bench": "full"}))
    finally:
        client.close()


def bad_tokens(count: int, prefix: str = "ks") -> list[str]:
    """Tokens that must be refused before argon2: half bad checksums, half unknown ids."""
    rng = random.Random(secrets.randbits(64))
    out = []
    for i in range(count):
        client_id = _random_id(rng, tokenformat.CLIENT_ID_LENGTH)
        secret = _random_id(rng, tokenformat.SECRET_LENGTH)
        token = tokenformat.format_token(prefix, client_id, secret)
        if i % 2 == 0:  # a mistyped or forged token: flip the checksum's last character
            last = "A" if token[-1] != "A" else "B"
            token = token[:-1] + last
        out.append(token)
    return out
