"""The records of spec section 1 (users, roles, tokens) and their Redis encoding.

A record is a frozen dataclass; ``to_fields``/``from_fields`` map it to the
flat string hash Redis keeps (None is the empty string, maps are JSON).
``Token.public`` is the one JSON view of a token: it never carries a hash.
A token keeps its times as the RFC 3339 text it stores and shows (a
malformed one is for ``check`` to report, not a record that cannot load);
the moments its checks compare (``expires``, ``grace_ends``) are parsed once
per record, not on every use. Pure module.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from functools import cached_property
from typing import Any

from sidecar import clock

TOKEN_STATUSES = ("active", "revoked", "expired")
USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")
ROLE_NAME = re.compile(r"[a-z][a-z0-9_-]{0,62}")


def _opt(value: str | None) -> str:
    return "" if value is None else value


def _none(value: str | None) -> str | None:
    return value or None


@dataclass(frozen=True)
class User:
    username: str
    display_name: str = ""
    email: str = ""
    active: bool = True
    created_at: str = ""

    def to_fields(self) -> dict[str, str]:
        return {
            "username": self.username,
            "display_name": self.display_name,
            "email": self.email,
            "active": "1" if self.active else "0",
            "created_at": self.created_at,
        }

    @classmethod
    def from_fields(cls, raw: Mapping[str, str]) -> User:
        return cls(
            username=raw["username"],
            display_name=raw.get("display_name", ""),
            email=raw.get("email", ""),
            active=raw.get("active", "1") == "1",
            created_at=raw.get("created_at", ""),
        )

    def public(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "display_name": self.display_name,
            "email": self.email,
            "active": self.active,
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class Role:
    name: str
    description: str = ""
    access: Mapping[str, str] = field(default_factory=dict)

    def to_fields(self) -> dict[str, str]:
        return {
            "name": self.name,
            "description": self.description,
            "access": json.dumps(dict(self.access), sort_keys=True),
        }

    @classmethod
    def from_fields(cls, raw: Mapping[str, str]) -> Role:
        return cls(
            name=raw["name"],
            description=raw.get("description", ""),
            access=json.loads(raw.get("access") or "{}"),
        )

    def public(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "access": dict(self.access)}


@dataclass(frozen=True)
class Token:
    client_id: str
    user: str
    secret_hash: str
    created_at: str
    expires_at: str
    description: str = ""
    role: str | None = None
    access: Mapping[str, str] = field(default_factory=dict)
    revoked: bool = False
    created_by: str = ""
    last_used_at: str | None = None
    revoked_at: str | None = None
    revoked_by: str | None = None
    regenerated_at: str | None = None
    #: The secret replaced by the last regeneration, accepted until ``grace_until``.
    previous_hash: str | None = None
    grace_until: str | None = None
    #: When a leak report quarantined it (``leaks.action``); an admin's edit of its
    #: access or role releases it.
    quarantined_at: str | None = None

    def status(self, now: datetime) -> str:
        if self.revoked:
            return "revoked"
        if self.is_expired(now):
            return "expired"
        return "active"

    @cached_property
    def expires(self) -> datetime:
        """``expires_at`` as a moment, parsed on first use and kept (the record is frozen)."""
        return clock.from_rfc3339(self.expires_at)

    @cached_property
    def grace_ends(self) -> datetime | None:
        """``grace_until`` as a moment (None without a grace period), parsed once."""
        return clock.from_rfc3339(self.grace_until) if self.grace_until else None

    def is_expired(self, now: datetime) -> bool:
        return self.expires <= now

    def grace_hash(self, now: datetime) -> str | None:
        """The previous secret's hash, while its grace period lasts."""
        if self.previous_hash and self.grace_ends is not None and self.grace_ends > now:
            return self.previous_hash
        return None

    def with_changes(self, **changes: Any) -> Token:
        return replace(self, **changes)

    def to_fields(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "access":
                out[f.name] = json.dumps(dict(value), sort_keys=True)
            elif f.name == "revoked":
                out[f.name] = "1" if value else "0"
            else:
                out[f.name] = _opt(value)
        return out

    @classmethod
    def from_fields(cls, raw: Mapping[str, str]) -> Token:
        return cls(
            client_id=raw["client_id"],
            user=raw["user"],
            secret_hash=raw["secret_hash"],
            created_at=raw["created_at"],
            expires_at=raw["expires_at"],
            description=raw.get("description", ""),
            role=_none(raw.get("role")),
            access=json.loads(raw.get("access") or "{}"),
            revoked=raw.get("revoked") == "1",
            created_by=raw.get("created_by", ""),
            last_used_at=_none(raw.get("last_used_at")),
            revoked_at=_none(raw.get("revoked_at")),
            revoked_by=_none(raw.get("revoked_by")),
            regenerated_at=_none(raw.get("regenerated_at")),
            previous_hash=_none(raw.get("previous_hash")),
            grace_until=_none(raw.get("grace_until")),
            quarantined_at=_none(raw.get("quarantined_at")),
        )

    def public(self, now: datetime) -> dict[str, Any]:
        """The JSON view of spec section 1: never a hash, never a secret (and while a
        leak report keeps it quarantined, since when)."""
        quarantined = {"quarantined_at": self.quarantined_at} if self.quarantined_at else {}
        return {
            "client_id": self.client_id,
            "user": self.user,
            "description": self.description,
            "role": self.role,
            "access": dict(self.access),
            "status": self.status(now),
            "created_at": self.created_at,
            "created_by": self.created_by,
            "expires_at": self.expires_at,
            "last_used_at": self.last_used_at,
            "revoked_at": self.revoked_at,
            "revoked_by": self.revoked_by,
            "regenerated_at": self.regenerated_at,
            **quarantined,
        }
