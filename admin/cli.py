"""The ``keystile`` command line.

    keystile serve     --config FILE [--workers N]
                                         run the proxy and admin listeners
    keystile bootstrap --config FILE --user NAME
                                         print a new admin token, once

Operator mistakes (bad config, unreachable store, port in use) end with one
line on stderr naming the key to fix and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from admin import serve as runtime
from admin import workers
from sidecar import config as configuration
from sidecar import logs
from sidecar.hashing import cores
from sidecar.models import USERNAME

EXIT_CONFIG = 2
EXIT_START = 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="keystile", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the proxy and the admin API")
    serve.add_argument("--config", type=Path, help="TOML config file (default: built-in defaults)")
    serve.add_argument(
        "--workers",
        type=_workers,
        help="worker processes sharing the ports bound once by serve (default: one per core)",
    )
    boot = commands.add_parser("bootstrap", help="create an admin token and print it once")
    boot.add_argument("--config", type=Path, help="TOML config file")
    boot.add_argument("--user", required=True, help="username that owns the token")
    return parser


def _fail(message: str, code: int) -> int:
    print(f"keystile: {message}", file=sys.stderr)
    return code


def _load(path: Path | None) -> configuration.Config:
    return configuration.load(path, os.environ)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = _load(args.config)
    except configuration.ConfigError as exc:
        lines = "\n".join(f"  - {problem}" for problem in exc.problems)
        return _fail(f"the config cannot be used:\n{lines}", EXIT_CONFIG)
    logs.setup(config.log)
    try:
        if args.command == "serve":
            return _serve(config, args.workers or cores())
        elif args.command == "bootstrap":
            return _bootstrap(config, args.user)
    except runtime.StartError as exc:
        return _fail(str(exc), EXIT_START)
    except KeyboardInterrupt:
        return 130
    return 0


def _workers(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 256:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of workers from 1 to 256")
    return int(text)


def _serve(config: configuration.Config, count: int) -> int:
    if count == 1:
        workers.run(runtime.serve(config))
        return 0
    return workers.supervise(config, count)


def _bootstrap(config: configuration.Config, username: str) -> int:
    if not USERNAME.fullmatch(username):
        return _fail(f"--user: {username!r} is not a valid username", EXIT_CONFIG)
    issued = asyncio.run(runtime.bootstrap(config, username))
    print(f"created admin token {issued.token.client_id} for {issued.token.user}", file=sys.stderr)
    print("it is shown once; keep it safe:", file=sys.stderr)
    print(issued.bearer, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
