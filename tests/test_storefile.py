"""Export and import (store.exportfile, store.wholestore): a store moved between databases."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from sidecar.records import Token
from sidecar.store.changes import Conflict
from sidecar.store.exportfile import FileProblem, export_lines, to_snapshot
from sidecar.store.invariants import Snapshot, find_problems
from sidecar.store.management import AdminStore
from sidecar.store.snapshot import read_snapshot
from sidecar.store.wholestore import NotEmpty, load
from tests.kits.redis import make_config, seed_token
from tests.kits.store import admin_store, lived_in

__all__ = ["admin_store"]  # a fixture, used by name


@pytest.fixture
async def other(redis_url: str) -> AsyncIterator[AdminStore]:
    """A second, empty database on the same server (flushed with the first)."""
    client = aioredis.Redis.from_url(redis_url.replace("/0", "/1"), decode_responses=True)
    yield AdminStore(client)
    await client.aclose()


def exported(snapshot: Snapshot) -> list[str]:
    return list(export_lines(snapshot, "2026-01-01T00:00:00Z"))


def without_generation(snapshot: Snapshot) -> dict[str, object]:
    return {k: v for k, v in dataclasses.asdict(snapshot).items() if k != "generation"}


async def test_an_import_holds_what_the_export_read(
    admin_store: AdminStore, other: AdminStore
) -> None:
    """Every record, index, history and audit entry arrives; the generation moves on."""
    await lived_in(admin_store)
    source = await read_snapshot(admin_store.redis)

    await load(other.redis, to_snapshot(exported(source)))

    moved = await read_snapshot(other.redis)
    assert without_generation(moved) == without_generation(source)
    assert find_problems(moved) == []
    assert int(moved.generation or 0) > int(source.generation or 0)


async def test_a_deleted_client_id_is_never_issued_again_after_a_move(
    admin_store: AdminStore, other: AdminStore
) -> None:
    """The issued-id records travel: the new store refuses a deleted token's client_id."""
    gone = await seed_token(admin_store, make_config())
    await admin_store.delete_tokens([gone.token.client_id], "t")
    await load(other.redis, to_snapshot(exported(await read_snapshot(admin_store.redis))))

    with pytest.raises(Conflict) as refused:
        await other.create_token(gone.token, "t")
    assert refused.value.field == "client_id"
    assert [e["action"] for e in await other.history(gone.token.client_id)] == [
        "created",
        "deleted",
    ]


async def test_the_export_holds_hashes_and_never_a_secret(admin_store: AdminStore) -> None:
    """The file carries the argon2 hash, not the client_secret shown once at creation."""
    issued = await seed_token(admin_store, make_config())

    text = "\n".join(exported(await read_snapshot(admin_store.redis)))

    assert issued.client_secret not in text
    assert issued.token.secret_hash in text


async def test_an_import_into_a_store_with_records_writes_nothing(
    admin_store: AdminStore, other: AdminStore
) -> None:
    """A store that holds anything is refused, and keeps exactly what it held."""
    await lived_in(admin_store)
    await seed_token(other, make_config(), user="zed")
    before = await read_snapshot(other.redis)

    with pytest.raises(NotEmpty, match="tokens 1"):
        await load(other.redis, to_snapshot(exported(await read_snapshot(admin_store.redis))))
    assert await read_snapshot(other.redis) == before


async def test_a_cut_off_file_is_refused(admin_store: AdminStore) -> None:
    """A file missing its last lines does not match its header's counts."""
    await lived_in(admin_store)
    lines = exported(await read_snapshot(admin_store.redis))

    with pytest.raises(FileProblem, match="incomplete"):
        to_snapshot(lines[:-1])


def test_a_file_that_is_no_export_is_refused() -> None:
    """Not JSON, no header, another format or audit ids out of order: each names its line."""
    header = json.dumps({
        "kind": "keystile-export", "format": 1, "generation": 0,
        "counts": {"user": 0, "role": 0, "token": 0, "issued": 0, "audit": 2},
    })  # fmt: skip
    audit = [json.dumps({"kind": "audit", "id": i, "entry": {}}) for i in ("5-0", "4-0")]
    cases = {
        "line 1: not JSON": ["{"],
        "line 1: not a Keystile export": ['{"kind": "user"}'],
        "line 1: format 2": [header.replace('"format": 1', '"format": 2')],
        "line 3: audit id 4-0 does not follow": [header, *audit],
    }
    for message, lines in cases.items():
        with pytest.raises(FileProblem, match=message):
            to_snapshot(lines)


def test_a_file_whose_token_names_a_missing_user_has_a_problem() -> None:
    """The invariants hold for a file as for a store: a token of no user is named."""
    token = Token("abc", "nobody", "$argon2id$h", "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z")
    source = Snapshot(tokens={"abc": token.to_fields()}, issued={"abc"})

    problems = find_problems(to_snapshot(exported(source)))

    assert [p.message for p in problems] == ["token abc: its user 'nobody' does not exist"]
