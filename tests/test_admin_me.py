"""Self-service (/admin/v1/me) and the admin levels, through the real admin API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.kits.admin import Harness, harness


@pytest.fixture
async def admin(redis_url: str) -> AsyncIterator[Harness]:
    async with harness(redis_url) as running:
        await running.user("alice")
        await running.user("bob")
        yield running


@pytest.fixture
async def alice(admin: Harness) -> str:
    """A token of alice with no admin level: read on orders, full on billing."""
    created = await admin.token(user="alice", access={"orders": "read", "billing": "full"})
    return str(created["token"])


async def test_me_answers_the_callers_user_token_and_levels(admin: Harness, alice: str) -> None:
    """GET /me describes the caller: its user, its token and its level on each API."""
    reply = await admin.call("GET", "/me", token=alice)

    assert reply.status == 200
    assert reply.body["user"]["username"] == "alice"
    assert reply.body["levels"] == {"orders": "read", "billing": "full", "admin": "none"}
    assert "client_secret" not in reply.body["token"]


async def test_self_service_sees_only_its_own_users_tokens(admin: Harness, alice: str) -> None:
    """GET /me/tokens lists alice's tokens only, whatever user filter is asked for."""
    bobs = await admin.token(user="bob")

    reply = await admin.call("GET", "/me/tokens?user=bob", token=alice)

    assert reply.status == 200
    assert reply.body["total"] == 1
    assert all(item["user"] == "alice" for item in reply.body["items"])
    assert bobs["client_id"] not in str(reply.body)


async def test_self_service_creates_a_token_within_its_own_access(
    admin: Harness, alice: str
) -> None:
    """A self-service token with at most the caller's levels works on the proxy."""
    reply = await admin.call(
        "POST", "/me/tokens", token=alice, json={"access": {"orders": "read"}, "description": "d"}
    )

    assert reply.status == 201
    assert reply.body["user"] == "alice"
    assert reply.headers["Cache-Control"] == "no-store"
    assert await admin.proxy_get("/orders/x", reply.body["token"]) == 200


@pytest.mark.parametrize(
    ("access", "field"),
    [
        ({"orders": "full"}, "access.orders"),
        ({"admin": "read"}, "access.admin"),
        ({"*": "read"}, "access.*"),
    ],
)
async def test_self_service_cannot_grant_more_than_it_holds(
    admin: Harness, alice: str, access: dict[str, str], field: str
) -> None:
    """More than the calling token's level, or any admin or '*' level, is a 403 naming it."""
    reply = await admin.call("POST", "/me/tokens", token=alice, json={"access": access})

    assert reply.status == 403
    assert reply.body["error"] == "insufficient_scope"
    assert reply.body["field"] == field
    assert (await admin.call("GET", "/tokens?user=alice")).body["total"] == 1


async def test_self_service_cannot_set_a_role(admin: Harness, alice: str) -> None:
    """A role in a self-service body is refused, naming role."""
    await admin.call("PUT", "/roles/ops", json={"access": {"orders": "read"}})

    reply = await admin.call("POST", "/me/tokens", token=alice, json={"role": "ops"})

    assert reply.status == 400
    assert reply.body["field"] == "role"


async def test_another_users_token_is_answered_as_missing(admin: Harness, alice: str) -> None:
    """Revoking or deleting bob's token through /me is a 404, and bob's token keeps working."""
    bobs = await admin.token(user="bob", access={"orders": "read"})
    path = f"/me/tokens/{bobs['client_id']}"
    missing = "/me/tokens/AAAAAAAAAAAAAAAAAAAAAA"

    revoke = await admin.call("POST", path + "/revoke", token=alice)
    delete = await admin.call("DELETE", path, token=alice)
    unknown = await admin.call("DELETE", missing, token=alice)

    assert (revoke.status, delete.status) == (404, 404)
    assert revoke.body == unknown.body
    assert await admin.proxy_get("/orders/x", bobs["token"]) == 200


async def test_self_service_revokes_and_deletes_its_own_tokens(admin: Harness, alice: str) -> None:
    """Alice can revoke and delete her own tokens."""
    first = await admin.token(user="alice", access={"orders": "read"})
    second = await admin.token(user="alice")

    revoked = await admin.call("POST", f"/me/tokens/{first['client_id']}/revoke", token=alice)
    deleted = await admin.call("DELETE", f"/me/tokens/{second['client_id']}", token=alice)

    assert revoked.body["status"] == "revoked"
    assert deleted.status == 204
    assert await admin.proxy_get("/orders/x", first["token"]) == 401


async def test_a_token_without_admin_level_gets_403_on_admin_endpoints(
    admin: Harness, alice: str
) -> None:
    """Self-service callers may not use the admin endpoints, even to read."""
    reply = await admin.call("GET", "/tokens", token=alice)

    assert reply.status == 403
    assert reply.body["error"] == "insufficient_scope"
    assert "insufficient_scope" in reply.headers["WWW-Authenticate"]


async def test_read_admins_may_read_but_not_change(admin: Harness) -> None:
    """A token with read on admin gets every GET, and 403 on any change."""
    reader = (await admin.token(user="bob", access={"admin": "read"}))["token"]

    listed = await admin.call("GET", "/tokens", token=reader)
    audit = await admin.call("GET", "/audit", token=reader)
    refused = await admin.call("POST", "/users", token=reader, json={"username": "carol"})

    assert (listed.status, audit.status) == (200, 200)
    assert refused.status == 403
    assert (await admin.call("GET", "/users/carol")).status == 404


async def test_a_role_can_grant_the_admin_level(admin: Harness) -> None:
    """A token's admin level may come from its role, as any other API's level."""
    await admin.call("PUT", "/roles/admins", json={"access": {"admin": "full"}})
    by_role = (await admin.token(user="bob", role="admins"))["token"]

    reply = await admin.call("POST", "/users", token=by_role, json={"username": "carol"})

    assert reply.status == 201
    assert reply.body["username"] == "carol"


async def test_no_credential_is_a_401_with_the_proxys_challenge(admin: Harness) -> None:
    """Without a credential the admin API answers as the proxy does."""
    async with admin.session.get(admin.admin_url + "/admin/v1/tokens") as resp:
        body = await resp.json()

    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"] == 'Bearer realm="keystile"'
    assert set(body) == {"error", "message"}


async def test_a_revoked_admin_token_is_refused_by_the_next_call(admin: Harness) -> None:
    """The admin API checks its callers against the store on every call."""
    other = await admin.token(user="bob", access={"admin": "full"})

    await admin.call("POST", f"/tokens/{other['client_id']}/revoke")
    reply = await admin.call("GET", "/tokens", token=str(other["token"]))

    assert reply.status == 401
    assert reply.body["error"] == "invalid_token"


async def test_a_self_service_token_cannot_outlive_the_calling_token(admin: Harness) -> None:
    """Asking for a later expiry than the caller's is a 403; the default is shortened to it."""
    caller = await admin.token(user="alice", access={"orders": "read"}, expires_in_months=3)

    asked = await admin.call(
        "POST", "/me/tokens", token=str(caller["token"]), json={"expires_in_months": 6}
    )
    default = await admin.call("POST", "/me/tokens", token=str(caller["token"]), json={})

    assert asked.status == 403
    assert asked.body["field"] == "expires_in_months"
    assert default.status == 201
    assert default.body["expires_at"] == caller["expires_at"]
