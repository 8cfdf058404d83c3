"""``keystile users``, ``roles``, ``apis`` and ``audit`` through the admin API (spec section 7)."""

from __future__ import annotations

from typing import Any

import click

from admin.cli_client import Failure, segment
from admin.cli_common import Session, access_map, command, confirm, group, page_through, paged_table
from admin.cli_output import API_COLUMNS, AUDIT_COLUMNS, ROLE_COLUMNS, USER_COLUMNS

USERS_HELP = """List, create, change and delete users (the owners of tokens).

\b
Examples:
  keystile users create svc --email ops@example.org
  keystile users edit svc --inactive"""
ROLES_HELP = """List, show, set and delete roles (named access maps).

\b
Examples:
  keystile roles set reader --access orders=read
  keystile tokens create --user svc --role reader"""

users = group("users", USERS_HELP)
roles = group("roles", ROLES_HELP)


@command(users, "list", "List users by name.",
         "keystile users list --search example.org --all")  # fmt: skip
@click.option("--search", metavar="TEXT", help="part of the username, display name or email.")
@click.option("--order", metavar="COLS", help="e.g. -created_at ('-': descending).")
@click.option("--limit", type=int, help="items per page (default 50, at most 1000).")
@click.option("--offset", type=int, help="items to skip.")
@click.option("--all", "every", is_flag=True, help="page through every item.")
def list_users(search: str | None, every: bool, **paging: Any) -> None:
    session = Session.current()
    body = page_through(session, "/users", {"q": search, **paging}, every)
    session.show(body, lambda page: paged_table(session, USER_COLUMNS, page))


def _profile(display_name: str | None, email: str | None) -> dict[str, Any]:
    fields = {"display_name": display_name, "email": email}
    return {name: value for name, value in fields.items() if value is not None}


@command(users, "create", "Create a user.",
         "keystile users create svc --display-name Deploy --email ops@example.org")  # fmt: skip
@click.argument("username")
@click.option("--display-name", metavar="TEXT", help="a name for people.")
@click.option("--email", metavar="ADDRESS", help="a contact address.")
@click.option("--inactive", is_flag=True, help="create it inactive (its tokens are refused).")
def create_user(username: str, display_name: str | None, email: str | None, inactive: bool) -> None:
    body = {"username": username, **_profile(display_name, email)}
    if inactive:
        body["active"] = False
    session = Session.current()
    session.show(session.call("POST", "/users", body), session.output.record)


@command(users, "show", "Show one user.", "keystile users show svc")
@click.argument("username")
def show_user(username: str) -> None:
    session = Session.current()
    session.show(session.call("GET", f"/users/{segment(username)}"), session.output.record)


@command(users, "edit", "Change a user; --inactive refuses all of its tokens at once.",
         "keystile users edit svc --inactive",
         "keystile users edit svc --active --email bot@example.org")  # fmt: skip
@click.argument("username")
@click.option("--display-name", metavar="TEXT", help="a new display name.")
@click.option("--email", metavar="ADDRESS", help="a new address ('' for none).")
@click.option("--active/--inactive", default=None, help="let its tokens in, or refuse them.")
def edit_user(
    username: str, display_name: str | None, email: str | None, active: bool | None
) -> None:
    changes: dict[str, Any] = _profile(display_name, email)
    if active is not None:
        changes["active"] = active
    if not changes:
        raise click.UsageError("nothing to change; see keystile users edit --help")
    session = Session.current()
    body = session.call("PATCH", f"/users/{segment(username)}", changes)
    session.show(body, session.output.record)


@command(users, "delete", "Delete a user and every one of its tokens.",
         "keystile users delete svc --yes")  # fmt: skip
@click.argument("username")
@click.option("--yes", "-y", is_flag=True, help="do not ask for confirmation.")
def delete_user(username: str, yes: bool) -> None:
    session = Session.current()
    confirm(f"delete user {username} and all of its tokens", yes)
    body = session.call("DELETE", f"/users/{segment(username)}")
    session.show(body, lambda _: click.echo(f"deleted user {username}"))


@command(roles, "list", "List roles.", "keystile roles list")
def list_roles() -> None:
    session = Session.current()
    body = session.call("GET", "/roles")
    session.show(body, lambda listed: session.output.table(ROLE_COLUMNS, listed["items"]))


@command(roles, "show", "Show one role.", "keystile roles show reader")
@click.argument("name")
def show_role(name: str) -> None:
    session = Session.current()
    session.show(session.call("GET", f"/roles/{segment(name)}"), session.output.record)


@command(roles, "set", "Create or change a role; what is not given stays as it was.",
         "keystile roles set reader --access orders=read --access '*=none' "
         "--description 'Read-only'")  # fmt: skip
@click.argument("name")
@click.option("--access", multiple=True, metavar="API=LEVEL", help="the whole access map; repeats.")
@click.option("--description", metavar="TEXT", help="what the role is for.")
def set_role(name: str, access: tuple[str, ...], description: str | None) -> None:
    session = Session.current()
    path = f"/roles/{segment(name)}"
    body: dict[str, Any] = {}
    if access:
        body["access"] = access_map(access)
    if description is not None:
        body["description"] = description
    if len(body) < 2:  # PUT replaces the role: keep what the command line leaves out
        body = {**_current_role(session, path), **body}
    session.show(session.call("PUT", path, body), session.output.record)


def _current_role(session: Session, path: str) -> dict[str, Any]:
    try:
        role = session.call("GET", path)
    except Failure as exc:
        if exc.status == 404:
            return {}
        raise
    return {"access": role["access"], "description": role["description"]}


@command(roles, "delete", "Delete a role (refused while tokens use it).",
         "keystile roles delete reader --yes")  # fmt: skip
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="do not ask for confirmation.")
def delete_role(name: str, yes: bool) -> None:
    session = Session.current()
    confirm(f"delete role {name}", yes)
    body = session.call("DELETE", f"/roles/{segment(name)}")
    session.show(body, lambda _: click.echo(f"deleted role {name}"))


@command(None, "apis", "List the configured APIs.", "keystile apis")
def apis() -> None:
    session = Session.current()
    body = session.call("GET", "/apis")
    session.show(body, lambda listed: session.output.table(API_COLUMNS, listed["items"]))


@command(None, "audit", "The global change log, newest first.",
         "keystile audit --since 2026-01-01T00:00:00Z --limit 20")  # fmt: skip
@click.option("--since", metavar="TIME", help="only changes at or after TIME (RFC 3339).")
@click.option("--limit", type=int, help="at most N entries (default 100, at most 1000).")
def audit(since: str | None, limit: int | None) -> None:
    session = Session.current()
    body = session.call("GET", "/audit", query={"since": since, "limit": limit})
    session.show(body, lambda log: session.output.table(AUDIT_COLUMNS, log["items"]))
