"""What the command line prints: aligned tables for people, the API's JSON for scripts.

Tables use the console's column names. On a terminal, timestamps are shown in
local time and statuses in colour (never with ``NO_COLOR`` set); piped, the
same table keeps the API's RFC 3339 UTC strings and no escape codes, so
``grep`` and ``awk`` see stable text. ``--json`` prints the admin API's body.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import click

STATUS_COLOURS = {"active": "green", "revoked": "red", "expired": "yellow"}
TIME_FIELDS = frozenset(
    {
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
        "regenerated_at",
        "grace_until",
        "at",
        "until",
        "last_old_use_at",
    }
)
#: Fields that must never reach a table: the secret parts are printed on their own.
SECRET_FIELDS = frozenset({"client_secret", "token"})

#: ``(column header, field)`` of each list, as the console names them.
TOKEN_COLUMNS = (
    ("Client ID", "client_id"),
    ("User", "user"),
    ("Description", "description"),
    ("Role", "role"),
    ("Status", "status"),
    ("Created", "created_at"),
    ("Expires", "expires_at"),
    ("Last access", "last_used_at"),
)
USER_COLUMNS = (
    ("Username", "username"),
    ("Display name", "display_name"),
    ("Email", "email"),
    ("Active", "active"),
    ("Created", "created_at"),
)
ROLE_COLUMNS = (("Name", "name"), ("Description", "description"), ("Access", "access"))
API_COLUMNS = (("Name", "name"), ("Prefix", "prefix"), ("Description", "description"))
HISTORY_COLUMNS = (("Time", "at"), ("Actor", "actor"), ("Action", "action"), ("Changes", "changes"))
AUDIT_COLUMNS = (
    ("Time", "at"),
    ("Actor", "actor"),
    ("Action", "action"),
    ("Kind", "kind"),
    ("Target", "target"),
    ("Changes", "changes"),
)
#: The clients of a grace period (``tokens show``), as the console's token page names them.
GRACE_CLIENT_COLUMNS = (
    ("Address", "address"),
    ("User agent", "user_agent"),
    ("Uses", "uses"),
    ("Last use", "last_used_at"),
)
#: Labels of a single record's fields; a field without one is shown by its name.
LABELS = {
    **{name: header for header, name in TOKEN_COLUMNS + USER_COLUMNS},
    "name": "Name",
    "access": "Access",
    "created_by": "Created by",
    "revoked_at": "Revoked",
    "revoked_by": "Revoked by",
    "regenerated_at": "Regenerated",
    "grace_until": "Old secret valid until",
    "propagation": "Propagation",
    "levels": "Levels",
    "until": "Old secret valid until",
    "old_secret_uses": "Old secret uses",
    "last_old_use_at": "Last old use",
}

Columns = Sequence[tuple[str, str]]


@dataclass(frozen=True)
class Output:
    json: bool = False
    terminal: bool = False
    colour: bool = False

    @classmethod
    def detect(cls, as_json: bool) -> Output:
        terminal = sys.stdout.isatty()
        return cls(as_json, terminal, terminal and not os.environ.get("NO_COLOR"))

    def body(self, payload: Any) -> None:
        """The admin API's JSON body, as it answered (nothing for a 204)."""
        if payload is not None:
            click.echo(json.dumps(payload, indent=2, ensure_ascii=False))

    def table(self, columns: Columns, items: Sequence[Mapping[str, Any]]) -> None:
        names = [name for _, name in columns]
        rows = [[self.cell(name, item.get(name)) for name in names] for item in items]
        headers = [header for header, _ in columns]
        widths = [max(len(text) for text in column) for column in zip(headers, *rows, strict=True)]
        click.echo(self._line(headers, widths, ["header"] * len(names)), color=self.colour)
        for row in rows:
            click.echo(self._line(row, widths, names), color=self.colour)

    def record(self, item: Mapping[str, Any]) -> None:
        """One record, a field per line in the API's order, under the console's names."""
        shown = [name for name in item if name not in SECRET_FIELDS]
        width = max((len(LABELS.get(n, n)) for n in shown), default=0)
        for name in shown:
            label = LABELS.get(name, name).ljust(width)
            value = self._paint(name, self.cell(name, item[name]))
            click.echo(f"{label}  {value}", color=self.colour)

    def note(self, text: str) -> None:
        click.echo(text, err=True)

    def cell(self, name: str, value: Any) -> str:
        if value is None:
            return "never" if name == "last_used_at" else "-"
        if name in TIME_FIELDS and isinstance(value, str):
            return self.when(value)
        return _plain(name, value)

    def when(self, value: str) -> str:
        if not self.terminal:
            return value
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
        return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")

    def _line(self, cells: Sequence[str], widths: Sequence[int], names: Sequence[str]) -> str:
        last = len(cells) - 1
        padded = [text if i == last else text.ljust(widths[i]) for i, text in enumerate(cells)]
        return "  ".join(self._paint(n, t) for n, t in zip(names, padded, strict=True)).rstrip()

    def _paint(self, name: str, text: str) -> str:
        """``text`` in the colour of its column: bold headers, a colour per status."""
        if not self.colour or name not in ("header", "status"):
            return text
        if name == "header":
            return click.style(text, bold=True)
        colour = STATUS_COLOURS.get(text.strip())
        return click.style(text, fg=colour) if colour else text


def _plain(name: str, value: Any) -> str:
    formatters: dict[str, Callable[[Any], str]] = {
        "access": _access,
        "changes": lambda changes: ", ".join(changes) if isinstance(changes, dict) else "",
        "levels": _access,
        "active": lambda active: "yes" if active else "no",
        "propagation": _propagation,
    }
    if name in formatters:
        return formatters[name](value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return " ".join(str(value).split())  # a newline in a description stays on its row


def _propagation(propagation: Any) -> str:
    """A change's ``propagation`` for people: "2 of 2 replicas, 0.4 ms"."""
    if not isinstance(propagation, dict):
        return str(propagation)
    if propagation.get("unknown"):
        return "applied; the replicas could not be asked"
    text = f"{propagation.get('acknowledged')} of {propagation.get('replicas')} replicas"
    if (slowest := propagation.get("slowest_ms")) is not None:
        text += f", {slowest} ms"
    if pending := propagation.get("pending"):
        text += f"; pending: {', '.join(map(str, pending))}"
    return text


def _access(access: Any) -> str:
    if not isinstance(access, dict) or not access:
        return "-"
    return ", ".join(f"{api}={level}" for api, level in access.items())
