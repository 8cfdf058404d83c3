"""The admin API through real HTTP against a real Redis: the token lifecycle, and the
proxy refusing a token the moment the admin call that ends it returns."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from sidecar import clock
from tests.kits.admin import Harness, harness
from tests.kits.redis import basic


@pytest.fixture
async def admin(redis_url: str) -> AsyncIterator[Harness]:
    async with harness(redis_url) as running:
        yield running


@pytest.fixture
async def alice(admin: Harness) -> dict[str, object]:
    await admin.user("alice")
    return await admin.token(user="alice", description="Build bot", access={"orders": "read"})


async def test_created_token_passes_the_proxy(admin: Harness) -> None:
    """A token created through the admin API for a new user reaches the API it was given."""
    await admin.user("alice")

    created = await admin.token(user="alice", access={"orders": "read"})
    status = await admin.proxy_get("/orders/items", created["token"])

    assert status == 200
    assert created["user"] == "alice"
    assert created["status"] == "active"


async def test_create_answers_the_secret_once_and_never_again(admin: Harness) -> None:
    """The secret is in the 201 (with no-store) and in no later answer, history or audit."""
    await admin.user("alice")

    reply = await admin.call("POST", "/tokens", json={"user": "alice"})
    secret = reply.body["client_secret"]
    client_id = reply.body["client_id"]
    later = [
        await admin.call("GET", f"/tokens/{client_id}"),
        await admin.call("GET", "/tokens"),
        await admin.call("GET", f"/tokens/{client_id}/history"),
        await admin.call("GET", "/audit"),
    ]

    assert reply.status == 201
    assert reply.headers["Cache-Control"] == "no-store"
    assert reply.body["token"].startswith("ks_" + client_id + "_" + secret)
    for answer in later:
        assert answer.status == 200
        assert secret not in str(answer.body)
        assert "argon2" not in str(answer.body)


async def test_create_applies_the_defaults(admin: Harness) -> None:
    """Only user is required: empty description and access, no role, six months of life."""
    await admin.user("alice")

    body = (await admin.call("POST", "/tokens", json={"user": "alice"})).body

    expected = clock.add_months(clock.from_rfc3339(body["created_at"]), 6)
    assert (body["description"], body["access"], body["role"]) == ("", {}, None)
    assert clock.from_rfc3339(body["expires_at"]) == expected
    assert body["created_by"] == "root"
    assert body["last_used_at"] is None


async def test_create_for_a_user_named_in_another_case_stores_the_real_name(
    admin: Harness,
) -> None:
    """Usernames are case-insensitive: the token belongs to the user as it was created."""
    await admin.user("Alice")

    body = await admin.token(user="ALICE")

    assert body["user"] == "Alice"


async def test_create_for_a_missing_user_is_a_400_naming_user(admin: Harness) -> None:
    """Users are never created implicitly by the admin API."""
    reply = await admin.call("POST", "/tokens", json={"user": "ghost"})

    assert reply.status == 400
    assert reply.body["error"] == "invalid_request"
    assert reply.body["field"] == "user"
    assert (await admin.call("GET", "/users/ghost")).status == 404


async def test_get_answers_the_record(admin: Harness, alice: dict[str, object]) -> None:
    """GET /tokens/{id} answers the public record."""
    reply = await admin.call("GET", f"/tokens/{alice['client_id']}")

    assert reply.status == 200
    assert reply.body["description"] == "Build bot"
    assert "client_secret" not in reply.body
    assert "token" not in reply.body


async def test_patch_changes_fields_and_records_history(
    admin: Harness, alice: dict[str, object]
) -> None:
    """PATCH changes the fields given and history shows {field: [old, new]}."""
    client_id = alice["client_id"]

    reply = await admin.call(
        "PATCH", f"/tokens/{client_id}", json={"description": "CI", "access": {"orders": "full"}}
    )
    history = (await admin.call("GET", f"/tokens/{client_id}/history")).body["items"]

    assert reply.status == 200
    assert reply.body["description"] == "CI"
    assert [entry["action"] for entry in history] == ["created", "updated"]
    assert history[1]["changes"] == {
        "description": ["Build bot", "CI"],
        "access": [{"orders": "read"}, {"orders": "full"}],
    }
    assert history[1]["actor"] == "root"
    assert set(history[1]) == {"at", "actor", "action", "changes"}


async def test_patch_access_takes_effect_on_the_proxy_at_once(
    admin: Harness, alice: dict[str, object]
) -> None:
    """Lowering a token's access is enforced by the proxy as soon as PATCH returns."""
    token = str(alice["token"])
    assert await admin.proxy_get("/orders/x", token) == 200

    await admin.call("PATCH", f"/tokens/{alice['client_id']}", json={"access": {}})

    assert await admin.proxy_get("/orders/x", token) == 403


async def test_patch_moves_a_token_to_another_user(
    admin: Harness, alice: dict[str, object]
) -> None:
    """Changing user moves the token: the new user's list has it, the old one's not."""
    await admin.user("bob")

    await admin.call("PATCH", f"/tokens/{alice['client_id']}", json={"user": "bob"})
    bobs = (await admin.call("GET", "/tokens?user=bob")).body
    alices = (await admin.call("GET", "/tokens?user=alice")).body

    assert [item["client_id"] for item in bobs["items"]] == [alice["client_id"]]
    assert alices["total"] == 0


async def test_revoke_is_final_and_refused_by_the_proxy(
    admin: Harness, alice: dict[str, object]
) -> None:
    """Revoke answers 200 with the record; the proxy refuses the token the moment it returns."""
    token = str(alice["token"])
    assert await admin.proxy_get("/orders/x", token) == 200

    reply = await admin.call("POST", f"/tokens/{alice['client_id']}/revoke")

    assert reply.status == 200
    assert reply.body["status"] == "revoked"
    assert reply.body["revoked_by"] == "root"
    assert reply.body["revoked_at"] is not None
    assert await admin.proxy_get("/orders/x", token) == 401


async def test_a_revoked_token_cannot_be_regenerated(
    admin: Harness, alice: dict[str, object]
) -> None:
    """Revocation is for good: regenerate answers 409."""
    await admin.call("POST", f"/tokens/{alice['client_id']}/revoke")

    reply = await admin.call("POST", f"/tokens/{alice['client_id']}/regenerate")

    assert reply.status == 409
    assert reply.body["error"] == "conflict"


async def test_regenerate_replaces_the_secret_and_keeps_the_client_id(
    admin: Harness, alice: dict[str, object]
) -> None:
    """The new secret works, the old one is refused at once, the client_id stays."""
    old = str(alice["token"])
    assert await admin.proxy_get("/orders/x", old) == 200

    reply = await admin.call(
        "POST", f"/tokens/{alice['client_id']}/regenerate", json={"expires_in_months": 12}
    )

    assert reply.status == 200
    assert reply.headers["Cache-Control"] == "no-store"
    assert reply.body["client_id"] == alice["client_id"]
    assert reply.body["regenerated_at"] is not None
    expected = clock.add_months(clock.from_rfc3339(reply.body["regenerated_at"]), 12)
    assert abs(clock.from_rfc3339(reply.body["expires_at"]) - expected) < timedelta(seconds=2)
    assert await admin.proxy_get("/orders/x", reply.body["token"]) == 200
    assert await admin.proxy_get("/orders/x", old) == 401


async def test_regenerate_with_grace_keeps_the_old_secret_for_a_while(
    admin: Harness, alice: dict[str, object]
) -> None:
    """With grace_seconds, the old secret still works during the grace period."""
    old = str(alice["token"])

    reply = await admin.call(
        "POST", f"/tokens/{alice['client_id']}/regenerate", json={"grace_seconds": 600}
    )
    history = (await admin.call("GET", f"/tokens/{alice['client_id']}/history")).body["items"]

    assert await admin.proxy_get("/orders/x", old) == 200
    assert await admin.proxy_get("/orders/x", reply.body["token"]) == 200
    assert history[-1]["action"] == "regenerated"
    assert "previous_hash" not in history[-1]["changes"]
    assert "secret_hash" not in history[-1]["changes"]


async def test_regenerate_says_when_the_grace_ends_and_history_keeps_it(
    admin: Harness, alice: dict[str, object]
) -> None:
    """grace_until is answered (regenerated_at + grace) and kept in history; no grace, no key."""
    with_grace = await admin.call(
        "POST", f"/tokens/{alice['client_id']}/regenerate", json={"grace_seconds": 600}
    )
    without = await admin.call("POST", f"/tokens/{alice['client_id']}/regenerate")
    history = (await admin.call("GET", f"/tokens/{alice['client_id']}/history")).body["items"]

    until = with_grace.body["grace_until"]
    started = clock.from_rfc3339(with_grace.body["regenerated_at"])
    assert abs(clock.from_rfc3339(until) - started - timedelta(seconds=600)) < timedelta(seconds=2)
    assert "grace_until" not in without.body
    assert history[-2]["changes"]["grace_until"] == [None, until]
    assert history[-1]["changes"]["grace_until"] == [until, None]


async def test_regenerate_grace_above_the_maximum_is_refused(
    admin: Harness, alice: dict[str, object]
) -> None:
    """grace_seconds is capped by tokens.max_grace_seconds (86400 by default)."""
    reply = await admin.call(
        "POST", f"/tokens/{alice['client_id']}/regenerate", json={"grace_seconds": 86401}
    )

    assert reply.status == 400
    assert reply.body["field"] == "grace_seconds"


async def test_delete_removes_the_token_for_good(admin: Harness, alice: dict[str, object]) -> None:
    """DELETE answers 204; the token is gone, refused by the proxy, its history kept."""
    client_id = alice["client_id"]

    reply = await admin.call("DELETE", f"/tokens/{client_id}")
    history = (await admin.call("GET", f"/tokens/{client_id}/history")).body["items"]

    assert reply.status == 204
    assert (await admin.call("GET", f"/tokens/{client_id}")).status == 404
    assert await admin.proxy_get("/orders/x", str(alice["token"])) == 401
    assert history[-1]["action"] == "deleted"
    assert (await admin.call("DELETE", f"/tokens/{client_id}")).status == 404


async def test_a_token_is_refused_from_the_second_it_expires(admin: Harness) -> None:
    """Status expired is derived on read, and the proxy refuses the token once it expires."""
    await admin.user("alice")
    soon = clock.to_rfc3339(clock.now() + timedelta(seconds=2))
    created = await admin.token(user="alice", access={"orders": "read"}, expires_at=soon)
    assert await admin.proxy_get("/orders/x", created["token"]) == 200

    await asyncio.sleep((clock.from_rfc3339(soon) - clock.now()).total_seconds() + 0.05)
    listed = (await admin.call("GET", "/tokens?status=expired")).body

    assert await admin.proxy_get("/orders/x", created["token"]) == 401
    assert [item["client_id"] for item in listed["items"]] == [created["client_id"]]
    assert listed["items"][0]["status"] == "expired"


async def test_bulk_delete_deletes_all_or_none(admin: Harness) -> None:
    """One unknown id among many: 400 naming it, and nothing is deleted."""
    await admin.user("alice")
    ids = [(await admin.token(user="alice"))["client_id"] for _ in range(3)]

    refused = await admin.call("POST", "/tokens/bulk-delete", json={"client_ids": [*ids, "A" * 22]})
    after_refusal = (await admin.call("GET", "/tokens?user=alice")).body["total"]
    done = await admin.call("POST", "/tokens/bulk-delete", json={"client_ids": ids})

    assert refused.status == 400
    assert refused.body["field"] == "client_ids.3"
    assert after_refusal == 3
    assert done.status == 200
    assert done.body["deleted"] == 3
    assert (await admin.call("GET", "/tokens?user=alice")).body["total"] == 0


async def test_bulk_revoke_by_user_stops_every_token_of_the_user(admin: Harness) -> None:
    """Revoking by user revokes all its tokens at once; other users' tokens keep working."""
    await admin.user("alice")
    await admin.user("bob")
    alices = [await admin.token(user="alice", access={"orders": "read"}) for _ in range(2)]
    bobs = await admin.token(user="bob", access={"orders": "read"})

    reply = await admin.call("POST", "/tokens/bulk-revoke", json={"user": "alice"})

    assert reply.body["revoked"] == 2
    for created in alices:
        assert await admin.proxy_get("/orders/x", created["token"]) == 401
    assert await admin.proxy_get("/orders/x", bobs["token"]) == 200


async def test_bulk_revoke_by_ids(admin: Harness) -> None:
    """Revoking by ids revokes exactly those tokens."""
    await admin.user("alice")
    first, second = [await admin.token(user="alice") for _ in range(2)]

    reply = await admin.call(
        "POST", "/tokens/bulk-revoke", json={"client_ids": [first["client_id"]]}
    )
    statuses = {
        item["client_id"]: item["status"]
        for item in (await admin.call("GET", "/tokens")).body["items"]
    }

    assert reply.body["revoked"] == 1
    assert statuses[first["client_id"]] == "revoked"
    assert statuses[second["client_id"]] == "active"


async def test_history_of_a_never_issued_id_is_404(admin: Harness) -> None:
    """History is only for client_ids that were issued."""
    reply = await admin.call("GET", "/tokens/AAAAAAAAAAAAAAAAAAAAAA/history")

    assert reply.status == 404
    assert reply.body["error"] == "not_found"


async def test_no_secret_or_hash_reaches_the_logs(
    admin: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """Creating, regenerating and failing calls log neither secrets nor argon2 hashes."""
    caplog.set_level("DEBUG")
    await admin.user("alice")
    created = await admin.token(user="alice")
    regenerated = await admin.call("POST", f"/tokens/{created['client_id']}/regenerate")
    await admin.call("POST", "/tokens", json={"user": "alice", "secret_hash": "x"})
    await admin.call("GET", "/tokens", token=str(created["token"]))

    text = caplog.text

    for secret in (created["client_secret"], regenerated.body["client_secret"], admin.root):
        assert str(secret) not in text
    assert "$argon2" not in text


async def test_basic_and_header_pair_credentials_work_on_the_admin_api(admin: Harness) -> None:
    """The admin API accepts the three credential methods the proxy accepts."""
    created = await admin.token(user="root", access={"admin": "read"})
    client_id, secret = str(created["client_id"]), str(created["client_secret"])
    url = admin.admin_url + "/admin/v1/apis"

    basic_header = {"Authorization": basic(f"{client_id}:{secret}")}
    async with admin.session.get(url, headers=basic_header) as by_basic:
        basic_status = by_basic.status
    pair = {"X-Client-Id": client_id, "X-Client-Secret": secret}
    async with admin.session.get(url, headers=pair) as by_headers:
        pair_status = by_headers.status

    assert (basic_status, pair_status) == (200, 200)
