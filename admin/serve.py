"""``keystile serve`` and ``keystile bootstrap``: composing the runtime.

``serve`` binds both listening sockets (once, in ``admin.startup``: a
port something else holds ends the start naming ``proxy.listen`` or
``admin.listen``), picks the store (``redis.url``, or a private embedded
server), checks it answers, then serves on those sockets until SIGTERM or
SIGINT, and closes everything in order. A listener with ``tls_cert`` and
``tls_key`` serves TLS; SIGHUP reloads both files (``sidecar.ops.tls``). With
several workers the supervisor binds the sockets and hands them to its
workers (``admin.workers``).
``bootstrap`` writes the first admin token straight to the store, also while
``serve`` runs.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from aiohttp import web
from redis.exceptions import RedisError

from admin.app import build_admin_app
from admin.startup import Listeners, StartError, bound
from sidecar import clock
from sidecar.config import Config
from sidecar.errors import StoreUnavailable
from sidecar.ops import embedded
from sidecar.ops.tls import ListenerTls, Tls, TlsError
from sidecar.proxy.app import build_proxy_app
from sidecar.proxy.listeners import ProxyRunner, QuietRunner
from sidecar.proxy.state import METRICS
from sidecar.records import User
from sidecar.redaction import redact
from sidecar.store import serverchecks
from sidecar.store.durability import Durability, NotDurable
from sidecar.store.management import AdminStore
from sidecar.store.redis_store import RedisStore
from sidecar.verification.hashing import Argon2Hasher
from sidecar.verification.issuing import Issued, issue_token
from sidecar.verification.runtime import SHARED, Verification, redis_client

log = logging.getLogger("keystile.serve")

BOOTSTRAP_ACCESS = {"admin": "full"}


def store_name(config: Config) -> str:
    """Which store the config names, for the operator: the redacted URL or the data directory."""
    if config.redis.url is not None:
        return redact(config.redis.url)
    if config.redis.sentinels:
        return sentinel_name(config)
    return f"the embedded store in {config.redis.data_dir.absolute()}"


def configured_url(config: Config) -> tuple[str, str] | None:
    """The store's URL and the key that names it; None: the embedded store.

    In sentinel mode the URL only names the store (the pool asks the sentinels).
    """
    if config.redis.sentinels:
        return sentinel_name(config), "redis.sentinels"
    if config.redis.url is not None:
        return config.redis.url, "redis.url"
    return None


def sentinel_name(config: Config) -> str:
    """What stands for a URL in sentinel mode: the first sentinel and the service (no secret)."""
    return f"sentinel://{config.redis.sentinels[0]}/{config.redis.sentinel_service}"


def warn_if_nothing_to_proxy(config: Config) -> None:
    """A config without ``[[apis]]`` runs, but its proxy can only answer 404: say so."""
    if not config.apis:
        log.warning("no [[apis]] in the config: the proxy answers 404 to every request")


@asynccontextmanager
async def open_store_url(config: Config, *, own_embedded: bool) -> AsyncIterator[str]:
    """Yield a Redis URL that answers: the configured one, or the embedded server's.

    With ``own_embedded`` False (bootstrap), a server already running on the
    data directory is reused, and one is started only for the duration.
    """
    if (configured := configured_url(config)) is not None:
        url, key = configured
        await _check_reachable(url, config, key)
        log.info("using redis", extra={"fields": {"url": redact(url)}})
        yield url
        return
    data_dir = config.redis.data_dir
    if not own_embedded and embedded.is_running(data_dir):
        await _check_reachable(embedded.url_for(data_dir), config, "redis.data_dir")
        yield embedded.url_for(data_dir)
        return
    server = embedded.EmbeddedRedis(data_dir, config.redis.server_binary)
    try:
        # On this, the main, thread: the server's parent-death signal follows the
        # thread that started it (sidecar.ops.parentdeath), and nothing else runs yet.
        server.start()
    except embedded.EmbeddedError as exc:
        raise StartError(str(exc)) from None
    try:
        await _check_reachable(server.url, config, "redis.server_binary")
        yield server.url
    finally:
        await server.astop()


async def _check_reachable(url: str, config: Config, key: str) -> None:
    """The store answers, and can keep what the config asks (sidecar/store/serverchecks.py)."""
    client = redis_client(url, config.redis.timeout, topology=config.redis)
    try:
        await RedisStore(client).ping()
        await serverchecks.check(client, config.redis, redact(url))
    except StoreUnavailable as exc:
        raise StartError(f"{key}: cannot reach {redact(url)} ({exc.reason})") from None
    except (RedisError, OSError) as exc:
        raise StartError(f"{key}: {redact(url)} stopped answering ({type(exc).__name__})") from None
    except serverchecks.ServerRefused as exc:
        raise StartError(str(exc)) from None
    except ValueError as exc:
        raise StartError(f"{key}: {exc}") from None
    finally:
        await client.aclose()


async def _sites(
    runner: web.AppRunner, sockets: list[socket.socket], tls: ListenerTls | None
) -> None:
    await runner.setup()
    context = tls.context if tls is not None else None
    for sock in sockets:
        await web.SockSite(runner, sock, ssl_context=context).start()


def load_tls(config: Config) -> Tls:
    """Both listeners' TLS; a certificate or key that cannot be used is a StartError naming it."""
    try:
        return Tls.load(config)
    except TlsError as exc:
        raise StartError(str(exc)) from None


async def serve(config: Config) -> None:
    # Until serve_on handles it, a SIGHUP waits rather than ending the process.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    load_tls(config)  # before the store starts: a bad certificate ends the start at once
    with bound(config) as (listeners,):
        async with open_store_url(config, own_embedded=True) as url:
            await serve_on(config, url, listeners)


async def serve_on(
    config: Config,
    url: str,
    listeners: Listeners,
    *,
    warm_index: bool = True,
    shared_metrics: Path | None = None,
) -> None:
    """Run both listeners on their bound sockets, with the store at ``url``;
    ``shared_metrics`` the directory where the workers' metrics meet (``admin.workers``)."""
    tls = load_tls(config)
    # One cache, argon2 pool and invalidation listener for both listeners of this process.
    shared = Verification(config, url)
    proxy_app = build_proxy_app(config, url, shared_metrics=shared_metrics)
    # The proxy's metrics, so that /_keystile/metrics counts admin authentications too.
    metrics = proxy_app[METRICS]
    admin_app = build_admin_app(config, url, warm_index=warm_index, metrics=metrics)
    proxy_app[SHARED] = admin_app[SHARED] = shared
    proxy = ProxyRunner(proxy_app, config.proxy)
    # Admin callers send credentials too: never echo them.
    admin = QuietRunner(admin_app, config.admin)
    try:
        await _sites(proxy, listeners.proxy, tls.proxy)
        await _sites(admin, listeners.admin, tls.admin)
        log.info(
            "keystile is serving",
            extra={
                "fields": {
                    "proxy": str(config.proxy.listen),
                    "admin": str(config.admin.listen),
                    "tls": [name for name in ("proxy", "admin") if getattr(tls, name)],
                    "apis": [api.name for api in config.apis],
                }
            },
        )
        await _until_signalled(tls)
        log.info("shutting down")
    finally:
        await admin.cleanup()
        await proxy.cleanup()


async def _until_signalled(tls: Tls) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGHUP, tls.reload)
    # Blocked by serve, or inherited blocked from the supervisor (admin.workers): one
    # sent meanwhile arrives now.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})
    await stop.wait()


async def bootstrap(config: Config, username: str) -> Issued:
    async with open_store_url(config, own_embedded=False) as url:
        client = redis_client(url, config.redis.timeout, topology=config.redis)
        try:
            store = AdminStore(client, Durability.from_config(config.redis))
            now = clock.now()
            user = User(username=username, created_at=clock.to_rfc3339(now))
            stored = await store.ensure_user(user, actor="bootstrap")
            expires = clock.add_months(now, config.tokens.default_expiry_months)
            return await issue_token(
                store,
                Argon2Hasher(config.hashing),
                config.tokens.prefix,
                user=stored.username,
                actor="bootstrap",
                expires_at=expires,
                description="bootstrap admin token",
                access=BOOTSTRAP_ACCESS,
            )
        except StoreUnavailable as exc:
            raise StartError(f"the store stopped answering: {exc.reason}") from None
        except NotDurable as exc:
            # The token is stored but may not survive: it is not printed, so it is never used.
            raise StartError(f"redis.durability: {exc.message()}") from None
        finally:
            await client.aclose()
