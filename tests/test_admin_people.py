"""Users, roles, APIs, audit and the token list's search through the real admin API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from unittest.mock import ANY

import pytest

from sidecar import clock
from tests.kits.admin import Harness, harness


@pytest.fixture
async def admin(redis_url: str) -> AsyncIterator[Harness]:
    async with harness(redis_url) as running:
        yield running


async def test_usernames_are_unique_whatever_their_case(admin: Harness) -> None:
    """A second user whose name differs only in case is a 409."""
    before = clock.now().replace(microsecond=0)
    await admin.user("Alice", display_name="Alice A.", email="alice@example.org")
    after = clock.now()

    reply = await admin.call("POST", "/users", json={"username": "alice"})
    found = await admin.call("GET", "/users/ALICE")

    assert reply.status == 409
    assert reply.body["error"] == "conflict"
    assert found.body == {
        "username": "Alice",
        "display_name": "Alice A.",
        "email": "alice@example.org",
        "active": True,
        "created_at": ANY,
    }
    assert before <= clock.from_rfc3339(found.body["created_at"]) <= after


async def test_deactivating_a_user_stops_all_its_tokens(admin: Harness) -> None:
    """active=false refuses every token of the user at once; true lets them through again."""
    await admin.user("alice")
    created = await admin.token(user="alice", access={"orders": "read"})
    assert await admin.proxy_get("/orders/x", created["token"]) == 200

    reply = await admin.call("PATCH", "/users/alice", json={"active": False})
    refused = await admin.proxy_get("/orders/x", created["token"])
    await admin.call("PATCH", "/users/alice", json={"active": True})

    assert reply.body["active"] is False
    assert refused == 401
    assert await admin.proxy_get("/orders/x", created["token"]) == 200


async def test_deleting_a_user_deletes_its_tokens(admin: Harness) -> None:
    """DELETE /users/{name} removes the user and every one of its tokens, at once."""
    await admin.user("alice")
    created = await admin.token(user="alice", access={"orders": "read"})

    reply = await admin.call("DELETE", "/users/alice")

    assert reply.status == 204
    assert (await admin.call("GET", "/users/alice")).status == 404
    assert (await admin.call("GET", f"/tokens/{created['client_id']}")).status == 404
    assert await admin.proxy_get("/orders/x", created["token"]) == 401
    history = (await admin.call("GET", f"/tokens/{created['client_id']}/history")).body
    assert history["items"][-1]["action"] == "deleted"


async def test_user_list_searches_sorts_and_pages(admin: Harness) -> None:
    """q matches username, display name or email; order and paging as for tokens."""
    for name, display in [("carol", "C"), ("alice", "Zed"), ("bob", "Zed")]:
        await admin.user(name, display_name=display)

    reply = await admin.call("GET", "/users?q=zed&order=-username&limit=1&offset=1")

    assert reply.body["total"] == 2
    assert (reply.body["limit"], reply.body["offset"]) == (1, 1)
    assert [u["username"] for u in reply.body["items"]] == ["alice"]


async def test_a_role_change_changes_every_token_that_has_it(admin: Harness) -> None:
    """PUT on a role changes its tokens' access on the proxy at once."""
    await admin.call("PUT", "/roles/reader", json={"description": "R", "access": {"*": "read"}})
    await admin.user("alice")
    created = await admin.token(user="alice", role="reader")
    assert await admin.proxy_get("/billing/x", created["token"]) == 200

    reply = await admin.call("PUT", "/roles/reader", json={"access": {"orders": "read"}})

    assert reply.status == 200
    assert await admin.proxy_get("/billing/x", created["token"]) == 403
    assert await admin.proxy_get("/orders/x", created["token"]) == 200


async def test_role_put_creates_then_replaces(admin: Harness) -> None:
    """The first PUT answers 201, a later one 200; GET and the list show the new role."""
    first = await admin.call("PUT", "/roles/ops", json={"access": {"orders": "full"}})
    second = await admin.call("PUT", "/roles/ops", json={"description": "Operators"})
    listed = await admin.call("GET", "/roles")

    assert (first.status, second.status) == (201, 200)
    assert listed.body == {"items": [{"name": "ops", "description": "Operators", "access": {}}]}


async def test_deleting_a_role_in_use_is_a_409(admin: Harness) -> None:
    """A role that tokens use cannot be deleted; once unused it can."""
    await admin.call("PUT", "/roles/ops", json={"access": {"orders": "full"}})
    await admin.user("alice")
    created = await admin.token(user="alice", role="ops")

    refused = await admin.call("DELETE", "/roles/ops")
    await admin.call("PATCH", f"/tokens/{created['client_id']}", json={"role": None})
    done = await admin.call("DELETE", "/roles/ops")

    assert refused.status == 409
    assert done.status == 204
    assert (await admin.call("GET", "/roles/ops")).status == 404


async def test_role_access_names_only_known_apis(admin: Harness) -> None:
    """An access map naming an API that is not configured is a 400 naming access.<api>."""
    reply = await admin.call("PUT", "/roles/ops", json={"access": {"payroll": "read"}})

    assert reply.status == 400
    assert reply.body["field"] == "access.payroll"


async def test_apis_lists_the_configured_apis(admin: Harness) -> None:
    """GET /apis answers name, prefix and description of each configured API."""
    reply = await admin.call("GET", "/apis")

    assert reply.body["items"] == [
        {"name": "orders", "prefix": "/orders", "description": "Orders"},
        {"name": "billing", "prefix": "/billing", "description": ""},
    ]


async def test_audit_is_newest_first_and_filters_by_since(admin: Harness) -> None:
    """The audit log lists every change, newest first, and since cuts older ones."""
    await admin.user("alice")
    created = await admin.token(user="alice")
    entries = (await admin.call("GET", "/audit")).body["items"]
    since = entries[0]["at"]

    later = (await admin.call("GET", f"/audit?since={since}&limit=1")).body["items"]

    assert [(e["action"], e["kind"]) for e in entries[:2]] == [
        ("created", "token"),
        ("created", "user"),
    ]
    assert entries[0]["target"] == created["client_id"]
    assert entries[0]["actor"] == "root"
    assert len(later) == 1
    assert later[0]["at"] >= since


async def test_token_list_searches_filters_and_sorts_on_several_columns(
    admin: Harness,
) -> None:
    """q is a case-insensitive partial match; order takes several columns with '-'."""
    await admin.call("PUT", "/roles/ops", json={"access": {"billing": "read"}})
    for name in ("bob", "alice"):
        await admin.user(name)
    made = [
        await admin.token(user="bob", description="Nightly Build"),
        await admin.token(user="alice", description="nightly export", role="ops"),
        await admin.token(user="alice", description="manual"),
        await admin.token(user="bob", description="other", access={"orders": "read"}),
    ]
    ids = [m["client_id"] for m in made]

    found = (await admin.call("GET", "/tokens?q=NIGHTLY&order=user,-created_at")).body
    by_role = (await admin.call("GET", "/tokens?role=ops")).body
    by_api = (await admin.call("GET", "/tokens?api=billing")).body
    ordered = (await admin.call("GET", "/tokens?order=user,description")).body
    paged = (await admin.call("GET", "/tokens?order=user,description&limit=2&offset=1")).body

    assert [i["client_id"] for i in found["items"]] == [ids[1], ids[0]]
    assert found["total"] == 2
    assert [i["client_id"] for i in by_role["items"]] == [ids[1]]
    assert [i["client_id"] for i in by_api["items"]] == [ids[1]]
    # The fifth token is the harness's own admin token, user "root".
    assert [i["client_id"] for i in ordered["items"]][:4] == [ids[2], ids[1], ids[0], ids[3]]
    assert [i["client_id"] for i in paged["items"]] == [ids[1], ids[0]]
    assert (paged["total"], paged["limit"], paged["offset"]) == (5, 2, 1)


async def test_token_list_matches_a_partial_client_id(admin: Harness) -> None:
    """q also matches part of a client_id, in any case."""
    await admin.user("alice")
    created = await admin.token(user="alice")
    part = str(created["client_id"])[3:12].swapcase()

    found = (await admin.call("GET", f"/tokens?q={part}")).body

    assert [i["client_id"] for i in found["items"]] == [created["client_id"]]


async def test_token_list_unknown_order_column_is_a_400(admin: Harness) -> None:
    """An unknown order column is a 400 naming order."""
    reply = await admin.call("GET", "/tokens?order=user,-secret_hash")

    assert reply.status == 400
    assert reply.body["field"] == "order"
