"""What a store write records, and how a write's precondition fails.

A ``Change`` is one entry of a token's history and of the global audit;
``diff`` and ``gone`` build its field changes. ``Missing`` and ``Conflict``
are the failed preconditions every writer raises (``admin/storeerrors.py``
turns them into 404 and 409 bodies). Pure module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Fields that never appear in history or audit entries.
SECRET_FIELDS = frozenset({"secret_hash", "previous_hash"})


class Conflict(Exception):
    """A write's precondition failed (exists already, missing, in use)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class Missing(Exception):
    """The record a write or read targets does not exist."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.target = target


@dataclass(frozen=True)
class Change:
    """One recorded change: goes to the token's history and the global audit."""

    actor: str
    action: str
    kind: str  # "token", "user" or "role"
    target: str
    changes: Mapping[str, tuple[Any, Any]]

    def entry(self, at: str) -> dict[str, Any]:
        return {
            "at": at,
            "actor": self.actor,
            "action": self.action,
            "kind": self.kind,
            "target": self.target,
            "changes": {k: list(v) for k, v in self.changes.items() if k not in SECRET_FIELDS},
        }


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{field: (old, new)}`` for every field whose value differs."""
    return {k: (old.get(k), v) for k, v in new.items() if old.get(k) != v}


def gone(record: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The changes of a deletion: every field from its value to null."""
    return {name: (value, None) for name, value in record.items()}
