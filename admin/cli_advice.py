"""``keystile tokens usage`` and ``tokens advice``: least privilege from observed use.

Both print a table by default and, with ``--json``, the admin API's body as
it answered. ``advice --apply`` writes the proposal it just showed (sent as
``expected``, so a proposal that changed meanwhile is refused with nothing
changed) and, like ``delete``, asks first on a terminal and needs ``--yes``
without one.
"""

from __future__ import annotations

import json
from typing import Any

import click

from admin.cli_client import segment
from admin.cli_common import Session, command, confirm
from admin.cli_tokens import token_record, tokens

USAGE_COLUMNS = (("API", "api"), ("Safe", "safe"), ("Unsafe", "unsafe"), ("Last day", "last_day"))
ADVICE_COLUMNS = (("API", "api"), ("Safe", "safe"), ("Unsafe", "unsafe"), ("Change", "change"))

_DAYS = click.option(
    "--days", type=int, metavar="N", help="the window: N UTC days ending today (default 30)."
)


@command(tokens, "usage", "A token's uses per API: safe (GET, HEAD, OPTIONS) and unsafe.",
         "keystile tokens usage 3kT9yQ0bW2nLx8RfA1cVzD --days 7")  # fmt: skip
@click.argument("client_id")
@_DAYS
def token_usage(client_id: str, days: int | None) -> None:
    session = Session.current()
    path = f"/tokens/{segment(client_id)}/usage"
    body = session.call("GET", path, query={"days": days})
    session.show(body, lambda usage: _usage_table(session, usage))


def _usage_table(session: Session, usage: dict[str, Any]) -> None:
    click.echo(f"Uses from {usage['since']} to {usage['until']} (UTC days):")
    session.output.table(USAGE_COLUMNS, usage["items"])


@command(tokens, "advice", "The tightest access that allowed every use; --apply writes it.",
         "keystile tokens advice 3kT9yQ0bW2nLx8RfA1cVzD --days 30",
         "keystile tokens advice 3kT9yQ0bW2nLx8RfA1cVzD --apply --yes")  # fmt: skip
@click.argument("client_id")
@_DAYS
@click.option("--apply", "apply_it", is_flag=True, help="write the proposed access map.")
@click.option("--yes", "-y", is_flag=True, help="do not ask for confirmation (with --apply).")
def token_advice(client_id: str, days: int | None, apply_it: bool, yes: bool) -> None:
    session = Session.current()
    path = f"/tokens/{segment(client_id)}/advice"
    advice = session.call("GET", path, query={"days": days})
    if not apply_it:
        return session.show(advice, lambda shown: _advice_table(session, shown))
    if not session.output.json:
        _advice_table(session, advice)
    if not advice["changes"] and advice["proposed"] == advice["current"]:
        return session.show(advice, lambda _: click.echo("nothing to apply"))
    confirm(f"apply this access to token {client_id}", yes)
    body = {"expected": advice["proposed"], **({"days": days} if days is not None else {})}
    token_record(session, session.call("POST", f"{path}/apply", body))


def _advice_table(session: Session, advice: dict[str, Any]) -> None:
    changes = advice["changes"]
    rows = [
        {
            "api": api,
            **counts,
            "change": " -> ".join(changes[api]) if api in changes else "unchanged",
        }
        for api, counts in advice["uses"].items()
    ]
    click.echo(f"Uses since {advice['since']} ({advice['window_days']} UTC days):")
    session.output.table(ADVICE_COLUMNS, rows)
    click.echo(f"Access now:      {json.dumps(advice['current'])}")
    click.echo(f"Access proposed: {json.dumps(advice['proposed'])}")
    for note in advice["notes"]:
        click.echo(f"Note: {note}")
