"""Bad input to the admin API: each kind is a clear 4xx naming the field, and changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from sidecar import clock
from tests.kits.admin import Harness, harness
from tests.kits.redis import RedisProcess


@pytest.fixture
async def admin(redis_url: str) -> AsyncIterator[Harness]:
    async with harness(redis_url) as running:
        await running.user("alice")
        await running.call("PUT", "/roles/ops", json={"access": {"orders": "read"}})
        yield running


def _past() -> str:
    return clock.to_rfc3339(clock.now() - timedelta(minutes=1))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user": "alice", "colour": "red"}, "colour"),
        ({"user": "alice", "client_id": "A" * 22}, "client_id"),
        ({"user": "alice", "created_at": "2030-01-01T00:00:00Z"}, "created_at"),
        ({"user": "alice", "status": "active"}, "status"),
        ({"user": "alice", "secret_hash": "$argon2id$..."}, "secret_hash"),
        ({"description": "no user"}, "user"),
        ({"user": 7}, "user"),
        ({"user": "alice", "description": ["x"]}, "description"),
        ({"user": "alice", "access": ["orders"]}, "access"),
        ({"user": "alice", "access": {"payroll": "read"}}, "access.payroll"),
        ({"user": "alice", "access": {"orders": "write"}}, "access.orders"),
        ({"user": "alice", "role": "nobody"}, "role"),
        ({"user": "alice", "expires_in_months": 5}, "expires_in_months"),
        ({"user": "alice", "expires_in_months": "6"}, "expires_in_months"),
        ({"user": "alice", "expires_at": "2030-01-01T00:00:00"}, "expires_at"),
        ({"user": "alice", "expires_at": "next week"}, "expires_at"),
        ({"user": "alice", "expires_at": _past()}, "expires_at"),
    ],
)
async def test_a_bad_token_body_is_a_400_naming_the_field(
    admin: Harness, body: dict[str, Any], field: str
) -> None:
    """Unknown, read-only, mistyped or out-of-range fields: 400 invalid_request, nothing stored."""
    before = (await admin.call("GET", "/audit")).body["items"]

    reply = await admin.call("POST", "/tokens", json=body)

    assert reply.status == 400
    assert reply.body["error"] == "invalid_request"
    assert reply.body["field"] == field
    assert reply.body["message"]
    assert (await admin.call("GET", "/audit")).body["items"] == before


async def test_a_bad_patch_changes_nothing(admin: Harness) -> None:
    """A PATCH with one bad field among good ones changes none of them."""
    created = await admin.token(user="alice", description="before")

    reply = await admin.call(
        "PATCH",
        f"/tokens/{created['client_id']}",
        json={"description": "after", "access": {"orders": "root"}},
    )
    after = (await admin.call("GET", f"/tokens/{created['client_id']}")).body

    assert reply.status == 400
    assert reply.body["field"] == "access.orders"
    assert after["description"] == "before"


async def test_malformed_json_is_a_400(admin: Harness) -> None:
    """A body that is not valid JSON is a 400 invalid_request."""
    reply = await admin.call(
        "POST", "/tokens", data='{"user": "alice",', headers={"Content-Type": "application/json"}
    )

    assert reply.status == 400
    assert reply.body["error"] == "invalid_request"


async def test_a_body_that_is_not_an_object_is_a_400(admin: Harness) -> None:
    """The body must be a JSON object."""
    reply = await admin.call("POST", "/tokens", json=["alice"])

    assert reply.status == 400


async def test_a_body_that_is_not_json_is_a_415(admin: Harness) -> None:
    """A form or text body is a 415."""
    reply = await admin.call(
        "POST", "/tokens", data="user=alice", headers={"Content-Type": "text/plain"}
    )

    assert reply.status == 415
    assert reply.body["error"] == "unsupported_media_type"


async def test_a_body_too_large_is_a_413(admin: Harness) -> None:
    """A body above admin.max_body_bytes (64 KiB by default) is a 413."""
    reply = await admin.call("POST", "/tokens", json={"user": "alice", "description": "x" * 70_000})

    assert reply.status == 413
    assert reply.body["error"] == "payload_too_large"


async def test_a_wrong_method_is_a_405_with_allow(admin: Harness) -> None:
    """PUT on /tokens is a 405 listing the methods that exist."""
    reply = await admin.call("PUT", "/tokens", json={})

    assert reply.status == 405
    assert set(reply.headers["Allow"].split(",")) == {"GET", "HEAD", "POST"}
    assert set(reply.body) == {"error", "message"}


async def test_a_malformed_client_id_is_a_404(admin: Harness) -> None:
    """A path value that cannot be a client_id is answered as a missing token."""
    reply = await admin.call("GET", "/tokens/not-an-id")

    assert reply.status == 404
    assert reply.body["error"] == "not_found"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("offset=-1", "offset"),
        ("status=sleeping", "status"),
        ("api=payroll", "api"),
        ("order=colour", "order"),
    ],
)
async def test_a_bad_list_query_is_a_400_naming_it(admin: Harness, query: str, field: str) -> None:
    """Out-of-range paging, unknown status, API or order column: 400 naming the parameter."""
    reply = await admin.call("GET", f"/tokens?{query}")

    assert reply.status == 400
    assert reply.body["field"] == field


async def test_bulk_revoke_needs_exactly_one_target(admin: Harness) -> None:
    """Both client_ids and user, or neither, is a 400."""
    both = await admin.call("POST", "/tokens/bulk-revoke", json={"client_ids": [], "user": "a"})
    neither = await admin.call("POST", "/tokens/bulk-revoke", json={})

    assert (both.status, neither.status) == (400, 400)


async def test_a_user_with_a_bad_name_or_email_is_refused(admin: Harness) -> None:
    """Username and email are checked before anything is stored."""
    name = await admin.call("POST", "/users", json={"username": "-bad name"})
    mail = await admin.call("POST", "/users", json={"username": "carol", "email": "nope"})

    assert (name.status, name.body["field"]) == (400, "username")
    assert (mail.status, mail.body["field"]) == (400, "email")
    assert (await admin.call("GET", "/users/carol")).status == 404


async def test_store_unreachable_is_a_503_with_retry_after(
    private_redis: RedisProcess,
) -> None:
    """With Redis down, the admin API fails closed with 503 and Retry-After."""
    async with harness(private_redis.url) as admin:
        private_redis.stop()

        reply = await admin.call("GET", "/tokens")

    assert reply.status == 503
    assert reply.headers["Retry-After"] == "1"
    assert reply.body["error"] == "unavailable"


async def test_changes_to_missing_records_are_404(admin: Harness) -> None:
    """PATCH, regenerate, revoke or delete of a record that does not exist is a 404."""
    missing = "/tokens/AAAAAAAAAAAAAAAAAAAAAA"

    replies = [
        await admin.call("PATCH", missing, json={"description": "x"}),
        await admin.call("POST", missing + "/regenerate"),
        await admin.call("POST", missing + "/revoke"),
        await admin.call("PATCH", "/users/nobody", json={"active": False}),
        await admin.call("DELETE", "/users/nobody"),
        await admin.call("DELETE", "/roles/nobody"),
        await admin.call("GET", "/roles/nobody"),
    ]

    assert [reply.status for reply in replies] == [404] * len(replies)
    assert all(reply.body["error"] == "not_found" for reply in replies)


async def test_patch_to_a_missing_user_or_role_is_a_400_naming_it(admin: Harness) -> None:
    """Moving a token to a user or role that does not exist names the field, changes nothing."""
    created = await admin.token(user="alice", role="ops")
    path = f"/tokens/{created['client_id']}"

    to_user = await admin.call("PATCH", path, json={"user": "ghost"})
    to_role = await admin.call("PATCH", path, json={"role": "ghosts"})
    after = (await admin.call("GET", path)).body

    assert (to_user.status, to_user.body["field"]) == (400, "user")
    assert (to_role.status, to_role.body["field"]) == (400, "role")
    assert (after["user"], after["role"]) == ("alice", "ops")
