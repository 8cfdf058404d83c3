"""Reaching the store past one Redis: the primary Sentinel names, or the Cluster node of ``{ks}``.

Both are connection pools that look the server up each time they open a
connection, so every client built on them (``runtime.redis_client`` and the
invalidation listener's own) follows a failover by itself: a connection to a
primary that died fails (the command answers 503), the next one is opened to
the new primary. Everything else Keystile does stays what it is on one Redis.

- Sentinel: redis-py's ``SentinelConnectionPool`` asks the sentinels for the
  primary of ``sentinel_service`` before each connection; a primary that
  turned replica answers writes with READONLY, which drops the connection.
- Cluster: every key carries the ``{ks}`` hash tag (sidecar/store/keys.py), so
  one node owns them all. redis-py 8's ``RedisCluster`` does run the store's
  WATCH/MULTI/EXEC and SCAN, but it sends commands without a key (WAIT and
  WAITAOF of the durability modes, CONFIG GET and INFO of the start checks)
  to a node of its choosing, and its per-node pools lack the bounded wait of
  docs/redis-connections.md. So the pool reads ``RedisCluster``'s slot map
  and connects straight to the owner of that slot: every command behaves
  exactly as on one Redis. A MOVED answer or a failed connection (the slot
  moved, or a failover) refreshes the map before the next connection.
  Invalidation events use classic PUBLISH, which a cluster delivers to the
  subscribers of every node (docs/scale-out.md).

A change of primary is noticed by the listener (its subscription's address
changes), which drops every cache and index: the new primary may lack the
last writes (sidecar/verification/invalidation.py).
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from redis.asyncio import BlockingConnectionPool
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import Connection, SSLConnection, parse_url
from redis.asyncio.sentinel import (
    Sentinel,
    SentinelConnectionPool,
    SentinelManagedConnection,
    SentinelManagedSSLConnection,
)
from redis.exceptions import ConnectionError, MovedError, RedisClusterException

from sidecar.config import RedisConfig
from sidecar.store import keys


class SentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """A Sentinel-managed pool that waits for a free connection, like the plain one."""


def sentinel_pool(config: RedisConfig, **options: Any) -> BlockingConnectionPool:
    """A pool of connections to the primary that ``config.sentinels`` name."""
    auth = {"ssl": True} if config.tls else {}
    sentinel_options = {
        "socket_timeout": options["socket_timeout"],
        "socket_connect_timeout": options["socket_connect_timeout"],
        "password": config.sentinel_password or None,
        **auth,
    }
    sentinel = Sentinel(
        [(address.host, address.port) for address in config.sentinels],
        sentinel_kwargs=sentinel_options,
    )
    connection_class = SentinelManagedSSLConnection if config.tls else SentinelManagedConnection
    pool: BlockingConnectionPool = SentinelPool(  # type: ignore[no-untyped-call]
        config.sentinel_service,
        sentinel,
        connection_class=connection_class,
        password=config.password or None,
        **options,
    )
    return pool


class SlotOwnerConnection(Connection):
    """A connection to whichever cluster node owns the ``{ks}`` slot when it connects."""

    def __init__(self, **kwargs: Any) -> None:
        self.owner: SlotOwnerPool = kwargs.pop("slot_owner")
        super().__init__(**kwargs)

    async def connect(self) -> None:
        if self.is_connected:
            return
        self.host, self.port = await self.owner.address()
        try:
            await super().connect()  # type: ignore[no-untyped-call]
        except ConnectionError:
            self.owner.stale = True
            raise

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().read_response(*args, **kwargs)
        except MovedError:
            # The slot lives elsewhere now (resharding or a failover): look again.
            self.owner.stale = True
            await self.disconnect()
            raise ConnectionError("the {ks} slot moved to another node") from None
        except ConnectionError:
            self.owner.stale = True
            raise


class SlotOwnerSSLConnection(SlotOwnerConnection, SSLConnection):
    pass


class SlotOwnerPool(BlockingConnectionPool):
    """A pool of connections to the node owning ``{ks}``, found through ``cluster``'s slot map."""

    def __init__(self, cluster: RedisCluster, **options: Any) -> None:
        super().__init__(**options)
        self.connection_kwargs["slot_owner"] = weakref.proxy(self)
        self.cluster = cluster
        #: The slot map may be out of date (a connection failed or was MOVED).
        self.stale = True
        self._looking = asyncio.Lock()

    async def address(self) -> tuple[str, int]:
        async with self._looking:
            if self.stale:
                try:
                    await self.cluster.nodes_manager.initialize()
                except RedisClusterException as exc:  # not a RedisError: keep it a 503
                    raise ConnectionError(f"no cluster node answered ({exc})") from None
                self.stale = False
        node = self.cluster.get_node_from_key(keys.TAG)
        if node is None:
            raise ConnectionError("no cluster node serves the {ks} slot")
        return node.host, int(node.port)

    async def aclose(self) -> None:
        await super().aclose()
        await self.cluster.aclose()


def cluster_pool(url: str, config: RedisConfig, **options: Any) -> BlockingConnectionPool:
    """A pool of connections to the node owning ``{ks}`` in the cluster ``url`` is part of."""
    seeds = [ClusterNode(address.host, address.port) for address in config.cluster_nodes]
    target: dict[str, Any] = dict(parse_url(url))
    ssl = target.pop("connection_class", None) is not None
    cluster = RedisCluster(
        host=target.pop("host", None),
        port=target.pop("port", 6379),
        startup_nodes=seeds or None,
        username=target.get("username"),
        password=target.get("password"),
        ssl=ssl,
        socket_timeout=options["socket_timeout"],
        socket_connect_timeout=options["socket_connect_timeout"],
    )
    target.pop("db", None)  # a cluster has database 0 only
    connection_class = SlotOwnerSSLConnection if ssl else SlotOwnerConnection
    return SlotOwnerPool(cluster, connection_class=connection_class, **target, **options)
