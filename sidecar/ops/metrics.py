"""Prometheus metrics of the proxy (served at ``/_keystile/metrics``).

Each app owns its registry, so two apps in one process (tests, embedding)
never share counters. Under ``keystile serve --workers N`` (N > 1) every
worker writes its values to its own files in a directory the supervisor made
(prometheus_client's multiprocess mode, which the supervisor switches on in
each worker's environment before it imports prometheus_client), and a scrape,
whichever worker it reaches, answers the sum over all of them, including
workers that have since died: docs/metrics.md.

Label values are bounded: API names come from the config, reasons from our
own error texts, methods are folded to ``safe``/``unsafe`` (RFC 9110 section
9.2.1) so a client cannot mint series.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, values
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector

from sidecar.policy import SAFE_METHODS

CONTENT_TYPE = CONTENT_TYPE_LATEST
#: API label for requests that match no API (404, or refused before routing).
NO_API = "-"
#: API label for Keystile's own endpoints.
OWN_API = "_keystile"
_LABEL_JUNK = re.compile(r"[^a-z0-9]+")
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def shared_values_without_getpid() -> None:
    """In a worker, write shared metric values without a ``getpid()`` per increment.

    prometheus_client's multiprocess values ask ``os.getpid()`` on every
    increment to notice a fork (after which a child must write its own files);
    a proxied request makes four such writes. The pid is read once here, and
    again in any child a fork makes, so the check still sees every fork. Call
    it before any metric exists: values made by one ``MultiProcessValue`` class
    must never share a file with another's.
    """
    if not values.ValueClass._multiprocess or getattr(values.ValueClass, "_pid_read_once", False):
        return
    pid = [os.getpid()]
    os.register_at_fork(after_in_child=lambda: pid.__setitem__(0, os.getpid()))
    # prometheus_client leaves MultiProcessValue unannotated.
    identified = values.MultiProcessValue(process_identifier=lambda: pid[0])  # type: ignore[no-untyped-call]
    identified._pid_read_once = True
    values.ValueClass = identified


def method_class(method: str) -> str:
    return "safe" if method.upper() in SAFE_METHODS else "unsafe"


def reason_label(reason: str) -> str:
    """``"unknown client_id"`` -> ``"unknown_client_id"``, at most 48 characters."""
    return _LABEL_JUNK.sub("_", reason.lower()).strip("_")[:48] or "unknown"


class ProxyMetrics:
    """The proxy's metrics; with ``shared`` (a worker's), a scrape answers every worker's sum."""

    def __init__(self, shared: Path | None = None) -> None:
        # prometheus_client picks where values live when it is imported; files in
        # `shared` that this process never writes would silently leave it out.
        if shared is not None and not values.ValueClass._multiprocess:
            raise RuntimeError("PROMETHEUS_MULTIPROC_DIR was unset when prometheus_client loaded")
        self.shared = shared
        self.registry = CollectorRegistry(auto_describe=True)
        #: Called before every scrape: copy counts kept off the hot path into the registry.
        self.before_scrape: list[Callable[[], None]] = []
        self.requests = Counter(
            "keystile_requests",
            "Requests answered by the proxy",
            ["api", "method_class", "status"],
            registry=self.registry,
        )
        self.auth = Counter(
            "keystile_auth",
            "Credential checks by outcome (ok, or the error code) and reason",
            ["outcome", "reason"],
            registry=self.registry,
        )
        self.upstream_latency = Histogram(
            "keystile_upstream_latency_seconds",
            "Time from sending a request upstream to its response headers",
            ["api"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.store_errors = Counter(
            "keystile_store_errors",
            "Credential store calls that failed (the request got 503)",
            registry=self.registry,
        )
        self.upstream_errors = Counter(
            "keystile_upstream_errors",
            "Upstream calls that failed, by kind (refused, timeout)",
            ["api", "kind"],
            registry=self.registry,
        )

        # Labelled children by label values: prometheus_client's labels() checks
        # and joins the values on every call, once per request on the hot path.
        self._request_counters: dict[tuple[str, str, int], Counter] = {}
        self._latencies: dict[str, Histogram] = {}
        self.auth_ok = self.auth.labels("ok", "ok")
        self._refusals: dict[tuple[str, str], Counter] = {}

    def count_request(self, api: str, method_class: str, status: int) -> None:
        key = (api, method_class, status)
        child = self._request_counters.get(key)
        if child is None:
            child = self._request_counters[key] = self.requests.labels(api, method_class, status)
        child.inc()

    def count_refusal(self, code: str, reason: str) -> None:
        """A refused credential, by error code and our own reason text."""
        child = self._refusals.get((code, reason))
        if child is None:
            child = self.auth.labels(code, reason_label(reason))
            if len(self._refusals) < 1024:  # our texts are a few dozen; never unbounded
                self._refusals[(code, reason)] = child
        child.inc()

    def observe_upstream(self, api: str, seconds: float) -> None:
        child = self._latencies.get(api)
        if child is None:
            child = self._latencies[api] = self.upstream_latency.labels(api)
        child.observe(seconds)

    def exposition(self) -> bytes:
        for publish in self.before_scrape:
            publish()
        if self.shared is None:
            return generate_latest(self.registry)
        every_worker = CollectorRegistry()
        MultiProcessCollector(every_worker, path=str(self.shared))
        return generate_latest(every_worker)
