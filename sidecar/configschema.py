"""Config keys declared once, as dataclass fields, and everything derived from that.

A config dataclass declares each key with ``key(default, check, doc)`` (or
``required(check, doc)``): the field's default, its ``configchecks.Check``
and one line for the documentation travel together in the field's metadata.
From it follow the unknown-key check, the ``KEYSTILE_<SECTION>_<KEY>``
environment overrides, the keys naming paths, and the key tables of
docs/configuration.md (``sidecar.configdoc``). Pure module: no aiohttp, no redis.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar, cast

from sidecar.configchecks import Check

T = TypeVar("T")

_SPEC = "keystile.config"

#: A check whose bounds follow from keys of the same section read before it.
Dependent = Callable[[Mapping[str, Any]], Check[T]]


@dataclasses.dataclass(frozen=True)
class Key:
    """One key's declaration: its check, its documentation, whether it may be omitted."""

    check: Check[Any] | Dependent[Any]
    doc: str
    #: The default column when the default's TOML form says too little ("none", "100 MiB").
    shown: str = ""
    #: The type column when the check's own text does not fit (a dependent check).
    text: str = ""
    required: bool = False


def key(
    default: T,
    check: Check[T] | Dependent[T],
    doc: str,
    *,
    shown: str = "",
    text: str = "",
) -> T:
    """A config key with ``default``; use as a dataclass field's default."""
    spec = Key(check, doc, shown, text)
    return dataclasses.field(default=default, metadata={_SPEC: spec})


def required(check: Check[T], doc: str) -> T:
    """A config key without a default: a table that omits it is refused."""
    return cast(T, dataclasses.field(metadata={_SPEC: Key(check, doc, required=True)}))


def keys(section: type) -> Iterator[tuple[str, Key, Any]]:
    """(name, declaration, default) of every key of ``section``, in declaration order."""
    for field in dataclasses.fields(section):
        yield field.name, field.metadata[_SPEC], field.default


def env_name(section: str, name: str) -> str:
    return f"KEYSTILE_{section}_{name}".upper()


def env_names(sections: Mapping[str, type]) -> set[str]:
    """The environment variable of every key of ``sections``."""
    return {
        env_name(section, name) for section, cls in sections.items() for name, _, _ in keys(cls)
    }


def path_keys(sections: Mapping[str, type], kind: str) -> dict[tuple[str, str], Any]:
    """(section, key) of each key naming a file (``kind`` "file") or a program, with its default."""
    return {
        (section, name): default
        for section, cls in sections.items()
        for name, spec, default in keys(cls)
        if isinstance(spec.check, Check) and spec.check.path == kind
    }


def type_text(spec: Key) -> str:
    """The documented type of a key."""
    text = spec.text or (spec.check.text if isinstance(spec.check, Check) else "")
    return f"{text}, required" if spec.required else text


class Reader:
    """Reads the keys of one table, preferring their environment overrides.

    Each problem is appended to ``problems`` under the key's dotted name (or
    its variable's), and the key then keeps its default, so every problem of a
    config is found in one pass.
    """

    def __init__(self, problems: list[str], environ: Mapping[str, str]) -> None:
        self.problems = problems
        self.environ = environ

    def read(self, section: type, table: Mapping[str, Any], where: str) -> dict[str, Any]:
        """The values of ``section``'s keys found in ``table`` (or the environment)."""
        declared = list(keys(section))
        names = {name for name, _, _ in declared}
        self.problems += [f"{where}.{name}: unknown key" for name in table if name not in names]
        values: dict[str, Any] = {}
        # A dependent check comes after the keys that bound it.
        for name, spec, default in sorted(
            declared, key=lambda k: not isinstance(k[1].check, Check)
        ):
            value = self._value(table, where, name, spec, default, values)
            if value is not dataclasses.MISSING:
                values[name] = value
        return {name: values[name] for name, _, _ in declared if name in values}

    def _value(
        self,
        table: Mapping[str, Any],
        where: str,
        name: str,
        spec: Key,
        default: Any,
        values: Mapping[str, Any],
    ) -> Any:
        check = spec.check if isinstance(spec.check, Check) else spec.check(values)
        variable = env_name(where, name)
        if variable in self.environ:
            raw, source = _from_env(self.environ[variable], check), variable
        elif name in table:
            raw, source = table[name], f"{where}.{name}"
        else:
            if spec.required:
                self.problems.append(f"{where}.{name}: required")
            return default
        try:
            return check.convert(raw)
        except ValueError as exc:
            self.problems.append(f"{source}: {exc}")
            return default


def _from_env(text: str, check: Check[Any]) -> Any:
    """Environment values are strings; read numbers and lists as TOML would."""
    if not check.typed_env:
        return text
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
