"""The admin API's request schemas fed arbitrary JSON: a checked value or a 400 naming a field.

Property tests over the pure validation layer (admin/schema.py, admin/queries.py):
each field of each body, and each query parameter, gets any value a JSON
decoder can produce (huge integers, floats including the infinity that ``1e400``
decodes to, lone surrogates from ``\\ud800`` escapes, nested lists and objects)
and the near misses of a valid value (``6.0`` for ``6``, ``"6"``, a digit run
longer than Python's int-string limit). Whatever comes back must be something
the store can hold; anything but ``BadRequest`` with a field is a 500 waiting
for a user. The real app's answer to the same inputs is pinned by the test at
the end, through real sockets.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from admin import queries, schema
from admin.errors import BadRequest
from sidecar import clock
from tests.kits.admin import Harness, harness

NOW = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
RULES = schema.Rules(apis=("orders", "billing"))
CHECKED = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)

# -- what a JSON decoder can hand the schema ------------------------------------

#: Any text, lone surrogates included (hypothesis leaves them out unless asked).
TEXT = st.text(st.characters() | st.characters(categories=["Cs"]), max_size=20)
NUMBER = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=False),  # json.loads never makes NaN, but 1e400 is infinity
)
SCALAR = st.one_of(st.none(), st.booleans(), NUMBER, TEXT)
JSON = st.recursive(
    SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)


def _near_misses(valid: Any) -> st.SearchStrategy[Any]:
    """What a client sends when it almost gets a valid value right."""
    misses: list[Any] = [str(valid), [valid], {"value": valid}]
    if isinstance(valid, bool):
        misses = [int(valid), str(valid).lower()]
    elif isinstance(valid, int):
        misses = [float(valid), valid + 0.5, str(valid), True, valid * 10**30, -valid]
    elif isinstance(valid, str):
        misses += [valid + "\ud800", valid * 300, valid.upper(), " " + valid, valid[:-1]]
    return st.sampled_from(misses)


def field(*valid: Any) -> st.SearchStrategy[Any]:
    """A value for one field: a valid one, a near miss of one, or any JSON at all."""
    examples = st.sampled_from(valid)
    return st.one_of(examples, examples.flatmap(_near_misses), JSON)


def _timestamps() -> st.SearchStrategy[str]:
    moments = st.datetimes(min_value=datetime(1, 1, 2), timezones=st.sampled_from([UTC, None])).map(
        lambda moment: moment.isoformat()
    )
    return moments | st.sampled_from(["2030-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z"])


TIMESTAMP = st.one_of(field("2030-01-01T00:00:00Z"), _timestamps())
ACCESS = field({"orders": "read"}, {"*": "full", "admin": "none"}, {})
TOKEN = {
    "user": field("alice", "a.b@c"),
    "description": field("", "for the nightly job"),
    "role": field(None, "ops"),
    "access": ACCESS,
    "expires_in_months": field(3, 6, 12),
    "expires_at": TIMESTAMP,
}
OWN_TOKEN = {name: TOKEN[name] for name in ("description", "access", "expires_in_months")}
REGENERATE = {
    "expires_in_months": TOKEN["expires_in_months"],
    "expires_at": TIMESTAMP,
    "grace_seconds": field(0, 60, 86400),
}
PROFILE = {
    "display_name": field("Alice"),
    "email": field("", "a@example.org"),
    "active": field(True, False),
}
IDS = field(["A" * 22], ["A" * 22, "B" * 22])


@dataclasses.dataclass(frozen=True)
class Request:
    """One request body: its validation, a valid body, and a strategy for each field."""

    validate: Callable[[dict[str, Any]], Any]
    valid: dict[str, Any]
    fields: Mapping[str, st.SearchStrategy[Any]]


BODIES = {
    "POST /tokens": Request(lambda b: schema.new_token(b, RULES, NOW), {"user": "alice"}, TOKEN),
    "POST /me/tokens": Request(
        lambda b: schema.new_own_token(b, RULES, NOW, "alice"), {}, OWN_TOKEN
    ),
    "PATCH /tokens/{id}": Request(lambda b: schema.token_changes(b, RULES, NOW), {}, TOKEN),
    "POST /tokens/{id}/regenerate": Request(
        lambda b: schema.regeneration(b, RULES, NOW), {}, REGENERATE
    ),
    "POST /users": Request(
        schema.new_user, {"username": "alice"}, {"username": field("alice"), **PROFILE}
    ),
    "PATCH /users/{name}": Request(schema.user_changes, {}, PROFILE),
    "PUT /roles/{name}": Request(
        lambda b: schema.role_body("ops", b, RULES),
        {},
        {"description": field("readers"), "access": ACCESS},
    ),
    "POST /tokens/bulk-delete": Request(
        schema.client_id_list, {"client_ids": ["A" * 22]}, {"client_ids": IDS}
    ),
    "POST /tokens/bulk-revoke": Request(
        schema.bulk_revoke_target, {"user": "alice"}, {"client_ids": IDS, "user": field("alice")}
    ),
    "POST /tokens/{id}/revoke": Request(lambda b: schema.known(b, set()), {}, {}),
}
FIELDS = [(name, f) for name, request in BODIES.items() for f in request.fields]


# -- what may come back --------------------------------------------------------


def _storable(value: Any) -> None:
    """Text the store writes as UTF-8, and moments it can format and add a grace to."""
    if isinstance(value, str):
        value.encode("utf-8")
    elif isinstance(value, datetime):
        assert value > NOW
        clock.to_rfc3339(value)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for item in dataclasses.fields(value):
            _storable(getattr(value, item.name))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _storable(key)
            _storable(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _storable(item)


def outcome(validate: Callable[[], Any]) -> Any:
    """The checked value, or None for a 400 that names its field; anything else fails."""
    value: Any = None
    refused: BadRequest | None = None
    try:
        value = validate()
    except BadRequest as refusal:
        refused = refusal
    if refused is not None:
        # An empty key is named by its empty name, "field": "".
        assert refused.field is not None, f"a 400 without a field: {refused.reason}"
        return None
    _storable(value)
    if isinstance(value, schema.Regeneration):
        assert NOW + timedelta(seconds=value.grace_seconds) >= NOW
    return value


@pytest.mark.parametrize(("request_name", "name"), FIELDS)
@CHECKED
@given(data=st.data())
def test_each_body_field_given_any_json_is_checked_or_a_400_naming_a_field(
    request_name: str, name: str, data: st.DataObject
) -> None:
    """One field of a valid body set to any JSON value: storable values, or a 400 with a field."""
    request = BODIES[request_name]
    sent = {**request.valid, name: data.draw(request.fields[name], label=name)}

    outcome(lambda: request.validate(sent))


@pytest.mark.parametrize("request_name", list(BODIES))
@CHECKED
@given(data=st.data())
def test_any_mix_of_fields_is_checked_or_a_400_naming_a_field(
    request_name: str, data: st.DataObject
) -> None:
    """Any subset of a body's fields, maybe with a stranger, validates or is a 400 with a field."""
    request = BODIES[request_name]
    known = st.fixed_dictionaries({}, optional=dict(request.fields))
    stranger = st.dictionaries(TEXT, JSON, max_size=1)
    sent = {**data.draw(stranger, label="stranger"), **data.draw(known, label="body")}

    outcome(lambda: request.validate(sent))


@CHECKED
@given(name=TEXT, sent=st.fixed_dictionaries({}, optional={"description": field("readers")}))
def test_any_role_name_is_checked_or_a_400_naming_it(name: str, sent: dict[str, Any]) -> None:
    """PUT /roles/{name} with any name in the path validates or is a 400 naming name."""
    outcome(lambda: schema.role_body(name, sent, RULES))


#: A query value: text, or a run of digits up to what a 64 KiB request line holds.
QUERY_VALUE = st.one_of(
    TEXT,
    st.integers().map(str),
    st.builds(lambda digit, n: digit * n, st.sampled_from("0159"), st.integers(1, 20_000)),
)
#: Each list's parser and the parameters it reads (others are ignored, as spec section 4 says).
QUERIES: dict[str, tuple[Callable[[dict[str, str]], Any], tuple[str, ...]]] = {
    "GET /tokens": (
        lambda q: queries.token_query(q, frozenset({"orders", "admin"})),
        ("q", "user", "status", "role", "api", "order", "limit", "offset"),
    ),
    "GET /users": (queries.user_query, ("q", "order", "limit", "offset")),
    "GET /audit": (queries.audit_query, ("since", "limit")),
}
PARAMETERS = [(name, p) for name, (_, read) in QUERIES.items() for p in read]


@pytest.mark.parametrize(("request_name", "parameter"), PARAMETERS)
@CHECKED
@given(value=QUERY_VALUE)
def test_each_query_parameter_given_any_text_is_parsed_or_a_400_naming_it(
    request_name: str, parameter: str, value: str
) -> None:
    """Each parameter, given any text (digit runs past 4,300 included), parses or is a 400."""
    parse, _ = QUERIES[request_name]
    parsed = outcome(lambda: parse({parameter: value}))

    page = getattr(parsed, "page", parsed)
    if page is not None:
        assert 1 <= page.limit <= queries.MAX_LIMIT


# -- the same inputs through the real app --------------------------------------


@pytest.fixture
async def admin(redis_url: str) -> AsyncIterator[Harness]:
    async with harness(redis_url) as running:
        await running.user("alice")
        yield running


async def test_a_whole_float_is_a_number_of_months_and_a_fraction_is_refused(
    admin: Harness,
) -> None:
    """6.0 months is 6 (3.0 on /me/tokens is 3), also on regenerate; 6.5 is a 400 naming it."""
    made = await admin.call("POST", "/tokens", json={"user": "alice", "expires_in_months": 6.0})
    own = await admin.call("POST", "/me/tokens", json={"expires_in_months": 3.0})
    client_id = made.body["client_id"]
    again = await admin.call(
        "POST", f"/tokens/{client_id}/regenerate", json={"expires_in_months": 6.0}
    )
    half = await admin.call("POST", "/tokens", json={"user": "alice", "expires_in_months": 6.5})

    assert (made.status, own.status, again.status) == (201, 201, 200)
    assert made.body["expires_at"] == clock.to_rfc3339(
        clock.add_months(clock.from_rfc3339(made.body["created_at"]), 6)
    )
    assert (half.status, half.body["field"]) == (400, "expires_in_months")


@pytest.mark.parametrize("path", ["/tokens", "/me/tokens", "/users", "/audit"])
@pytest.mark.parametrize("parameter", ["limit", "offset"])
async def test_a_page_number_of_5000_digits_is_a_400_naming_it(
    admin: Harness, path: str, parameter: str
) -> None:
    """?limit= or ?offset= past Python's 4,300-digit limit is a 400, never a 500."""
    reply = await admin.call("GET", f"{path}?{parameter}={'1' * 5000}")

    if path == "/audit" and parameter == "offset":
        assert reply.status == 200  # the audit log takes no offset: ignored, as any unknown one
    else:
        assert (reply.status, reply.body["field"]) == (400, parameter)


async def test_a_lone_surrogate_in_stored_text_is_a_400_naming_the_field(admin: Harness) -> None:
    """A \\ud800 escape in a description, a display name or a client id is refused, not a 500."""
    sent = [
        ("POST", "/tokens", '{"user": "alice", "description": "x\\ud800"}', "description"),
        ("POST", "/users", '{"username": "bob", "display_name": "\\udfff"}', "display_name"),
        ("PUT", "/roles/ops", '{"description": "\\ud800"}', "description"),
        ("POST", "/tokens/bulk-delete", '{"client_ids": ["\\ud800"]}', "client_ids.0"),
    ]
    json_type = {"Content-Type": "application/json"}
    for method, path, raw, name in sent:
        reply = await admin.call(method, path, data=raw, headers=json_type)
        assert (reply.status, reply.body.get("field")) == (400, name), (path, reply.body)


@pytest.mark.parametrize("parameter", ["user", "role"])
def test_a_lone_surrogate_in_a_text_parameter_is_a_400_naming_it(parameter: str) -> None:
    """``user`` and ``role`` given text no store can encode are refused, the parameter named."""
    with pytest.raises(BadRequest) as refused:
        queries.token_query({parameter: "\ud800"}, frozenset())

    assert refused.value.field == parameter
