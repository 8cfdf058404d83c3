"""The export file: a store's records as JSON lines, and back into a ``Snapshot``.

The first line is a header, ``{"kind": "keystile-export", "format": 1, ...}``,
with the count of every kind of line that follows, so a cut-off file is
refused rather than half loaded. Then one object per line, each with a
``kind``: ``user``, ``role`` and ``token`` carry the record's stored fields
as they are (a token's argon2 hashes included, never a secret: the store
holds none) and a token its ``history``; ``issued`` is a client_id issued
once and deleted since, with its history; ``audit`` is one entry of the
change log with its stream id. Indexes are not written: they follow from the
records, and ``to_snapshot`` rebuilds them, so a file loads into a
consistent store or is refused with the reason.

Pure module.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from sidecar.records import Token
from sidecar.store.invariants import Snapshot, created_ms, parse_tokens

HEADER = "keystile-export"
FORMAT = 1
KINDS = ("user", "role", "token", "issued", "audit")
STREAM_ID = re.compile(r"[0-9]+-[0-9]+")


class FileProblem(Exception):
    """The file cannot be loaded; the message names the line."""


def export_lines(snapshot: Snapshot, exported_at: str) -> Iterator[str]:
    """The file for ``snapshot``, one line at a time, header first."""
    body = list(_records(snapshot))
    counts = {kind: sum(1 for line in body if line["kind"] == kind) for kind in KINDS}
    header = {"kind": HEADER, "format": FORMAT, "exported_at": exported_at}
    generation = snapshot.generation or "0"
    header |= {"generation": int(generation) if generation.isdigit() else 0, "counts": counts}
    for line in (header, *body):
        yield json.dumps(line, ensure_ascii=False)


def _records(snapshot: Snapshot) -> Iterator[dict[str, Any]]:
    for _, raw in sorted(snapshot.users.items()):
        yield {"kind": "user", "record": raw}
    for _, raw in sorted(snapshot.roles.items()):
        yield {"kind": "role", "record": raw}
    for cid, raw in sorted(snapshot.tokens.items()):
        yield {"kind": "token", "record": raw, "history": _entries(snapshot, cid)}
    for cid in sorted((snapshot.issued | set(snapshot.histories)) - set(snapshot.tokens)):
        yield {"kind": "issued", "client_id": cid, "history": _entries(snapshot, cid)}
    for entry_id, fields in snapshot.audit:
        yield {"kind": "audit", "id": entry_id, "entry": _entry(fields.get("entry", ""))}


def _entries(snapshot: Snapshot, client_id: str) -> list[Any]:
    return [_entry(text) for text in snapshot.histories.get(client_id, [])]


def _entry(text: str) -> Any:
    # An unreadable entry travels as the string it is, so nothing is lost on the way.
    try:
        return json.loads(text)
    except ValueError:
        return text


def to_snapshot(lines: Iterable[str]) -> Snapshot:
    """The store a file describes, indexes rebuilt; ``FileProblem`` names a bad line."""
    numbered = ((n, line) for n, line in enumerate(lines, 1) if line.strip())
    first = next(numbered, None)
    if first is None:
        raise FileProblem("the file is empty")
    header = _header(_object(*first))
    snapshot = Snapshot(generation=str(header["generation"]))
    seen = dict.fromkeys(KINDS, 0)
    for number, line in numbered:
        item = _object(number, line)
        kind = item.get("kind")
        if kind not in seen:
            raise FileProblem(f"line {number}: unknown kind {kind!r}")
        seen[kind] += 1
        _add(snapshot, number, item)
    if seen != header["counts"]:
        raise FileProblem(
            f"the file is incomplete: the header counts {header['counts']}, found {seen}"
        )
    _index(snapshot)
    return snapshot


def _object(number: int, line: str) -> dict[str, Any]:
    try:
        item = json.loads(line)
    except ValueError:
        raise FileProblem(f"line {number}: not JSON") from None
    if not isinstance(item, dict):
        raise FileProblem(f"line {number}: not a JSON object")
    return item


def _header(item: dict[str, Any]) -> dict[str, Any]:
    if item.get("kind") != HEADER:
        raise FileProblem(f"line 1: not a Keystile export (no {HEADER!r} header)")
    if item.get("format") != FORMAT:
        raise FileProblem(f"line 1: format {item.get('format')!r}; this version reads {FORMAT}")
    counts, generation = item.get("counts"), item.get("generation")
    if not isinstance(counts, dict) or set(counts) != set(KINDS):
        raise FileProblem(f"line 1: counts must name {', '.join(KINDS)}")
    if not isinstance(generation, int) or generation < 0:
        raise FileProblem("line 1: generation must be a count")
    return item


def _add(snapshot: Snapshot, number: int, item: dict[str, Any]) -> None:
    kind = item["kind"]
    if kind == "audit":
        _add_audit(snapshot, number, item)
        return
    if kind == "issued":
        name = _text(number, item, "client_id")
        target: dict[str, Any] = {}
    else:
        record = _fields(number, item)
        field = {"user": "username", "role": "name", "token": "client_id"}[kind]
        name = _text(number, record, field)
        name = name.lower() if kind == "user" else name
        target = {"user": snapshot.users, "role": snapshot.roles, "token": snapshot.tokens}[kind]
        if name in target:
            raise FileProblem(f"line {number}: a second {kind} {name!r}")
        target[name] = record
    if kind in ("token", "issued"):
        if name in snapshot.issued:
            raise FileProblem(f"line {number}: client_id {name!r} appears twice")
        snapshot.issued.add(name)
        _add_history(snapshot, number, name, item.get("history", []))


def _add_history(snapshot: Snapshot, number: int, client_id: str, history: Any) -> None:
    if not isinstance(history, list):
        raise FileProblem(f"line {number}: history must be a list")
    if history:
        snapshot.histories[client_id] = [
            entry if isinstance(entry, str) else json.dumps(entry) for entry in history
        ]


def _add_audit(snapshot: Snapshot, number: int, item: dict[str, Any]) -> None:
    entry_id = _text(number, item, "id")
    # XADD refuses an id that does not grow, and a refusal inside EXEC would
    # leave the rest applied: so a file's ids are checked before anything is sent.
    if not STREAM_ID.fullmatch(entry_id) or entry_id == "0-0":
        raise FileProblem(f"line {number}: {entry_id!r} is not a stream id")
    if snapshot.audit and _stream_order(entry_id) <= _stream_order(snapshot.audit[-1][0]):
        raise FileProblem(f"line {number}: audit id {entry_id} does not follow the one before")
    entry = item.get("entry")
    snapshot.audit.append(
        (entry_id, {"entry": entry if isinstance(entry, str) else json.dumps(entry)})
    )


def _stream_order(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq)


def _fields(number: int, item: dict[str, Any]) -> dict[str, str]:
    record = item.get("record")
    if not isinstance(record, dict) or not record:
        raise FileProblem(f"line {number}: record must be a non-empty object")
    if not all(isinstance(value, str) for value in record.values()):
        raise FileProblem(f"line {number}: every field of a record is a string")
    return record


def _text(number: int, item: dict[str, Any], name: str) -> str:
    value = item.get(name)
    if not isinstance(value, str) or not value:
        raise FileProblem(f"line {number}: {name} must be a non-empty string")
    return value


def _index(snapshot: Snapshot) -> None:
    """The indexes the records imply: the store a clean load leaves behind."""
    for name, raw in snapshot.users.items():
        snapshot.user_index[name] = created_ms(raw.get("created_at", ""))
    snapshot.role_index = set(snapshot.roles)
    for cid, token in parse_tokens(snapshot).items():
        if not isinstance(token, Token):
            continue  # find_problems names it
        snapshot.token_index[cid] = created_ms(token.created_at)
        snapshot.user_tokens.setdefault(token.user.lower(), set()).add(cid)
        if token.role:
            snapshot.role_tokens.setdefault(token.role, set()).add(cid)
