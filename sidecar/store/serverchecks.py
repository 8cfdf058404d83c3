"""What Keystile checks of its Redis server before it serves: persistence, eviction, waits.

- ``redis.durability = "fsync"`` needs WAITAOF (Redis 7.2+, Valkey 8) and
  ``appendonly yes``: a server without either is refused, naming the key.
- ``"replicas"`` needs a primary; fewer connected replicas than
  ``redis.min_replicas`` is a warning (every change would answer 503
  ``not_durable`` until they connect).
- No persistence at all (``appendonly no`` and an empty ``save``) or an
  evicting ``maxmemory-policy`` can silently lose a token or a revoked flag:
  a loud warning naming the setting, or a refusal with
  ``redis.require_persistence = true``. The ``volatile-*`` policies evict
  only keys with a TTL, and Keystile's records have none (only the
  wrong-secret counters of ``sidecar.verification.limits`` expire): those are safe.

Managed services often refuse CONFIG; then INFO answers for ``appendonly``
and the policy, and what neither can tell is a warning that it could not be
checked (a refusal only when persistence is required).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from sidecar.config import RedisConfig

log = logging.getLogger("keystile.serverchecks")

SETTINGS = ("appendonly", "save", "maxmemory-policy")
#: Policies that never evict a key without a TTL, which Keystile's records are.
SAFE_POLICIES = ("noeviction", "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl")


class ServerRefused(Exception):
    """The server cannot give what the config asks; the message names the key."""


async def check(redis: aioredis.Redis, config: RedisConfig, where: str) -> None:
    """Refuse (``ServerRefused``) or warn about the server at ``where`` (a redacted name)."""
    refusals = await _durability_refusals(redis, config, where)
    problems, unknown = persistence_problems(await _settings(redis))
    for problem in problems:
        log.warning(
            f"the store can lose acknowledged changes: {problem}",
            extra={"fields": {"store": where}},
        )
    for setting in unknown:
        log.warning(
            f"could not check the server's {setting}: the store may lose changes unnoticed",
            extra={"fields": {"store": where}},
        )
    doubts = problems + [f"{setting} could not be read" for setting in unknown]
    if config.require_persistence and doubts:
        refusals.append(
            f"redis.require_persistence: the server at {where} may lose changes: "
            + "; ".join(doubts)
        )
    if refusals:
        raise ServerRefused("; ".join(refusals))


def persistence_problems(settings: Mapping[str, str | None]) -> tuple[list[str], list[str]]:
    """(problems, settings that could not be read) of the server's persistence and eviction."""
    problems: list[str] = []
    unknown: list[str] = []
    appendonly, save = settings.get("appendonly"), settings.get("save")
    if appendonly is None:
        unknown.append("appendonly")
    elif appendonly == "no" and save is None:
        unknown.append("save")  # with appendonly yes, save does not matter
    elif appendonly == "no" and save is not None and not save.strip():
        problems.append('no persistence at all (appendonly is "no" and save is empty)')
    policy = settings.get("maxmemory-policy")
    if policy is None:
        unknown.append("maxmemory-policy")
    elif policy not in SAFE_POLICIES:
        problems.append(
            f"maxmemory-policy is {policy!r}, which may evict a token or a revoked flag "
            "(use noeviction)"
        )
    return problems, unknown


async def _settings(redis: aioredis.Redis) -> dict[str, str | None]:
    """The three settings by CONFIG GET, else what INFO tells of them, else None each."""
    try:
        found: dict[Any, Any] = {}
        for name in SETTINGS:  # one at a time: Redis 6 reads one pattern per CONFIG GET
            found.update(await redis.config_get(name))
        return {name: found.get(name) for name in SETTINGS}
    except ResponseError:
        pass  # CONFIG renamed away or not allowed (managed services): INFO is usually open
    try:
        info = await redis.info("persistence")
        info.update(await redis.info("memory"))
    except ResponseError:
        return dict.fromkeys(SETTINGS)
    aof = info.get("aof_enabled")
    policy = info.get("maxmemory_policy")
    return {
        "appendonly": None if aof is None else ("yes" if int(aof) else "no"),
        "save": None,
        "maxmemory-policy": None if policy is None else str(policy),
    }


async def _durability_refusals(redis: aioredis.Redis, config: RedisConfig, where: str) -> list[str]:
    if config.durability == "fsync":
        return await _fsync_refusals(redis, where)
    if config.durability == "replicas":
        return await _replica_refusals(redis, config, where)
    return []


async def _fsync_refusals(redis: aioredis.Redis, where: str) -> list[str]:
    # Nothing was written on this connection yet: the wait answers at once.
    try:
        await redis.execute_command("WAITAOF", 1, 0, 1)
    except ResponseError as exc:
        text = str(exc)
        if "unknown command" in text.lower():
            version = await _version(redis)
            return [
                f'redis.durability: "fsync" needs WAITAOF (Redis 7.2 or later, Valkey 8), '
                f"which the server at {where} ({version}) does not have"
            ]
        if "appendonly" in text.lower():
            return [f'redis.durability: "fsync" needs appendonly yes on the server at {where}']
        return [f"redis.durability: the server at {where} refused WAITAOF: {text}"]
    return []


async def _replica_refusals(redis: aioredis.Redis, config: RedisConfig, where: str) -> list[str]:
    try:
        info = await redis.info("replication")
    except ResponseError:
        log.warning("could not read INFO replication: the replicas were not checked")
        return []
    if info.get("role") != "master":
        return [f'redis.durability: "replicas" needs a primary, and {where} is a replica']
    connected = int(info.get("connected_slaves", 0))
    if connected < config.min_replicas:
        log.warning(
            f"redis.min_replicas is {config.min_replicas} but {connected} replica(s) are "
            "connected: every admin change answers 503 not_durable until enough connect",
            extra={"fields": {"store": where}},
        )
    return []


async def _version(redis: aioredis.Redis) -> str:
    try:
        info = await redis.info("server")
    except ResponseError:
        return "version unknown"
    name = "valkey" if "valkey_version" in info else "redis"
    return f"{name} {info.get('valkey_version') or info.get('redis_version', '?')}"
