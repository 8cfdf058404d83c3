"""``keystile tokens``: the whole life of a token through the admin API (spec section 7)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from admin.cli_client import segment
from admin.cli_common import (
    Session,
    access_map,
    command,
    confirm,
    group,
    page_through,
    paged_table,
    print_issued,
    quiet_option,
)
from admin.cli_output import GRACE_CLIENT_COLUMNS, HISTORY_COLUMNS, TOKEN_COLUMNS

STATUSES = click.Choice(["active", "revoked", "expired"])


TOKENS_HELP = """List, create, change, regenerate, revoke and delete tokens.

\b
Examples:
  keystile tokens list --status active
  keystile tokens create --user svc --access orders=read
  keystile tokens revoke 3kT9yQ0bW2nLx8RfA1cVzD"""

tokens = group("tokens", TOKENS_HELP)


def list_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """The filters, order and paging of a token list (``tokens list`` and ``me tokens list``)."""
    options = [
        click.option(
            "--search", metavar="TEXT", help="part of the client_id, user or description."
        ),
        click.option("--status", type=STATUSES, help="only tokens with this status."),
        click.option("--role", metavar="NAME", help="only tokens with this role."),
        click.option("--api", metavar="NAME", help="only tokens with some access to this API."),
        click.option("--order", metavar="COLS", help="e.g. user,-created_at ('-': descending)."),
        click.option("--limit", type=int, help="items per page (default 50, at most 1000)."),
        click.option("--offset", type=int, help="items to skip."),
        click.option("--all", "every", is_flag=True, help="page through every item."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def token_query(**filters: Any) -> dict[str, Any]:
    """The list's query string; ``--search`` is the API's ``q``."""
    names = ("user", "status", "role", "api", "order", "limit", "offset")
    return {"q": filters.get("search"), **{name: filters.get(name) for name in names}}


def expiry_options(function: Callable[..., Any]) -> Callable[..., Any]:
    months = click.option(
        "--expires-in-months", "months", type=int, help="expiry from now (e.g. 3, 6 or 12)."
    )
    moment = click.option(
        "--expires-at", "expires_at", metavar="TIME", help="expiry, RFC 3339 with a time zone."
    )
    return months(moment(function))


def expiry(months: int | None, expires_at: str | None) -> dict[str, Any]:
    if months is not None and expires_at is not None:
        raise click.UsageError("give --expires-in-months or --expires-at, not both")
    if months is not None:
        return {"expires_in_months": months}
    return {"expires_at": expires_at} if expires_at is not None else {}


def token_record(session: Session, body: Any) -> None:
    session.show(body, session.output.record)


@command(tokens, "list", "List tokens, newest first.",
         "keystile tokens list --user svc --status active",
         "keystile tokens list --search deploy --order user,-created_at --all")  # fmt: skip
@list_options
@click.option("--user", metavar="NAME", help="only this user's tokens.")
def list_tokens(every: bool, **filters: Any) -> None:
    session = Session.current()
    body = page_through(session, "/tokens", token_query(**filters), every)
    session.show(body, lambda page: paged_table(session, TOKEN_COLUMNS, page))


@command(tokens, "create", "Create a token and print it once.",
         "keystile tokens create --user svc --access orders=read --description 'CI deploys'",
         "TOKEN=$(keystile tokens create --user svc --access orders=read --quiet)")  # fmt: skip
@click.option("--user", required=True, metavar="NAME", help="the user who owns the token.")
@click.option("--description", metavar="TEXT", help="what the token is for.")
@click.option("--role", metavar="NAME", help="a role whose access the token has.")
@click.option("--access", multiple=True, metavar="API=LEVEL", help="none, read or full; repeats.")
@expiry_options
@quiet_option
def create_token(
    user: str,
    description: str | None,
    role: str | None,
    access: tuple[str, ...],
    months: int | None,
    expires_at: str | None,
    quiet: bool,
) -> None:
    body: dict[str, Any] = {"user": user, **expiry(months, expires_at)}
    if description is not None:
        body["description"] = description
    if role is not None:
        body["role"] = role
    if access:
        body["access"] = access_map(access)
    session = Session.current()
    print_issued(session, session.call("POST", "/tokens", body), quiet)


@command(tokens, "show", "Show one token.", "keystile tokens show 3kT9yQ0bW2nLx8RfA1cVzD")
@click.argument("client_id")
def show_token(client_id: str) -> None:
    session = Session.current()
    body = session.call("GET", f"/tokens/{segment(client_id)}")
    session.show(body, lambda record: _with_grace(session, record))


@command(tokens, "edit", "Change a token; --access replaces its whole access map.",
         "keystile tokens edit 3kT9yQ0bW2nLx8RfA1cVzD --access orders=full --no-role")  # fmt: skip
@click.argument("client_id")
@click.option("--description", metavar="TEXT", help="a new description.")
@click.option("--role", metavar="NAME", help="a new role.")
@click.option("--no-role", is_flag=True, help="take the role away.")
@click.option("--access", multiple=True, metavar="API=LEVEL", help="the new access map; repeats.")
@click.option("--expires-at", metavar="TIME", help="a new expiry, RFC 3339 with a time zone.")
@click.option("--user", metavar="NAME", help="give the token to another user.")
def edit_token(client_id: str, no_role: bool, access: tuple[str, ...], **fields: Any) -> None:
    if no_role and fields["role"] is not None:
        raise click.UsageError("give --role or --no-role, not both")
    changes = {name: value for name, value in fields.items() if value is not None}
    if no_role:
        changes["role"] = None
    if access:
        changes["access"] = access_map(access)
    if not changes:
        raise click.UsageError("nothing to change; see keystile tokens edit --help")
    session = Session.current()
    token_record(session, session.call("PATCH", f"/tokens/{segment(client_id)}", changes))


@command(tokens, "regenerate", "Give a token a new secret, same client_id; print it once.",
         "keystile tokens regenerate 3kT9yQ0bW2nLx8RfA1cVzD --grace 3600")  # fmt: skip
@click.argument("client_id")
@click.option("--expires-in-months", "months", type=int, help="a new expiry, counted from now.")
@click.option("--grace", type=int, metavar="SECONDS", help="how long the old secret still works.")
@quiet_option
def regenerate_token(client_id: str, months: int | None, grace: int | None, quiet: bool) -> None:
    body = {"expires_in_months": months, "grace_seconds": grace}
    wanted = {name: value for name, value in body.items() if value is not None}
    session = Session.current()
    path = f"/tokens/{segment(client_id)}/regenerate"
    print_issued(session, session.call("POST", path, wanted), quiet)


@command(tokens, "revoke", "Revoke tokens for good (their records stay), or all of a user's.",
         "keystile tokens revoke 3kT9yQ0bW2nLx8RfA1cVzD",
         "keystile tokens revoke --user svc --yes")  # fmt: skip
@click.argument("client_ids", nargs=-1, metavar="ID...")
@click.option("--user", metavar="NAME", help="revoke every token of this user.")
@click.option("--yes", "-y", is_flag=True, help="do not ask for confirmation (for --user).")
def revoke_tokens(client_ids: tuple[str, ...], user: str | None, yes: bool) -> None:
    if bool(client_ids) == bool(user):
        raise click.UsageError("give token IDs or --user NAME, not both and not neither")
    session = Session.current()
    if user:
        confirm(f"revoke every token of user {user}", yes)
        body = session.call("POST", "/tokens/bulk-revoke", {"user": user})
    elif len(client_ids) == 1:
        body = session.call("POST", f"/tokens/{segment(client_ids[0])}/revoke")
        return token_record(session, body)
    else:
        body = session.call("POST", "/tokens/bulk-revoke", {"client_ids": list(client_ids)})
    session.show(body, lambda count: click.echo(f"revoked {count['revoked']} token(s)"))


@command(tokens, "delete", "Delete tokens for good (a revoked token keeps its record).",
         "keystile tokens delete 3kT9yQ0bW2nLx8RfA1cVzD --yes")  # fmt: skip
@click.argument("client_ids", nargs=-1, required=True, metavar="ID...")
@click.option("--yes", "-y", is_flag=True, help="do not ask for confirmation.")
def delete_tokens(client_ids: tuple[str, ...], yes: bool) -> None:
    session = Session.current()
    confirm(f"delete {_count(client_ids)} for good", yes)
    if len(client_ids) == 1:
        body = session.call("DELETE", f"/tokens/{segment(client_ids[0])}")
        return session.show(body, lambda _: click.echo(f"deleted token {client_ids[0]}"))
    body = session.call("POST", "/tokens/bulk-delete", {"client_ids": list(client_ids)})
    session.show(body, lambda count: click.echo(f"deleted {count['deleted']} token(s)"))


@command(tokens, "history", "Every change of a token, oldest first.",
         "keystile tokens history 3kT9yQ0bW2nLx8RfA1cVzD")  # fmt: skip
@click.argument("client_id")
def token_history(client_id: str) -> None:
    session = Session.current()
    body = session.call("GET", f"/tokens/{segment(client_id)}/history")
    session.show(body, lambda history: session.output.table(HISTORY_COLUMNS, history["items"]))


def _count(client_ids: tuple[str, ...]) -> str:
    return f"token {client_ids[0]}" if len(client_ids) == 1 else f"{len(client_ids)} tokens"


# -- rotation evidence: a regeneration's grace period -------------------------------


def _with_grace(session: Session, record: dict[str, Any]) -> None:
    """The record, then its grace period: who still uses the old secret."""
    output = session.output
    output.record({name: value for name, value in record.items() if name != "grace"})
    grace = record.get("grace")
    if not grace:
        return
    click.echo("\nGrace period")
    output.record({name: grace[name] for name in ("until", "old_secret_uses", "last_old_use_at")})
    if grace["clients"]:
        click.echo()
        other = {"address": "(other clients)", "user_agent": "-"}
        rows = [{**c, **(other if c["address"] is None else {})} for c in grace["clients"]]
        output.table(GRACE_CLIENT_COLUMNS, rows)


@command(tokens, "end-grace", "End a grace period now: the old secret stops working.",
         "keystile tokens end-grace 3kT9yQ0bW2nLx8RfA1cVzD")  # fmt: skip
@click.argument("client_id")
def end_grace(client_id: str) -> None:
    session = Session.current()
    body = session.call("POST", f"/tokens/{segment(client_id)}/end-grace")
    session.show(body, lambda record: _with_grace(session, record))
