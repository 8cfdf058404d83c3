"""The [redis] keys of Sentinel and Cluster: one coherent way to the store, or a named refusal."""

from __future__ import annotations

import pytest

from sidecar.config import ConfigError, HostPort, parse


def _problems(redis: dict[str, object], environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse({"redis": redis}, environ or {})
    return caught.value.problems


def test_sentinel_and_cluster_keys_are_read() -> None:
    """Sentinel addresses become host:port pairs; a cluster takes its url and further seeds."""
    sentinel = parse({"redis": {"sentinels": ["10.0.0.1:26379"], "sentinel_service": "ks"}}, {})
    assert sentinel.redis.sentinels == (HostPort("10.0.0.1", 26379),)
    assert sentinel.redis.url is None
    cluster = parse(
        {"redis": {"url": "redis://n1:7000", "cluster": True, "cluster_nodes": ["n2:7000"]}}, {}
    )
    assert (cluster.redis.cluster, cluster.redis.cluster_nodes) == (True, (HostPort("n2", 7000),))


@pytest.mark.parametrize(
    ("redis", "key"),
    [
        ({"url": "redis://h:1", "sentinels": ["h:26379"], "sentinel_service": "s"}, "sentinels"),
        ({"sentinels": ["h:26379"], "sentinel_service": "s", "cluster": True}, "cluster"),
        ({"sentinels": ["h:26379"]}, "sentinel_service"),
        ({"sentinels": "h:26379", "sentinel_service": "s"}, "sentinels"),
        ({"sentinels": ["h"], "sentinel_service": "s"}, "sentinels"),
        ({"url": "redis://h:1", "sentinel_service": "s"}, "sentinel_service"),
        ({"url": "redis://h:1", "tls": True}, "tls"),
        ({"cluster": True}, "cluster"),
        ({"url": "unix:///run/redis.sock", "cluster": True}, "cluster"),
        ({"url": "redis://h:1", "cluster_nodes": ["h:2"]}, "cluster_nodes"),
    ],
)
def test_incoherent_combinations_name_the_key(redis: dict[str, object], key: str) -> None:
    """Each way of naming two stores at once, or half of one, is refused naming the key."""
    problems = _problems(redis)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"redis.{key}: "), problems


def test_the_environment_url_counts_against_sentinels() -> None:
    """KEYSTILE_REDIS_URL beside sentinels in the file is the same conflict."""
    redis = {"sentinels": ["h:26379"], "sentinel_service": "s"}
    problems = _problems(redis, {"KEYSTILE_REDIS_URL": "redis://h:1"})
    assert problems == ["redis.sentinels: choose redis.url or redis.sentinels, not both"]
