"""Configuration: one TOML file plus environment overrides, parsed once.

The whole file is validated before anything starts and every problem is
reported at once, each naming its dotted key, so an operator fixes a config in
one round. The result is a tree of frozen dataclasses passed down explicitly;
nothing reads ``os.environ`` after start-up.

Each key is declared once, below, as a field of its section's dataclass
(``sidecar.configschema.key``: default, check, one line of documentation);
the unknown-key check, the ``KEYSTILE_<SECTION>_<KEY>`` overrides (any other
``KEYSTILE_*`` variable is a problem) and the tables of docs/configuration.md
follow from it. A relative path in the file is read from the file's directory
(``sidecar.configsources``). Pure module: no aiohttp, no redis.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from sidecar import configsources
from sidecar.configchecks import HostPort
from sidecar.configcredentials import (
    CacheConfig,
    HashingConfig,
    HeadersConfig,
    LimitsConfig,
    RetentionConfig,
    TokensConfig,
)
from sidecar.configleaks import LeaksConfig
from sidecar.confignotify import NoticesConfig, WebhookConfig, webhooks
from sidecar.configschema import Reader, env_names, path_keys
from sidecar.configserving import (
    AdminConfig,
    ApiConfig,
    ListenerConfig,
    LogConfig,
    ProxyConfig,
    RedisConfig,
)

__all__ = [
    "AdminConfig",
    "ApiConfig",
    "CacheConfig",
    "Config",
    "ConfigError",
    "HashingConfig",
    "HeadersConfig",
    "HostPort",
    "LeaksConfig",
    "LimitsConfig",
    "ListenerConfig",
    "LogConfig",
    "NoticesConfig",
    "ProxyConfig",
    "RedisConfig",
    "RetentionConfig",
    "TokensConfig",
    "WebhookConfig",
    "load",
    "parse",
]


class ConfigError(Exception):
    """The config cannot be used; ``problems`` lists every reason, each naming its key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


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
    # Leak response (spec section 10).
    leaks: LeaksConfig = field(default_factory=LeaksConfig)
    notices: NoticesConfig = field(default_factory=NoticesConfig)
    apis: tuple[ApiConfig, ...] = ()
    #: The ``[[notify]]`` webhooks (sidecar/confignotify.py).
    notify: tuple[WebhookConfig, ...] = ()


#: The ``[[arrays]]`` of tables, each read by its own function.
_ARRAYS = ("apis", "notify")
#: Each ``[section]`` of the file and the dataclass declaring its keys: Config's fields.
SECTIONS: dict[str, type] = {
    name: hint for name, hint in get_type_hints(Config).items() if name not in _ARRAYS
}
#: Keys naming a file or directory, and their defaults: relative ones are read from the
#: config file's directory.
PATH_KEYS = {
    k: None if default is None else str(default)
    for k, default in path_keys(SECTIONS, "file").items()
}
#: Keys naming a program: a bare name is looked up on PATH, a relative path is anchored.
COMMAND_KEYS = tuple(path_keys(SECTIONS, "program"))


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
    problems = [f"{name}: unknown section" for name in raw if name not in {*SECTIONS, *_ARRAYS}]
    reader = Reader(problems, environ)
    sections: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        before = len(problems)
        sections[name] = cls(**reader.read(cls, _table(raw, name, problems), name))
        if name == "redis" and len(problems) > before:
            continue  # a bad [redis] key is reported alone, not with what its default implies
        problems += _RULES.get(name, lambda _: [])(sections[name])
    apis = _apis(raw.get("apis", []), problems)
    notify = webhooks(raw.get("notify", []), problems, environ)
    config = Config(**sections, apis=apis, notify=notify)
    # A webhook's secret_env may well be a KEYSTILE_* name: it means something.
    named = {hook.secret_env for hook in notify if hook.secret_env}
    problems += configsources.unknown_variables(environ, env_names(SECTIONS) | named)
    if problems:
        raise ConfigError(problems)
    return config


def _table(raw: Mapping[str, Any], name: str, problems: list[str]) -> Mapping[str, Any]:
    value = raw.get(name, {})
    if not isinstance(value, dict):
        problems.append(f"{name}: must be a table")
        return {}
    return value


def _tokens_rules(tokens: TokensConfig) -> list[str]:
    if tokens.default_expiry_months in tokens.expiry_months_choices:
        return []
    return [
        f"tokens.default_expiry_months: {tokens.default_expiry_months} is not one of "
        f"tokens.expiry_months_choices {list(tokens.expiry_months_choices)}"
    ]


def _headers_rules(headers: HeadersConfig) -> list[str]:
    values = {f.name: getattr(headers, f.name) for f in fields(headers)}
    lowered = [value.lower() for value in values.values()]
    return [
        f"headers.{name}: {value!r} is used for two purposes"
        for name, value in values.items()
        if lowered.count(value.lower()) > 1
    ]


def _tls_rules(section: str) -> Callable[[Any], list[str]]:
    """``tls_cert`` and ``tls_key``: both or neither (the files are read at start)."""

    def check(listener: Any) -> list[str]:
        pair = ("tls_cert", "tls_key")
        return [
            f"{section}.{key}: required with {section}.{other}"
            for key, other in (pair, pair[::-1])
            if getattr(listener, other) is not None and getattr(listener, key) is None
        ]

    return check


def _redis_rules(redis: RedisConfig) -> list[str]:
    """Each reason the url, Sentinel and Cluster keys do not name one way to the store."""
    if redis.sentinels:
        if redis.url is not None:
            return ["redis.sentinels: choose redis.url or redis.sentinels, not both"]
        if redis.cluster:
            return ["redis.cluster: choose redis.sentinels or redis.cluster, not both"]
        if not redis.sentinel_service:
            return ["redis.sentinel_service: required with redis.sentinels"]
        return []
    sentinel_only = ("sentinel_service", "sentinel_password", "password", "tls")
    problems = [
        f"redis.{key}: only means something with redis.sentinels"
        for key in sentinel_only
        if getattr(redis, key)
    ]
    if redis.cluster and (redis.url is None or redis.url.startswith("unix:")):
        problems.append("redis.cluster: needs redis.url, the redis:// address of one node")
    if redis.cluster_nodes and not redis.cluster:
        problems.append("redis.cluster_nodes: only means something with redis.cluster = true")
    return problems


#: What a section must satisfy beyond each key's own check.
_RULES: dict[str, Callable[[Any], list[str]]] = {
    "proxy": _tls_rules("proxy"),
    "admin": _tls_rules("admin"),
    "redis": _redis_rules,
    "tokens": _tokens_rules,
    "headers": _headers_rules,
}


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
    values = Reader(problems, {}).read(ApiConfig, item, where)
    return ApiConfig(**values) if len(problems) == before else None


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
