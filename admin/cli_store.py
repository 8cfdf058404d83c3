"""``keystile store check | export | import``: the store itself, straight in Redis.

Like ``bootstrap``, these work on the store the config names (``redis.url``,
or the embedded server, started for the duration when no ``serve`` runs it),
not through the admin API, so they need no token and work while the admin
API is down. What each promises is in docs/store.md; the logic lives in
``sidecar.store.invariants``, ``snapshot``, ``exportfile`` and ``wholestore``.

Exit status: 0 done (a clean store, for ``check``); 1 a problem found or
left, or the store or the file refused; 2 a usage or config error.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

import click

from sidecar import config as configuration

if TYPE_CHECKING:
    from sidecar.store.invariants import Snapshot

F = TypeVar("F", bound=Callable[..., Any])


def _config_option(command: F) -> F:
    return click.option(
        "--config",
        type=click.Path(path_type=Path),
        help="TOML config file naming the store (default: built-in defaults).",
    )(command)


@click.group(short_help="Check, export or import the store, straight in Redis.")
def store() -> None:
    """Check the store's invariants, or move its records to another store.

    \b
    Examples:
      keystile store check --config config.toml
      keystile store check --config config.toml --repair
      keystile store export --config config.toml -o keystile.jsonl
      keystile store import --config other.toml keystile.jsonl
    """


@store.command(short_help="Verify every invariant of the data model.")
@_config_option
@click.option("--repair", is_flag=True, help="also fix what can be fixed safely, and say what.")
def check(config: Path | None, repair: bool) -> int:
    """Name every broken invariant, one line each; exit 1 if any is left.

    --repair adds missing index entries and drops index entries that point at
    nothing, in one transaction; it never deletes or rewrites a record.
    """
    return _run(config, lambda loaded: asyncio.run(_check(loaded, repair)))


@store.command(short_help="Write users, roles, tokens and history as JSON lines.")
@_config_option
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), help="file to write (default: stdout)."
)
def export(config: Path | None, output: Path | None) -> int:
    """Write every record (hashes, never secrets), history and audit entry as JSON lines."""
    return _run(config, lambda loaded: _export(loaded, output))


@store.command("import", short_help="Load an export into an empty store, all or nothing.")
@_config_option
@click.argument("file", type=click.Path(path_type=Path, allow_dash=True))
def import_(config: Path | None, file: Path) -> int:
    """Load FILE ('-' for stdin) into the store, which must be empty, in one transaction."""
    return _run(config, lambda loaded: asyncio.run(_import(loaded, _read(file))))


def _run(given: Path | None, command: Callable[[configuration.Config], int]) -> int:
    # Imported here: admin.cli imports this module.
    from admin import cli

    return cli._run(cli._config_path(given), command)


@asynccontextmanager
async def _redis(config: configuration.Config) -> AsyncIterator[Any]:
    """A client of the configured store; its failures become one line for the operator."""
    from admin.serve import open_store_url
    from admin.startup import StartError
    from sidecar.errors import StoreUnavailable
    from sidecar.store.exportfile import FileProblem
    from sidecar.store.snapshot import StoreBusy
    from sidecar.store.wholestore import NotEmpty
    from sidecar.verification.runtime import redis_client

    async with open_store_url(config, own_embedded=False) as url:
        client = redis_client(url, config.redis.timeout, topology=config.redis)
        try:
            yield client
        except StoreUnavailable as exc:
            raise StartError(f"the store stopped answering: {exc.reason}") from None
        except (StoreBusy, FileProblem) as exc:
            raise StartError(str(exc)) from None
        except NotEmpty as exc:
            raise StartError(
                f"import only into an empty store: {exc}; nothing was written"
            ) from None
        finally:
            await client.aclose()


async def _check(config: configuration.Config, repair: bool) -> int:
    from sidecar.store import wholestore
    from sidecar.store.invariants import find_problems
    from sidecar.store.snapshot import read_snapshot

    async with _redis(config) as redis:
        if repair:
            repaired, _ = await wholestore.repair(redis)
            for problem in repaired:
                click.echo(f"repaired: {problem.message}: {problem.fix}")
        snapshot = await read_snapshot(redis)
    problems = find_problems(snapshot)
    for problem in problems:
        click.echo(problem.message)
    if not problems:
        click.echo(f"the store is consistent: {_counts(snapshot)}")
        return 0
    fixable = sum(1 for problem in problems if problem.repair)
    hint = f"; {fixable} can be repaired with --repair" if fixable and not repair else ""
    click.echo(f"keystile: {len(problems)} problem(s) in the store{hint}", err=True)
    return 1


async def _snapshot(config: configuration.Config) -> Snapshot:
    from sidecar.store.snapshot import read_snapshot

    async with _redis(config) as redis:
        return await read_snapshot(redis)


def _export(config: configuration.Config, output: Path | None) -> int:
    from sidecar import clock
    from sidecar.store.exportfile import export_lines
    from sidecar.store.invariants import find_problems

    snapshot = asyncio.run(_snapshot(config))
    if problems := find_problems(snapshot):
        click.echo(
            f"keystile: note: the store has {len(problems)} problem(s) (keystile store check "
            "names them); the export holds the records as they are",
            err=True,
        )
    lines = export_lines(snapshot, clock.to_rfc3339(clock.now()))
    if output is None:
        _write(sys.stdout, lines)
    elif output.exists() and not output.is_file():
        # A device or a pipe (/dev/null, a fifo): renaming over it would replace it.
        with output.open("w", encoding="utf-8") as out:
            _write(out, lines)
    else:
        partial = output.with_name(output.name + ".partial")
        # The hashes are no secrets, but no one else needs to read them either.
        with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
            _write(out, lines)
        partial.replace(output)  # a file at ``output`` is always a whole export
    click.echo(f"exported {_counts(snapshot)}", err=True)
    return 0


def _write(out: IO[str], lines: Iterable[str]) -> None:
    for line in lines:
        out.write(line + "\n")
    out.flush()


def _read(file: Path) -> Snapshot:
    """The store FILE describes, checked: every problem is named before anything is written."""
    from admin.startup import StartError
    from sidecar.store.exportfile import FileProblem, to_snapshot
    from sidecar.store.invariants import find_problems

    try:
        text = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
        snapshot = to_snapshot(text.splitlines())
    except (OSError, UnicodeDecodeError) as exc:
        raise StartError(
            f"{file}: cannot be read ({getattr(exc, 'strerror', None) or exc})"
        ) from None
    except FileProblem as exc:
        raise StartError(f"{file}: {exc}; nothing was written") from None
    if problems := find_problems(snapshot):
        for problem in problems:
            click.echo(problem.message)
        raise StartError(f"{file}: {len(problems)} problem(s) in the file; nothing was written")
    return snapshot


async def _import(config: configuration.Config, snapshot: Snapshot) -> int:
    from admin.serve import store_name
    from sidecar.store.wholestore import load

    async with _redis(config) as redis:
        await load(redis, snapshot)
    click.echo(f"imported {_counts(snapshot)} into {store_name(config)}", err=True)
    return 0


def _counts(snapshot: Snapshot) -> str:
    return ", ".join(f"{what} {count}" for what, count in snapshot.counts().items())
