"""docs/configuration.md and config.example.toml against the one declaration of the keys."""

from __future__ import annotations

import re
import tomllib
from collections import defaultdict
from pathlib import Path

from sidecar import configdoc
from sidecar.configschema import keys

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "configuration.md"


def declared(section: str) -> set[str]:
    return {name for name, _, _ in keys(configdoc.TABLES[section])}


def example_keys() -> dict[str, set[str]]:
    """The keys config.example.toml sets, or shows commented out, under each section."""
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    found: dict[str, set[str]] = defaultdict(set)
    for section, value in tomllib.loads(text).items():
        tables = value if isinstance(value, list) else [value]
        found[section].update(name for table in tables for name in table)
    section = ""
    for line in text.splitlines():
        # A table shown commented out (``# [[notify]]``) starts its section too.
        if header := re.fullmatch(r"(?:# )?\[\[?(\w+)\]\]?\s*(#.*)?", line):
            section = header.group(1)
        elif commented := re.match(r"# ?(\w+) = ", line):
            found[section].add(commented.group(1))
    return found


def test_the_committed_page_lists_every_key_as_declared() -> None:
    """docs/configuration.md has one table per section, equal to the one the code writes."""
    page = PAGE.read_text(encoding="utf-8")

    assert configdoc.MARKER.findall(page) == list(configdoc.TABLES)
    assert configdoc.render(page) == page, "run python -m sidecar.configdoc docs/configuration.md"


def test_a_stale_page_is_reported_and_rewritten(tmp_path: Path) -> None:
    """--check exits 1 on a page missing a key's row; without it the row is written back."""
    stale = tmp_path / "configuration.md"
    stale.write_text(re.sub(r"\| `session_idle_seconds` .*\n", "", PAGE.read_text()))

    assert configdoc.main(["--check", str(stale)]) == 1
    assert configdoc.main([str(stale)]) == 0
    assert stale.read_text() == PAGE.read_text()


def test_the_example_config_shows_every_key_and_no_other() -> None:
    """config.example.toml sets or shows (commented out) exactly the declared keys of each table."""
    found = example_keys()

    assert set(found) == set(configdoc.TABLES)
    for section in configdoc.TABLES:
        assert found[section] == declared(section), section
