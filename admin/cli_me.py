"""``keystile me``: self-service for any valid token, on its own user's tokens only.

A token made here gets at most the calling token's level on each API, no role
and no later expiry than the calling token's; the admin API enforces it.
"""

from __future__ import annotations

from typing import Any

import click

from admin.cli_client import segment
from admin.cli_common import (
    Session,
    access_map,
    command,
    confirm,
    connection_options,
    group,
    page_through,
    paged_table,
    print_issued,
    quiet_option,
)
from admin.cli_output import TOKEN_COLUMNS
from admin.cli_tokens import expiry, expiry_options, list_options, token_query, token_record

ME_HELP = """Who the credential is: its user, its token and its level on each API.

\b
Examples:
  keystile me
  keystile me tokens list"""


@click.group("me", invoke_without_command=True, help=ME_HELP, short_help="Your own tokens.")
@click.pass_context
def me(ctx: click.Context) -> None:
    if ctx.invoked_subcommand is not None:
        return
    session = Session.current()
    session.show(session.call("GET", "/me"), lambda body: session.output.record(_flat(body)))


me.params.extend(connection_options())


def _flat(body: dict[str, Any]) -> dict[str, Any]:
    user, token = body["user"], body["token"]
    shown = ("client_id", "description", "status", "created_at", "expires_at", "last_used_at")
    return {
        "username": user["username"],
        "display_name": user["display_name"],
        **{name: token[name] for name in shown},
        "levels": body["levels"],
    }


OWN_HELP = """List, create, revoke and delete your own tokens, and end their grace.

\b
Examples:
  keystile me tokens list
  keystile me tokens create --access orders=read --quiet"""
own = group("tokens", OWN_HELP)
me.add_command(own)


@command(own, "list", "List your own tokens.", "keystile me tokens list --status active")
@list_options
def list_own(every: bool, **filters: Any) -> None:
    session = Session.current()
    body = page_through(session, "/me/tokens", token_query(**filters), every)
    session.show(body, lambda page: paged_table(session, TOKEN_COLUMNS, page))


@command(own, "create", "Create a token of your own (at most your own access) and print it once.",
         "keystile me tokens create --access orders=read --description laptop --quiet")  # fmt: skip
@click.option("--description", metavar="TEXT", help="what the token is for.")
@click.option("--access", multiple=True, metavar="API=LEVEL", help="none, read or full; repeats.")
@expiry_options
@quiet_option
def create_own(
    description: str | None,
    access: tuple[str, ...],
    months: int | None,
    expires_at: str | None,
    quiet: bool,
) -> None:
    body: dict[str, Any] = expiry(months, expires_at)
    if description is not None:
        body["description"] = description
    if access:
        body["access"] = access_map(access)
    session = Session.current()
    print_issued(session, session.call("POST", "/me/tokens", body), quiet)


@command(own, "revoke", "Revoke tokens of your own for good.",
         "keystile me tokens revoke 3kT9yQ0bW2nLx8RfA1cVzD")  # fmt: skip
@click.argument("client_ids", nargs=-1, required=True, metavar="ID...")
def revoke_own(client_ids: tuple[str, ...]) -> None:
    session = Session.current()
    # The self-service API revokes one token per call; a failure stops at that token.
    for client_id in client_ids:
        token_record(session, session.call("POST", f"/me/tokens/{segment(client_id)}/revoke"))


@command(own, "delete", "Delete tokens of your own for good.",
         "keystile me tokens delete 3kT9yQ0bW2nLx8RfA1cVzD --yes")  # fmt: skip
@click.argument("client_ids", nargs=-1, required=True, metavar="ID...")
@click.option("--yes", "-y", is_flag=True, help="do not ask for confirmation.")
def delete_own(client_ids: tuple[str, ...], yes: bool) -> None:
    session = Session.current()
    confirm(f"delete {len(client_ids)} of your tokens for good", yes)
    for client_id in client_ids:
        session.call("DELETE", f"/me/tokens/{segment(client_id)}")
        if not session.output.json:
            click.echo(f"deleted token {client_id}")


@command(own, "end-grace", "End the grace period of a token of your own: its old secret stops.",
         "keystile me tokens end-grace 3kT9yQ0bW2nLx8RfA1cVzD")  # fmt: skip
@click.argument("client_id")
def end_own_grace(client_id: str) -> None:
    session = Session.current()
    token_record(session, session.call("POST", f"/me/tokens/{segment(client_id)}/end-grace"))
