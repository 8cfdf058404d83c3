"""Request validation and authorization rules of the admin API, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from admin import schema
from admin.authz import Caller, check_own_grant, own_expiry, require_admin
from admin.errors import BadRequest, Forbidden
from admin.queries import audit_query, token_query, user_query
from sidecar import clock

NOW = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
RULES = schema.Rules(apis=("orders", "billing"))


def _field(call: Any, *args: Any) -> str | None:
    with pytest.raises(BadRequest) as caught:
        call(*args)
    return caught.value.field


def test_new_token_defaults() -> None:
    """Only user is given: empty description and access, no role, default months from now."""
    draft = schema.new_token({"user": "alice"}, RULES, NOW)

    assert (draft.description, draft.role, draft.access) == ("", None, {})
    assert draft.expires_at == clock.add_months(NOW, 6)


def test_expires_in_months_counts_calendar_months_from_now() -> None:
    """12 months from January 31st is January 31st of the next year; 3 clamps to April 30th."""
    twelve = schema.new_token({"user": "a", "expires_in_months": 12}, RULES, NOW)
    three = schema.new_token({"user": "a", "expires_in_months": 3}, RULES, NOW)

    assert twelve.expires_at == datetime(2027, 1, 31, 12, 0, tzinfo=UTC)
    assert three.expires_at == datetime(2026, 4, 30, 12, 0, tzinfo=UTC)


def test_expires_at_is_kept_in_utc() -> None:
    """An explicit expires_at with any offset is stored as the same moment in UTC."""
    draft = schema.new_token({"user": "a", "expires_at": "2026-03-01T10:00:00+02:00"}, RULES, NOW)

    assert clock.to_rfc3339(draft.expires_at) == "2026-03-01T08:00:00Z"


def test_months_and_expires_at_together_are_refused() -> None:
    """Giving both expiry forms is ambiguous."""
    body = {"user": "a", "expires_in_months": 6, "expires_at": "2026-03-01T00:00:00Z"}

    assert _field(schema.new_token, body, RULES, NOW) == "expires_at"


def test_configured_expiry_choices_are_the_only_ones() -> None:
    """With choices [1, 24], 6 months is refused and 24 accepted."""
    rules = schema.Rules(apis=(), expiry_months_choices=(1, 24), default_expiry_months=1)

    assert _field(schema.new_token, {"user": "a", "expires_in_months": 6}, rules, NOW) == (
        "expires_in_months"
    )
    assert schema.new_token({"user": "a", "expires_in_months": 24}, rules, NOW)


def test_a_boolean_is_not_a_number_of_months() -> None:
    """JSON true is not 1 month, even though Python says True == 1."""
    rules = schema.Rules(apis=(), expiry_months_choices=(1,), default_expiry_months=1)

    assert _field(schema.new_token, {"user": "a", "expires_in_months": True}, rules, NOW) == (
        "expires_in_months"
    )


def test_access_errors_name_the_nested_field() -> None:
    """An unknown API or a bad level is reported as access.<api>."""
    assert _field(schema.access_map, {"payroll": "read"}, RULES, "access") == "access.payroll"
    assert _field(schema.access_map, {"orders": "admin"}, RULES, "access") == "access.orders"


def test_access_accepts_admin_and_the_wildcard() -> None:
    """admin and * are valid keys next to the configured APIs."""
    access = {"admin": "read", "*": "none", "billing": "full"}

    assert schema.access_map(access, RULES, "access") == access


def test_patch_takes_only_the_fields_given() -> None:
    """A PATCH body of one field changes one field; role null removes the role."""
    assert schema.token_changes({"role": None}, RULES, NOW) == {"role": None}
    assert _field(schema.token_changes, {"expires_in_months": 3}, RULES, NOW) == (
        "expires_in_months"
    )


def test_a_username_is_given_once_when_the_user_is_made() -> None:
    """POST /users takes the username with the profile; a PATCH refuses it (it is the key)."""
    body = {"username": "Alice", "display_name": "A.", "email": "", "active": False}

    made = schema.new_user(body)

    assert made == body
    assert schema.user_changes({"active": True}) == {"active": True}
    assert _field(schema.user_changes, {"username": "bob"}) == "username"
    assert _field(schema.new_user, {"display_name": "A."}) == "username"


def test_bulk_ids_are_deduplicated_and_bounded() -> None:
    """Duplicates fold; an empty list or one above 1000 is refused."""
    assert schema.client_id_list({"client_ids": ["a", "b", "a"]}) == ["a", "b"]
    assert _field(schema.client_id_list, {"client_ids": []}) == "client_ids"
    assert _field(schema.client_id_list, {"client_ids": ["a"] * 1001}) == "client_ids"
    assert _field(schema.client_id_list, {"client_ids": ["a", 3]}) == "client_ids.1"


def test_role_names_are_checked() -> None:
    """A role name outside [a-z][a-z0-9_-]* is refused, naming name."""
    assert _field(schema.role_body, "Ops", {}, RULES) == "name"


def test_queries_parse_order_and_pages() -> None:
    """order, limit and offset are read; the defaults are -created_at, 50 and 0."""
    parsed = token_query({"order": "user,-created_at", "limit": "10", "offset": "5"}, frozenset())
    default = token_query({}, frozenset())

    assert parsed.order == (("user", False), ("created_at", True))
    assert (parsed.page.limit, parsed.page.offset) == (10, 5)
    assert default.order == (("created_at", True),)
    assert default.page.limit == 50


def test_user_and_audit_queries_check_their_values() -> None:
    """Users order on user columns; since must carry a time zone; limits are bounded."""
    assert _field(user_query, {"order": "client_id"}) == "order"
    assert _field(audit_query, {"since": "2026-01-01T00:00:00"}) == "since"
    assert audit_query({"since": "2026-01-01T00:00:00Z"}).since_ms == 1767225600000
    assert _field(audit_query, {"limit": "1001"}) == "limit"


def test_read_level_allows_gets_only() -> None:
    """read on admin allows GET and refuses POST; none refuses GET."""
    reader = Caller("c", "u", {"admin": "read"})
    nobody = Caller("c", "u", {"orders": "full"})

    require_admin(reader, "GET")
    with pytest.raises(Forbidden):
        require_admin(reader, "POST")
    with pytest.raises(Forbidden):
        require_admin(nobody, "GET")


def test_wildcard_full_is_full_admin() -> None:
    """A token with '*': full reaches every API, the admin API included (spec section 1)."""
    require_admin(Caller("c", "u", {"*": "full"}), "DELETE")


def test_self_service_grant_is_bounded_by_the_callers_levels() -> None:
    """Role access counts toward what the caller holds; none may always be granted."""
    caller = Caller("c", "u", {"orders": "read"}, role_access={"billing": "full"})

    check_own_grant(caller, {"orders": "read", "billing": "full", "admin": "none"})
    with pytest.raises(Forbidden) as caught:
        check_own_grant(caller, {"orders": "full"})

    assert caught.value.field == "access.orders"


def test_self_service_expiry_is_bounded_by_the_callers() -> None:
    """A later expiry asked for is refused naming its field; the default one is shortened."""
    caller = Caller("c", "u", expires_at=NOW)
    later = clock.add_months(NOW, 1)

    assert own_expiry(caller, later, asked_in=None) == NOW
    with pytest.raises(Forbidden) as caught:
        own_expiry(caller, later, asked_in="expires_at")

    assert caught.value.field == "expires_at"
