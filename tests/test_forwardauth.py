"""Forward-auth mode (``/_keystile/check``): direct calls, and through a real nginx,
Traefik and Envoy configured as docs/forward-auth.md says (tests/kits/fronts.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import aiohttp
import pytest
import redis.asyncio as aioredis

from sidecar.config import HeadersConfig
from sidecar.store.management import AdminStore
from sidecar.verification.issuing import Issued
from tests.kits.fronts import EchoServer, Front, Keystile, Reply, start_front
from tests.kits.processes import write_config
from tests.kits.proxy import Env
from tests.kits.redis import RedisProcess, basic, make_config, seed_role, seed_token


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def asking(method: str, uri: str, style: str = "nginx") -> dict[str, str]:
    if style == "traefik":
        return {"X-Forwarded-Method": method, "X-Forwarded-Uri": uri}
    return {"X-Original-Method": method, "X-Original-URI": uri}


@pytest.mark.parametrize("style", ["nginx", "traefik"])
async def test_check_allows_with_identity_headers(
    env: Env, http: aiohttp.ClientSession, style: str
) -> None:
    """A valid credential for the original method and URI: 200 with the identity headers."""
    headers = {**env.bearer(), **asking("POST", "/orders/42?x=1", style)}
    async with http.get(f"{env.url}/_keystile/check", headers=headers) as response:
        assert response.status == 200
        assert response.headers["X-Auth-User"] == "alice"
        assert response.headers["X-Auth-Client-Id"] == env.tokens.full_id
        assert response.headers["X-Auth-Access"] == "full"
        # Stated even without a role, so that a front copying the answer's headers
        # overwrites a client's own X-Auth-Role (Envoy's allowed_upstream_headers).
        assert response.headers.getall("X-Auth-Role") == [""]
    assert env.upstream.seen == []


async def test_check_envoy_style_reads_method_and_path_from_the_request(
    env: Env, http: aiohttp.ClientSession
) -> None:
    """Envoy's ext_authz appends the original path and keeps the method."""
    headers = env.bearer(env.tokens.read_orders)
    async with http.get(f"{env.url}/_keystile/check/orders/1", headers=headers) as response:
        assert response.status == 200
        assert response.headers["X-Auth-Access"] == "read"
    async with http.delete(f"{env.url}/_keystile/check/orders/1", headers=headers) as response:
        assert response.status == 403


async def test_check_refusals_match_the_proxy(env: Env, http: aiohttp.ClientSession) -> None:
    """No credential 401 with challenge; level too low 403; URI of no API 403."""
    async with http.get(f"{env.url}/_keystile/check", headers=asking("GET", "/orders/1")) as r:
        assert r.status == 401
        assert r.headers["WWW-Authenticate"] == 'Bearer realm="keystile"'
    read = env.bearer(env.tokens.read_orders)
    async with http.get(
        f"{env.url}/_keystile/check", headers={**read, **asking("PUT", "/orders/1")}
    ) as r:
        assert r.status == 403
        assert (await r.json())["error"] == "insufficient_scope"
    for uri in ("/nowhere", "/orders/../billing/x"):
        async with http.get(
            f"{env.url}/_keystile/check", headers={**env.bearer(), **asking("GET", uri)}
        ) as r:
            assert r.status == 403


async def test_check_without_original_uri_is_400(env: Env, http: aiohttp.ClientSession) -> None:
    """A check that does not say which request it is about is a 400."""
    async with http.get(f"{env.url}/_keystile/check", headers=env.bearer()) as response:
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_request"


# -- through real fronts -----------------------------------------------------------------

#: The configurable names at their defaults, which the documented configs must use.
NAMES = HeadersConfig()
IDENTITY = (NAMES.user, NAMES.client_id, NAMES.role, NAMES.access)
CREDENTIAL = ("Authorization", NAMES.credential_client_id, NAMES.credential_client_secret)
REALM = 'Bearer realm="keystile"'
#: What each front's upstream sees as X-Auth-Role for a token without a role.
NO_ROLE = {"nginx": [], "traefik": [""], "envoy": [""]}
#: What each front answers when Keystile cannot be reached.
KEYSTILE_DOWN = {"nginx": 500, "traefik": 500, "envoy": 503}


@dataclass
class Stack:
    """Keystile (the installed command, on its own Redis) and the echo upstream."""

    keystile: Keystile
    echo: EchoServer
    tokens: dict[str, Issued]


async def seed_tokens(redis_url: str) -> dict[str, Issued]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    store, config = AdminStore(client), make_config(redis_url)
    await seed_role(store, "auditor", {"orders": "full"})
    tokens = {
        "without role": await seed_token(store, config, access={"orders": "full"}),
        "with role": await seed_token(store, config, user="carol", role="auditor"),
        "read": await seed_token(store, config, user="bob", access={"orders": "read"}),
    }
    await client.aclose()
    return tokens


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Keystile and the echo upstream for the whole module; the fronts come and go."""
    root = tmp_path_factory.mktemp("fronts")
    redis = RedisProcess(root / "redis")
    redis.start()
    echo = EchoServer()
    config = root / "keystile.toml"
    ports = write_config(config, f"http://127.0.0.1:{echo.port}", redis.url)
    keystile = Keystile(config, ports["proxy"], root / "keystile.log")
    try:
        tokens = asyncio.run(seed_tokens(redis.url))
        keystile.start()
        yield Stack(keystile, echo, tokens)
    finally:
        keystile.stop()
        echo.shutdown()
        echo.server_close()
        redis.stop()


@pytest.fixture(scope="module", params=["nginx", "traefik", "envoy"])
def front(
    request: pytest.FixtureRequest, stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Front]:
    """One front at a time, started once for all the tests that use it."""
    name = request.param
    started = start_front(name, tmp_path_factory.mktemp(name), stack.keystile.port, stack.echo.port)
    yield started
    started.stop()


def bearer(token: Issued) -> tuple[str, str]:
    return ("Authorization", f"Bearer {token.bearer}")


def identity_of(token: Issued, front: Front) -> dict[str, list[str]]:
    """The identity headers the upstream must see for ``token`` (full access)."""
    role = [token.token.role] if token.token.role else NO_ROLE[front.name]
    user, client_id = token.token.user, token.token.client_id
    return dict(zip(IDENTITY, ([user], [client_id], role, ["full"]), strict=True))


def refused(reply: Reply, stack: Stack, seen_before: int) -> bool:
    return reply.status != 200 and stack.echo.seen == seen_before


@pytest.mark.slow
@pytest.mark.parametrize("who", ["without role", "with role"])
def test_front_forwards_an_allowed_request_with_keystiles_identity(
    front: Front, stack: Stack, who: str
) -> None:
    """An allowed request reaches the upstream with Keystile's four identity headers."""
    token = stack.tokens[who]
    reply = front.send("GET", "/orders/7?x=1", [bearer(token)])
    assert reply.status == 200
    assert reply.json()["path"].endswith("/7?x=1")
    for name, values in identity_of(token, front).items():
        assert reply.upstream(name) == values, name


@pytest.mark.slow
@pytest.mark.parametrize("who", ["without role", "with role"])
@pytest.mark.parametrize("header", IDENTITY)
def test_front_never_passes_a_client_copy_of_an_identity_header(
    front: Front, stack: Stack, who: str, header: str
) -> None:
    """A client's own copy of an identity header, in any case, is replaced by Keystile's."""
    token = stack.tokens[who]
    forged = [(header, "superuser"), (header.lower(), "superuser"), (header.upper(), "superuser")]
    reply = front.send("GET", "/orders/7", [bearer(token), *forged])
    assert reply.status == 200
    assert reply.upstream(header) == identity_of(token, front)[header]
    assert all("superuser" not in value for _, value in reply.upstream_headers)


@pytest.mark.slow
@pytest.mark.parametrize("front", ["nginx", "envoy"], indirect=True)
def test_front_drops_identity_headers_spelt_with_underscores(front: Front, stack: Stack) -> None:
    """nginx and Envoy drop X_Auth_Role and the like, which an upstream might fold."""
    forged = [(name.replace("-", "_"), "superuser") for name in IDENTITY]
    reply = front.send("GET", "/orders/7", [bearer(stack.tokens["without role"]), *forged])
    assert reply.status == 200
    assert all("superuser" not in value for _, value in reply.upstream_headers)


@pytest.mark.slow
@pytest.mark.parametrize("style", ["bearer", "basic", "header pair"])
def test_front_does_not_forward_the_credential(front: Front, stack: Stack, style: str) -> None:
    """The credential the check saw does not reach the upstream, in any of its forms."""
    token = stack.tokens["without role"]
    client_id, secret = token.token.client_id, token.client_secret
    sent = {
        "bearer": [bearer(token)],
        "basic": [("Authorization", basic(f"{client_id}:{secret}"))],
        "header pair": [(CREDENTIAL[1], client_id), (CREDENTIAL[2], secret)],
    }[style]
    reply = front.send("GET", "/orders/7", sent)
    assert reply.status == 200
    for name in CREDENTIAL:
        assert reply.upstream(name) == [], name
    assert all(secret not in value for _, value in reply.upstream_headers)


@pytest.mark.slow
def test_front_passes_refusals_on_with_the_challenge(front: Front, stack: Stack) -> None:
    """401 and 403 reach the client with Keystile's WWW-Authenticate; the upstream sees nothing."""
    before = stack.echo.seen
    missing = front.send("GET", "/orders/7")
    assert (missing.status, missing.header("WWW-Authenticate")) == (401, [REALM])
    wrong = front.send("GET", "/orders/7", [("Authorization", "Bearer ks_nonsense")])
    assert wrong.status == 401
    assert wrong.header("WWW-Authenticate") == [f'{REALM}, error="invalid_token"']
    low = front.send("POST", "/orders/7", [bearer(stack.tokens["read"])])
    assert low.status == 403
    assert low.header("WWW-Authenticate") == [f'{REALM}, error="insufficient_scope"']
    if front.name != "nginx":  # nginx answers with its own error page
        assert low.json()["error"] == "insufficient_scope"
    assert stack.echo.seen == before


@pytest.mark.slow
def test_front_does_not_let_the_client_choose_what_is_checked(front: Front, stack: Stack) -> None:
    """A read-only token's DELETE stays refused, whatever original method and URI it claims."""
    claims = [("X-Original-Method", "GET"), ("X-Original-URI", "/orders/7"),
              ("X-Forwarded-Method", "GET"), ("X-Forwarded-Uri", "/orders/7")]  # fmt: skip
    before = stack.echo.seen
    reply = front.send("DELETE", "/orders/7", [bearer(stack.tokens["read"]), *claims])
    assert reply.status == 403
    assert refused(reply, stack, before)


@pytest.mark.slow
def test_front_refuses_when_keystile_is_down(front: Front, stack: Stack) -> None:
    """With Keystile stopped, a valid token is refused: never let through unchecked."""
    before = stack.echo.seen
    stack.keystile.stop()
    try:
        reply = front.send("GET", "/orders/7", [bearer(stack.tokens["with role"])])
    finally:
        stack.keystile.start()
    assert reply.status == KEYSTILE_DOWN[front.name]
    assert refused(reply, stack, before)
