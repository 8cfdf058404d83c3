"""The ``keystile`` command line: the entry point, ``serve``, ``bootstrap``, completion.

``serve``, ``bootstrap`` and ``store`` (``admin/cli_store.py``) work on the
config and the store directly; every other command talks to a running admin
API (``admin/cli_tokens.py``, ``cli_people.py``, ``cli_me.py``). click gives
the nested commands, their help, exit 2 on a usage error and shell completion.

Operator mistakes (bad config, unreachable store, port in use) end with one
line on stderr naming the key to fix and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import click
from click.shell_completion import get_completion_class

import admin.cli_advice  # noqa: F401 (its import adds `tokens usage` and `tokens advice`)
from admin import cli_me, cli_people, cli_replicas, cli_store, cli_tokens
from admin.cli_common import OPTIONS_KEY, connection_options
from sidecar import config as configuration

EXIT_CONFIG = 2
EXIT_START = 1

ROOT_HELP = """Keystile's command line: run the sidecar, and manage its tokens, users
and roles through a running admin API.

The admin API is found at --admin-url, else KEYSTILE_ADMIN_URL, else the
admin.listen of --config FILE, else http://127.0.0.1:8081. The credential
comes from KEYSTILE_TOKEN or --token-file PATH ('-' reads stdin), never from
a flag. --json prints the admin API's JSON body instead of a table.

\b
Examples:
  keystile serve --config config.toml
  export KEYSTILE_TOKEN=$(keystile bootstrap --config config.toml --user admin)
  keystile users create svc
  keystile tokens create --user svc --access orders=read
  keystile tokens list --json | jq -r '.items[].client_id'
  keystile store check --config config.toml   (straight in Redis, no admin API)
"""


@click.group(help=ROOT_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(None, "--version", "-V", package_name="keystile", prog_name="keystile")
def keystile() -> None:
    pass


keystile.params.extend(connection_options())


@keystile.command(short_help="Run the proxy and the admin API.")
@click.option(
    "--config",
    type=click.Path(path_type=Path),
    help="TOML config file (default: built-in defaults).",
)
@click.option(
    "--workers",
    "count",
    type=int,
    callback=lambda _ctx, _param, value: _workers(value),
    help="worker processes sharing the ports bound once by serve (default: one per core).",
)
def serve(config: Path | None, count: int | None) -> int:
    """Run the proxy and the admin API until SIGTERM or Ctrl-C.

    \b
    Example:
      keystile serve --config config.toml --workers 2
    """
    return _run(_config_path(config), lambda loaded: _serve(loaded, count))


@keystile.command(short_help="Create an admin token and print it once.")
@click.option("--config", type=click.Path(path_type=Path), help="TOML config file.")
@click.option("--user", required=True, help="username that owns the token.")
def bootstrap(config: Path | None, user: str) -> int:
    """Create a token with access admin=full, straight in the store, and print it once.

    Works while serve runs. The token is alone on stdout; notes go to stderr.

    \b
    Example:
      export KEYSTILE_TOKEN=$(keystile bootstrap --config config.toml --user admin)
    """
    return _run(_config_path(config), lambda loaded: _bootstrap(loaded, user))


@keystile.command(short_help="Print a shell completion script.")
@click.argument("shell", type=click.Choice(["bash", "zsh"]))
def completion(shell: str) -> None:
    """Print the completion script for SHELL; load it from the shell's start-up file.

    \b
    Examples:
      echo 'eval "$(keystile completion bash)"' >> ~/.bashrc
      echo 'eval "$(keystile completion zsh)"' >> ~/.zshrc
    """
    script = get_completion_class(shell)
    assert script is not None  # both choices are click's own shells
    click.echo(script(keystile, {}, "keystile", "_KEYSTILE_COMPLETE").source())


keystile.add_command(cli_tokens.tokens)
keystile.add_command(cli_people.users)
keystile.add_command(cli_people.roles)
keystile.add_command(cli_people.apis)
keystile.add_command(cli_people.audit)
keystile.add_command(cli_me.me)
keystile.add_command(cli_store.store)
keystile.add_command(cli_replicas.replicas)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        code = keystile.main(args=argv, prog_name="keystile", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("keystile: interrupted", err=True)
        return 130
    except BrokenPipeError:
        # `keystile tokens list | head`: the reader has gone; say nothing more.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:  # one line, never a traceback, as the module promises
        click.echo(f"keystile: unexpected error, please report it: {type(exc).__name__}", err=True)
        return 1
    return code if isinstance(code, int) else 0


def _config_path(given: Path | None) -> Path | None:
    # `keystile --config FILE serve` means the same as `keystile serve --config FILE`.
    found: Path | None = click.get_current_context().meta.get(OPTIONS_KEY, {}).get("config_file")
    return given or found


def _run(path: Path | None, command: Callable[[configuration.Config], int]) -> int:
    # The runtime (aiohttp, redis, argon2) is imported here, not at the top: the
    # management commands never need it and start in half the time without it.
    from admin.startup import StartError
    from sidecar.ops import logs

    try:
        config = configuration.load(path, os.environ)
    except configuration.ConfigError as exc:
        lines = "\n".join(f"  - {problem}" for problem in exc.problems)
        return _fail(f"the config cannot be used:\n{lines}", EXIT_CONFIG)
    logs.setup(config.log)
    try:
        return command(config)
    except StartError as exc:
        return _fail(str(exc), EXIT_START)
    except KeyboardInterrupt:
        return 130


def _fail(message: str, code: int) -> int:
    print(f"keystile: {message}", file=sys.stderr)
    return code


def _workers(count: int | None) -> int | None:
    if count is not None and not 1 <= count <= 256:
        raise click.BadParameter(f"{count} is not a number of workers from 1 to 256")
    return count


def _serve(config: configuration.Config, count: int | None) -> int:
    from admin import serve as runtime
    from admin import workers
    from sidecar.notify import notifier
    from sidecar.verification.hashing import cores

    runtime.warn_if_nothing_to_proxy(config)
    notifier.warn_if_unsigned(config)
    count = count or cores()
    if count == 1:
        workers.run(runtime.serve(config))
        return 0
    return workers.supervise(config, count)


def _bootstrap(config: configuration.Config, username: str) -> int:
    import asyncio

    from admin import serve as runtime
    from sidecar.records import USERNAME

    if not USERNAME.fullmatch(username):
        return _fail(f"--user: {username!r} is not a valid username", EXIT_CONFIG)
    issued = asyncio.run(runtime.bootstrap(config, username))
    where = runtime.store_name(config)
    print(
        f"created admin token {issued.token.client_id} for {issued.token.user} in {where}",
        file=sys.stderr,
    )
    print("it is shown once; keep it safe:", file=sys.stderr)
    print(issued.bearer, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
