"""Where config values come from, besides their keys: the file's directory and the environment.

Two rules, applied by ``sidecar.config`` before and after validation:

- A relative path in the config file names a file next to the config file,
  not one in whatever directory the command was started from: ``keystile
  bootstrap --config /etc/keystile/keystile.toml`` run from ``$HOME`` must find
  the same ``redis.data_dir`` that ``keystile serve`` uses. A path given in the
  environment is relative to the current directory, as in a shell.
- Every ``KEYSTILE_*`` variable must mean something: the override of a config
  key (``KEYSTILE_<SECTION>_<KEY>``) or one of ``OTHER_VARIABLES``. A misspelt
  one (``KEYSTILE_PROXY_LISTN``) is an error naming it, as an unknown key in
  the file is, rather than a setting silently not applied.

Pure module: no aiohttp, no redis.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

PREFIX = "KEYSTILE_"

#: A config key as (section, key).
Key = tuple[str, str]

#: KEYSTILE_* variables that are not config overrides but are read by Keystile's own
#: tools, so finding them in the environment of `keystile serve` is no mistake.
OTHER_VARIABLES = frozenset(
    {
        "KEYSTILE_TOKEN",  # the command line's credential for the admin API
        "KEYSTILE_ADMIN_URL",  # the command line's admin API address
        "KEYSTILE_BENCH_NO_WRK",  # bench/load.py: use the aiohttp client, not wrk
        "KEYSTILE_FUZZ_REDIS_URL",  # tests/kits/fuzzing.py: the store being fuzzed
    }
)


def anchored(
    raw: Mapping[str, Any],
    directory: Path,
    paths: Mapping[Key, str | None],
    commands: Iterable[Key] = (),
) -> dict[str, Any]:
    """``raw`` with its relative paths resolved against ``directory``.

    ``paths`` maps each key naming a file or directory to the default that
    applies when the file omits it (a relative default is anchored too);
    ``commands`` name a program, where a bare name is looked up on PATH.
    """
    out = dict(raw)
    for (section, key), default in paths.items():
        _anchor(out, section, key, default, directory)
    for section, key in commands:
        _anchor(out, section, key, None, directory, bare_is_a_name=True)
    return out


def _anchor(
    raw: dict[str, Any],
    section: str,
    key: str,
    default: str | None,
    directory: Path,
    *,
    bare_is_a_name: bool = False,
) -> None:
    table = raw.get(section, {})
    if not isinstance(table, dict):
        return  # config.parse reports it
    value = table.get(key, default)
    if not isinstance(value, str) or not value or (bare_is_a_name and "/" not in value):
        return
    # An absolute value stays as it is: Path("/a") / "/b" is "/b".
    raw[section] = {**table, key: str(directory / value)}


def unknown_variables(environ: Mapping[str, str], overrides: Iterable[str]) -> list[str]:
    """A problem for each ``KEYSTILE_*`` variable that is neither in ``overrides`` nor known."""
    meant = set(overrides) | OTHER_VARIABLES
    problems = []
    for name in sorted(environ):
        if not name.startswith(PREFIX) or name in meant:
            continue
        guess = difflib.get_close_matches(name, sorted(meant), n=1)
        hint = f" (did you mean {guess[0]}?)" if guess else ""
        problems.append(f"{name}: unknown environment variable, no config key has it{hint}")
    return problems
