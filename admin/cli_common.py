"""What every management command shares: connection options, confirmation, paging.

The connection options (``--admin-url``, ``--config``, ``--token-file``,
``--ca-file``, ``--json``) are accepted before the command words and after
them (``keystile --json tokens list`` and ``keystile tokens list --json``);
a value given after the command words wins.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import click

from admin import cli_client
from admin.cli_client import BadUsage, Failure, Target
from admin.cli_output import Output

F = TypeVar("F", bound=Callable[..., Any])
OPTIONS_KEY = "keystile.connection"
#: The largest page the admin API serves; ``--all`` asks for pages this size.
MAX_PAGE = 1000


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    if value not in (None, False) and param.name:
        ctx.meta.setdefault(OPTIONS_KEY, {})[param.name] = value


def _connection(*declarations: str, **attributes: Any) -> click.Option:
    # Remembered in ctx.meta, shared by the whole command chain, rather than
    # passed to every command function.
    return click.Option(declarations, expose_value=False, callback=_remember, **attributes)


def connection_options() -> list[click.Option]:
    """Fresh copies of the connection options, for the root group and every command."""
    return [
        _connection(
            "--admin-url", metavar="URL", help="admin API base URL (or KEYSTILE_ADMIN_URL)."
        ),
        _connection(
            "--config",
            "config_file",
            metavar="FILE",
            type=click.Path(path_type=Path),
            help="take the admin URL from admin.listen of this config file.",
        ),
        _connection(
            "--token-file",
            metavar="PATH",
            help="read the credential from PATH ('-' for stdin) instead of KEYSTILE_TOKEN.",
        ),
        _connection(
            "--ca-file",
            metavar="PATH",
            type=click.Path(path_type=Path),
            help="CA certificates (PEM) to trust for an https:// admin URL.",
        ),
        _connection("--json", "as_json", is_flag=True, help="print the admin API's JSON body."),
    ]


@dataclass(frozen=True)
class Session:
    """One command's way to the admin API and to the terminal."""

    options: Mapping[str, Any]
    output: Output

    @classmethod
    def current(cls) -> Session:
        options = click.get_current_context().meta.get(OPTIONS_KEY, {})
        return cls(options, Output.detect(bool(options.get("as_json"))))

    @cached_property
    def target(self) -> Target:
        """Resolved once: ``--token-file -`` can read stdin only once, and ``--all`` calls often."""
        environ = os.environ
        url = cli_client.admin_url(
            self.options.get("admin_url"), self.options.get("config_file"), environ
        )
        token = cli_client.credential(self.options.get("token_file"), environ)
        return Target(url, token, self.options.get("ca_file"))

    def call(self, method: str, path: str, body: Any = None, query: Any = None) -> Any:
        return cli_client.call(self.target, method, path, body, query)

    def show(self, payload: Any, render: Callable[[Any], None]) -> None:
        """The JSON body with ``--json``, else what ``render`` makes of it."""
        if self.output.json:
            self.output.body(payload)
        else:
            render(payload)


def access_map(pairs: Sequence[str], option: str = "--access") -> dict[str, str]:
    """``API=LEVEL`` pairs into an access map; the API checks the names and levels."""
    access: dict[str, str] = {}
    for pair in pairs:
        api, equals, level = pair.partition("=")
        if not equals or not api.strip() or not level.strip():
            raise click.BadParameter(f"{pair!r} is not API=LEVEL", param_hint=option)
        access[api.strip()] = level.strip()
    return access


def confirm(action: str, yes: bool) -> None:
    """Go on with ``--yes``; else ask on a terminal; without one, exit 2 (as ``gh`` does)."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise BadUsage(f"refusing to {action} without --yes: stdin is not a terminal")
    if not click.confirm(action[0].upper() + action[1:] + "?", default=False, err=True):
        raise Failure("nothing was changed")


def page_through(session: Session, path: str, query: dict[str, Any], every: bool) -> Any:
    """One page of a list, or with ``every`` all of its items in one body of the same shape."""
    if not every:
        return session.call("GET", path, query=query)
    query = {**query, "limit": query.get("limit") or MAX_PAGE}
    start = int(query.get("offset") or 0)
    body = session.call("GET", path, query={**query, "offset": start})
    items = list(body["items"])
    while start + len(items) < body["total"] and body["items"]:
        body = session.call("GET", path, query={**query, "offset": start + len(items)})
        items += body["items"]
    return {"items": items, "total": body["total"], "limit": len(items), "offset": start}


def paged_table(session: Session, columns: Any, body: Mapping[str, Any]) -> None:
    """A list page as a table, and on stderr where more items are when there are some."""
    session.output.table(columns, body["items"])
    shown, total, offset = len(body["items"]), body.get("total", 0), body.get("offset", 0)
    if offset + shown < total:
        after = offset + shown
        session.output.note(f"{shown} of {total} shown; --offset {after} for more, --all for all")


def print_issued(session: Session, issued: Mapping[str, Any], quiet: bool) -> None:
    """A new token: once, alone on stdout's last line; the note about it on stderr."""
    if session.output.json:
        session.output.body(issued)
        return
    if not quiet:
        session.output.record(issued)
        click.echo()
        session.output.note("The token below is shown once and will not be shown again:")
    click.echo(issued["token"])


def quiet_option(command: F) -> F:
    flag = click.option(
        "--quiet", "-q", is_flag=True, help="print only the token (for TOKEN=$(...))."
    )
    return flag(command)


def command(
    group: click.Group | None, name: str, summary: str, *examples: str
) -> Callable[[Callable[..., Any]], click.Command]:
    """A management command of ``group`` (or of none): its help ends with examples, verbatim."""
    shown = "\n".join(f"  {line}" for line in examples)
    help_text = f"{summary}\n\n\b\nExample{'s' if len(examples) > 1 else ''}:\n{shown}"

    def decorate(function: Callable[..., Any]) -> click.Command:
        maker = group.command if group is not None else click.command
        made = maker(name, help=help_text, short_help=summary)(function)
        made.params.extend(connection_options())
        return made

    return decorate


def group(name: str, help_text: str) -> click.Group:
    """A group of management commands; its first help line is its summary in the parent's list."""
    summary = help_text.splitlines()[0]
    return click.Group(name, help=help_text, short_help=summary, params=connection_options())
