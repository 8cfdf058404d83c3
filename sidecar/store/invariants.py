"""The invariants of the Redis data model, checked on a snapshot of the store.

A ``Snapshot`` is every Keystile key as read, grouped by what it holds.
``find_problems`` names each broken invariant in one line, and for those a
repair cannot make worse, the Redis commands that fix it: adding a missing
index entry, dropping an index entry that points at nothing. A repair never
deletes or rewrites a user, role or token record, never deletes a history,
and only ever adds to the set of issued client_ids (so no id is issued twice).

The invariants (docs/store.md lists them for operators):

- every token record parses (its required fields, JSON access map, RFC 3339
  times) and names itself; it is in ``tokens``, in ``issued``, in its user's
  set and, with a role, in its role's set; its user and its role exist;
- every member of ``tokens``, of a user's and of a role's token set is a
  token record that belongs there;
- every history belongs to an issued client_id, and holds JSON entries;
- every user record parses, sits under its lowercased name and is in
  ``users``, and the reverse; likewise every role record and ``roles``;
- every audit entry is JSON, and the generation counter is an integer;
- every key has the Redis type its name promises.

Pure module: the snapshot comes from ``sidecar.store.snapshot``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from sidecar import clock
from sidecar.records import Role, Token, User
from sidecar.store import keys

#: One Redis command, as ``execute_command`` takes it.
Command = tuple[str | float, ...]


@dataclass
class Snapshot:
    """Every Keystile key of one store, keyed by the name its key carries."""

    generation: str | None = None
    tokens: dict[str, dict[str, str]] = field(default_factory=dict)
    token_index: dict[str, float] = field(default_factory=dict)
    issued: set[str] = field(default_factory=set)
    histories: dict[str, list[str]] = field(default_factory=dict)
    users: dict[str, dict[str, str]] = field(default_factory=dict)
    user_index: dict[str, float] = field(default_factory=dict)
    user_tokens: dict[str, set[str]] = field(default_factory=dict)
    roles: dict[str, dict[str, str]] = field(default_factory=dict)
    role_index: set[str] = field(default_factory=set)
    role_tokens: dict[str, set[str]] = field(default_factory=dict)
    audit: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    #: Keys whose Redis type is not the one their name promises: key -> type found.
    mistyped: dict[str, str] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """How many of each kind of record the store holds, as an operator reads them."""
        return {
            "users": len(self.users),
            "roles": len(self.roles),
            "tokens": len(self.tokens),
            "issued client_ids": len(self.issued),
            "audit entries": len(self.audit),
        }

    def is_empty(self) -> bool:
        """No record, index, history or audit entry: a store nothing was written to."""
        held = (self.tokens, self.token_index, self.issued, self.histories, self.users)
        more = (self.user_index, self.user_tokens, self.roles, self.role_index, self.role_tokens)
        return not any((*held, *more, self.audit, self.mistyped))


@dataclass(frozen=True)
class Problem:
    """One broken invariant; ``repair`` is empty when no repair is safe."""

    message: str
    repair: tuple[Command, ...] = ()
    #: What the repair does, in words, for the operator.
    fix: str = ""


def find_problems(snapshot: Snapshot) -> list[Problem]:
    """Every broken invariant of ``snapshot``, one ``Problem`` each, in a stable order."""
    parsed = parse_tokens(snapshot)
    return [
        *(Problem(f"{key} is a {found}, not the type its name promises") for key, found in
          sorted(snapshot.mistyped.items())),
        *_token_problems(snapshot, parsed),
        *_token_set_problems(snapshot, parsed),
        *_history_problems(snapshot),
        *_user_problems(snapshot),
        *_role_problems(snapshot),
        *_audit_problems(snapshot),
    ]  # fmt: skip


def parse_token(client_id: str, raw: Mapping[str, str]) -> Token | str:
    """The token, or why its record cannot be read."""
    try:
        token = Token.from_fields(raw)
        for moment in (token.created_at, token.expires_at):
            clock.from_rfc3339(moment)
    except KeyError as exc:
        return f"token {client_id}: the record lacks the field {exc.args[0]!r}"
    except (ValueError, TypeError, AttributeError) as exc:
        return f"token {client_id}: the record cannot be read ({exc})"
    if not isinstance(token.access, dict):
        return f"token {client_id}: its access is not a map"
    if token.client_id != client_id:
        return f"token {client_id}: the record names another client_id, {token.client_id!r}"
    return token


def parse_tokens(snapshot: Snapshot) -> dict[str, Token | str]:
    return {cid: parse_token(cid, raw) for cid, raw in sorted(snapshot.tokens.items())}


def created_ms(created_at: str) -> int:
    """The score an index keeps for a record made at ``created_at``; 0 when unreadable."""
    try:
        return int(clock.from_rfc3339(created_at).timestamp() * 1000)
    except ValueError:
        return 0


def _token_problems(snapshot: Snapshot, parsed: Mapping[str, Token | str]) -> Iterator[Problem]:
    for token in parsed.values():
        if isinstance(token, str):
            yield Problem(token)
            continue
        yield from _token_indexes(snapshot, token)
        yield from _token_owners(snapshot, token)


def _token_indexes(snapshot: Snapshot, token: Token) -> Iterator[Problem]:
    cid, score = token.client_id, created_ms(token.created_at)
    if snapshot.token_index.get(cid) != score:
        where = "is missing from" if cid not in snapshot.token_index else "has a wrong score in"
        yield Problem(
            f"token {cid} {where} {keys.TOKENS}",
            (("ZADD", keys.TOKENS, score, cid),),
            f"indexed {cid} in {keys.TOKENS}",
        )
    if cid not in snapshot.issued:
        yield _issue(cid, f"token {cid} is missing from {keys.ISSUED_IDS}")


def _token_owners(snapshot: Snapshot, token: Token) -> Iterator[Problem]:
    cid, owner = token.client_id, token.user.lower()
    if owner not in snapshot.users:
        yield Problem(f"token {cid}: its user {token.user!r} does not exist")
    if cid not in snapshot.user_tokens.get(owner, set()):
        key = keys.user_tokens(owner)
        yield Problem(
            f"token {cid} is missing from {key}", (("SADD", key, cid),), f"added {cid} to {key}"
        )
    if not token.role:
        return
    if token.role not in snapshot.roles:
        yield Problem(f"token {cid}: its role {token.role!r} does not exist")
    if cid not in snapshot.role_tokens.get(token.role, set()):
        key = keys.role_tokens(token.role)
        yield Problem(
            f"token {cid} is missing from {key}", (("SADD", key, cid),), f"added {cid} to {key}"
        )


def _token_set_problems(snapshot: Snapshot, parsed: Mapping[str, Token | str]) -> Iterator[Problem]:
    """Index entries that point at no token, or at a token that belongs elsewhere."""
    for cid in sorted(set(snapshot.token_index) - set(snapshot.tokens)):
        repair: list[Command] = [("ZREM", keys.TOKENS, cid)]
        if cid not in snapshot.issued:  # it was issued once: keep it from being issued again
            repair.append(("SADD", keys.ISSUED_IDS, cid))
        yield Problem(
            f"{keys.TOKENS} lists {cid}, which has no token record",
            tuple(repair),
            f"removed {cid} from {keys.TOKENS}",
        )
    # A member whose record cannot be read stays: where it belongs is unknown.
    for owner, members in sorted(snapshot.user_tokens.items()):
        stray = [c for c in members if _owner(parsed.get(c), owner) != owner]
        yield from _strays(keys.user_tokens(owner), stray)
    for role, members in sorted(snapshot.role_tokens.items()):
        stray = [c for c in members if _role(parsed.get(c), role) != role]
        yield from _strays(keys.role_tokens(role), stray)


def _owner(token: Token | str | None, unreadable: str) -> str | None:
    if isinstance(token, str):
        return unreadable
    return token.user.lower() if token is not None else None


def _role(token: Token | str | None, unreadable: str) -> str | None:
    if isinstance(token, str):
        return unreadable
    return token.role if token is not None else None


def _strays(key: str, stray: list[str]) -> Iterator[Problem]:
    for cid in sorted(stray):
        yield Problem(
            f"{key} lists {cid}, which is not a token of it",
            (("SREM", key, cid),),
            f"removed {cid} from {key}",
        )


def _issue(cid: str, message: str) -> Problem:
    return Problem(message, (("SADD", keys.ISSUED_IDS, cid),), f"added {cid} to {keys.ISSUED_IDS}")


def _history_problems(snapshot: Snapshot) -> Iterator[Problem]:
    for cid, entries in sorted(snapshot.histories.items()):
        if cid not in snapshot.issued and cid not in snapshot.tokens:
            yield _issue(cid, f"the history of {cid} has no issued client_id")
        unreadable = sum(not _is_object(entry) for entry in entries)
        if unreadable:
            yield Problem(f"the history of {cid} has {unreadable} unreadable entries")


def _is_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def _user_problems(snapshot: Snapshot) -> Iterator[Problem]:
    for name, raw in sorted(snapshot.users.items()):
        try:
            user = User.from_fields(raw)
        except KeyError as exc:
            yield Problem(f"user {name}: the record lacks the field {exc.args[0]!r}")
            continue
        if user.username.lower() != name:
            yield Problem(f"user {name}: the record names another user, {user.username!r}")
        elif name not in snapshot.user_index:
            score = created_ms(user.created_at)
            yield Problem(
                f"user {name} is missing from {keys.USERS}",
                (("ZADD", keys.USERS, score, name),),
                f"added {name} to {keys.USERS}",
            )
    for name in sorted(set(snapshot.user_index) - set(snapshot.users)):
        yield Problem(
            f"{keys.USERS} lists {name}, which has no user record",
            (("ZREM", keys.USERS, name),),
            f"removed {name} from {keys.USERS}",
        )


def _role_problems(snapshot: Snapshot) -> Iterator[Problem]:
    for name, raw in sorted(snapshot.roles.items()):
        try:
            role = Role.from_fields(raw)
        except (KeyError, ValueError) as exc:
            yield Problem(f"role {name}: the record cannot be read ({exc})")
            continue
        if role.name != name:
            yield Problem(f"role {name}: the record names another role, {role.name!r}")
        elif name not in snapshot.role_index:
            yield Problem(
                f"role {name} is missing from {keys.ROLES}",
                (("SADD", keys.ROLES, name),),
                f"added {name} to {keys.ROLES}",
            )
    for name in sorted(snapshot.role_index - set(snapshot.roles)):
        yield Problem(
            f"{keys.ROLES} lists {name}, which has no role record",
            (("SREM", keys.ROLES, name),),
            f"removed {name} from {keys.ROLES}",
        )


def _audit_problems(snapshot: Snapshot) -> Iterator[Problem]:
    unreadable = [i for i, fields in snapshot.audit if not _is_object(fields.get("entry", ""))]
    if unreadable:
        yield Problem(
            f"{keys.AUDIT} has {len(unreadable)} unreadable entries, first {unreadable[0]}"
        )
    if snapshot.generation is not None and not snapshot.generation.isdigit():
        yield Problem(f"{keys.GENERATION} is not a count: {snapshot.generation!r}")
