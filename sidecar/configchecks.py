"""The value checks of config keys: each turns a TOML value into a typed one or says why not.

A ``Check`` pairs the conversion with what the documentation calls its type
("integer 0-10") and with how an environment override is read: as a TOML
value (numbers, booleans, lists) or as plain text. Each error message is the
part after the key's name; ``sidecar.configschema`` prefixes the key.
Pure module: no aiohttp, no redis.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")

API_NAME = re.compile(r"[a-z][a-z0-9_-]{0,62}")
TOKEN_PREFIX = re.compile(r"[a-z][a-z0-9]{0,15}")
HEADER_NAME = re.compile(r"[A-Za-z0-9-]{1,64}")
RESERVED_API_NAMES = frozenset({"admin"})


@dataclass(frozen=True)
class Check(Generic[T]):
    """How one key's value is checked, documented and read from the environment."""

    convert: Callable[[Any], T]
    #: The type column of docs/configuration.md.
    text: str
    #: An environment value is a TOML value (``"[1, 3]"``, ``"true"``), not plain text.
    typed_env: bool = True
    #: The key names a file or directory (relative: beside the config file), or a
    #: program (a bare name is looked up on PATH) (sidecar.configsources).
    path: str = ""


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def _host_port(value: Any) -> HostPort:
    text = str(value)
    match = re.fullmatch(r"\[([0-9a-fA-F:.]+)\]:(\d{1,5})|([^\s:\[\]]+):(\d{1,5})", text)
    if not match or not isinstance(value, str):
        raise ValueError(f"{text!r} is not host:port")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if port > 65535:
        raise ValueError(f"{text!r} has a port above 65535")
    return HostPort(host, port)


host_port = Check(_host_port, "host:port", typed_env=False)


def _host_ports(value: Any) -> tuple[HostPort, ...]:
    if not isinstance(value, list | tuple):
        raise ValueError(f"{value!r} is not a list")
    return tuple(_host_port(item) for item in value)


host_ports = Check(_host_ports, "list of host:port")


def integer(low: int, high: int | None = None, text: str = "") -> Check[int]:
    bound = f"between {low} and {high}" if high is not None else f"at least {low}"

    def convert(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{value!r} is not an integer")
        if value < low or (high is not None and value > high):
            raise ValueError(f"{value} must be {bound}")
        return value

    return Check(
        convert, text or (f"integer {low}-{high}" if high is not None else f"integer ≥ {low}")
    )


def _real(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{value!r} is not a number")
    return float(value)


def number(low: float, unit: str = "number") -> Check[float]:
    """A number above ``low``; ``unit`` ("seconds") only changes the documented type."""

    def convert(value: Any) -> float:
        if _real(value) <= low:
            raise ValueError(f"{value} must be greater than {low}")
        return float(value)

    return Check(convert, f"{unit} > {low:g}")


def _delay(value: Any) -> float:
    if not 0 <= _real(value) <= 10:
        raise ValueError(f"{value} must be between 0 and 10 seconds")
    return float(value)


delay = Check(_delay, "seconds 0-10")


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a string")
    return value


def string(pattern: re.Pattern[str] | None = None, text: str = "") -> Check[str]:
    def convert(value: Any) -> str:
        if pattern is not None and not pattern.fullmatch(_text(value)):
            raise ValueError(f"{value!r} does not match {pattern.pattern}")
        return _text(value)

    shown = f"string `{pattern.pattern}`" if pattern is not None else "string"
    return Check(convert, text or shown, typed_env=False)


def choice(*choices: str) -> Check[str]:
    def convert(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"{value!r} is not one of {', '.join(choices)}")
        return str(value)

    quoted = [f'`"{c}"`' for c in choices]
    return Check(convert, ", ".join(quoted[:-1]) + " or " + quoted[-1], typed_env=False)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{value!r} is not true or false")
    return value


boolean = Check(_bool, "boolean")

directory = Check(lambda value: Path(_text(value)), "path", typed_env=False, path="file")
#: An empty value means "not set" (None).
optional_file = Check(
    lambda value: Path(_text(value)) if _text(value) else None, "path", typed_env=False, path="file"
)
program = Check(lambda value: _text(value) or None, "string", typed_env=False, path="program")


def _redis_url(value: Any) -> str | None:
    if value is None or value == "":
        return None
    text = _text(value)
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 (raises ValueError on a port that is not a number)
    except ValueError:
        # Not echoed: what stands where the port should be may be a password.
        raise ValueError("is not a URL redis can read (is the port a number?)") from None
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError("must start with redis://, rediss:// or unix://")
    return text


redis_url = Check(_redis_url, "`redis://`, `rediss://` or `unix://` URL", typed_env=False)


def _months(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise ValueError(f"{value!r} is not a non-empty list of months")
    return tuple(integer(1, 120).convert(item) for item in value)


months = Check(_months, "list of integers 1-120")


def _api_name(value: Any) -> str:
    name = string(API_NAME).convert(value)
    if name in RESERVED_API_NAMES:
        raise ValueError(f"{name!r} is reserved for the admin API")
    return name


api_name = Check(_api_name, f"string `{API_NAME.pattern}`", typed_env=False)


def _prefix(value: Any) -> str:
    text = _text(value)
    if not re.fullmatch(r"/([A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*)?", text):
        raise ValueError(f"{text!r} is not a path prefix like /orders (no trailing slash)")
    if any(segment in (".", "..") for segment in text.split("/")):
        raise ValueError(f"{text!r} contains a dot segment")
    if text.startswith("/_keystile"):
        raise ValueError(f"{text!r} is reserved for Keystile's own endpoints")
    return text


path_prefix = Check(_prefix, "path", typed_env=False)


def _upstream(value: Any) -> str:
    text = _text(value)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{text!r} is not an http:// or https:// URL")
    if parts.query or parts.fragment:
        raise ValueError(f"{text!r} must not carry a query or fragment")
    return text.rstrip("/")


upstream_url = Check(_upstream, "`http://` or `https://` URL", typed_env=False)
