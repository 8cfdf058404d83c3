"""The key tables of docs/configuration.md, written from each key's one declaration.

Each table of the page follows a ``<!-- keys: SECTION -->`` line and is
rewritten from the section's dataclass (``sidecar.configschema``); the prose
around the tables is the page's own. ``python -m sidecar.configdoc
docs/configuration.md`` rewrites the page, ``--check`` exits 1 when it is
out of date (tests/test_configdoc.py runs the same comparison).
Pure module: no aiohttp, no redis.
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import MISSING
from pathlib import Path
from typing import Any

from sidecar.config import SECTIONS, ApiConfig, WebhookConfig
from sidecar.configschema import Key, keys, type_text

#: Every table the page may hold: the sections, ``[[apis]]`` and ``[[notify]]``.
TABLES: dict[str, type] = {**SECTIONS, "apis": ApiConfig, "notify": WebhookConfig}
MARKER = re.compile(r"<!-- keys: (\w+) -->")
HEADER = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]


def table(section: type) -> list[str]:
    """The Markdown table of ``section``'s keys: its own keys first, then inherited ones."""
    own = set(inspect.get_annotations(section))
    declared = sorted(keys(section), key=lambda k: k[0] not in own)
    rows = [
        _row(f"`{name}`", type_text(spec), _default(spec, default), spec.doc)
        for name, spec, default in declared
    ]
    return HEADER + rows


def _row(*cells: str) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _default(spec: Key, default: Any) -> str:
    if spec.shown or default is MISSING:
        return spec.shown
    if default is None:
        return "none"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, int | float):
        return f"`{default!r}`"
    if isinstance(default, tuple):
        return f"`{list(default)}`"
    return f"`{json.dumps(str(default))}`"


def render(page: str) -> str:
    """``page`` with the table after each marker written anew."""
    out: list[str] = []
    lines = iter(page.splitlines())
    for line in lines:
        out.append(line)
        marker = MARKER.fullmatch(line.strip())
        if marker is None:
            continue
        out += table(TABLES[marker.group(1)])
        for rest in lines:  # skip the old table, keep what follows it
            if not rest.startswith("|"):
                out.append(rest)
                break
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sidecar.configdoc")
    parser.add_argument("page", type=Path, help="docs/configuration.md")
    parser.add_argument("--check", action="store_true", help="only say if it is current")
    args = parser.parse_args(argv)
    page = args.page.read_text(encoding="utf-8")
    current = render(page)
    if args.check:
        if current != page:
            print(f"{args.page}: out of date; run python -m sidecar.configdoc {args.page}")
            return 1
        return 0
    args.page.write_text(current, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
