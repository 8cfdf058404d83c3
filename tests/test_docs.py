"""The README and docs/ as a reader follows them: every relative link leads somewhere."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*$", re.MULTILINE)


def prose(page: Path) -> str:
    """The page without code blocks and code spans, where brackets are not links."""
    return CODE_SPAN.sub("", FENCE.sub("", page.read_text(encoding="utf-8")))


def links(page: Path) -> list[str]:
    """Every link target of ``page`` that is not a URL with a scheme."""
    return [t for t in LINK.findall(prose(page)) if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def anchors(page: Path) -> set[str]:
    """The heading anchors GitHub makes for ``page``, repeats numbered."""
    seen: dict[str, int] = {}
    for heading in HEADING.findall(FENCE.sub("", page.read_text(encoding="utf-8"))):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        if count:
            seen[f"{slug}-{count}"] = 1
    return set(seen)


def test_every_relative_link_names_a_file_in_the_repository():
    """A relative link in README.md or docs/*.md opens a file of this repository."""
    broken = []
    for page in PAGES:
        for target in links(page):
            if target.startswith("#"):
                continue
            path = (page.parent / target.split("#")[0]).resolve()
            name = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else None
            if name is None or not path.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert broken == []


def test_every_link_to_a_heading_finds_it():
    """A link with #anchor lands on a heading of the page it names."""
    broken = []
    for page in PAGES:
        for anchor in links(page):
            file_part, _, fragment = anchor.partition("#")
            target = (page.parent / file_part).resolve() if file_part else page
            if fragment and target.exists() and fragment not in anchors(target):
                broken.append(f"{page.relative_to(ROOT)}: {anchor}")
    assert broken == []


def test_readme_is_a_short_guide():
    """README.md stays a guide of at most 250 lines; the rest lives in docs/."""
    lines = len((ROOT / "README.md").read_text(encoding="utf-8").splitlines())
    assert lines <= 250
