"""``keystile replicas``: the live replicas and their lag, through the admin API (spec 10)."""

from __future__ import annotations

from admin.cli_common import Session, command

#: ``(column header, field)`` of ``GET /admin/v1/replicas``.
REPLICA_COLUMNS = (
    ("ID", "id"),
    ("Host", "host"),
    ("Version", "version"),
    ("Started", "started"),
    ("Generation", "generation"),
    ("Lag", "lag"),
    ("Seen", "seen_at"),
)


@command(None, "replicas", "List the live replicas: the generation each applied, its lag.",
         "keystile replicas",
         "keystile replicas --json | jq '.items[] | select(.lag > 0)'")  # fmt: skip
def replicas() -> None:
    session = Session.current()
    body = session.call("GET", "/replicas")
    session.show(body, lambda listed: session.output.table(REPLICA_COLUMNS, listed["items"]))
