"""The private embedded redis-server: persistent, private, found again by bootstrap."""

from __future__ import annotations

import os
import stat
import subprocess
import time
from pathlib import Path

import pytest
import redis

from sidecar.ops import embedded
from sidecar.ops.embedded import EmbeddedError, EmbeddedRedis


def _client(data_dir: Path) -> redis.Redis:
    return redis.Redis(unix_socket_path=str(embedded.socket_path(data_dir)))


def test_data_survives_a_restart(tmp_path: Path) -> None:
    """What was written before a stop is there after the next start (append-only file)."""
    server = EmbeddedRedis(tmp_path / "data")
    server.start()
    _client(tmp_path / "data").set("k", "v")
    server.stop()
    assert (tmp_path / "data" / "appendonly.aof").stat().st_size > 0
    again = EmbeddedRedis(tmp_path / "data")
    again.start()
    try:
        assert _client(tmp_path / "data").get("k") == b"v"
    finally:
        again.stop()


def test_it_listens_only_on_a_private_socket(tmp_path: Path) -> None:
    """The server opens no TCP port, and its socket is reachable by the owner only."""
    server = EmbeddedRedis(tmp_path / "data")
    server.start()
    try:
        config = _client(tmp_path / "data").config_get("port")
        assert config["port"] == "0"
        mode = os.stat(embedded.socket_path(tmp_path / "data")).st_mode
        assert stat.S_IMODE(mode) & 0o077 == 0
        assert embedded.is_running(tmp_path / "data")
    finally:
        server.stop()
    assert not embedded.is_running(tmp_path / "data")


def test_a_second_server_on_the_same_data_is_refused(tmp_path: Path) -> None:
    """Two embedded servers never share one data directory."""
    first = EmbeddedRedis(tmp_path / "data")
    first.start()
    try:
        with pytest.raises(EmbeddedError, match=r"redis\.data_dir"):
            EmbeddedRedis(tmp_path / "data").start()
    finally:
        first.stop()


def test_a_leftover_server_on_the_data_is_refused_naming_its_pid(tmp_path: Path) -> None:
    """A redis-server still serving the data directory, unlocked, is named by its pid."""
    data = tmp_path / "data"
    data.mkdir()
    command = [embedded.find_binary(None), "--port", "0", "--save", "", "--dir", str(data)]
    leftover = subprocess.Popen(
        [*command, "--unixsocket", str(embedded.socket_path(data))], stdout=subprocess.DEVNULL
    )
    try:
        while not embedded.is_running(data):
            assert leftover.poll() is None
            time.sleep(0.02)
        with pytest.raises(EmbeddedError, match=rf"redis\.data_dir: .*process {leftover.pid}\b"):
            EmbeddedRedis(data).start()
    finally:
        leftover.kill()
        leftover.wait()


def test_a_missing_binary_names_the_key(tmp_path: Path) -> None:
    """A configured binary that does not exist is reported under redis.server_binary."""
    with pytest.raises(EmbeddedError, match=r"redis\.server_binary"):
        EmbeddedRedis(tmp_path / "data", binary=str(tmp_path / "nope")).start()


def test_an_overlong_data_dir_is_refused_clearly(tmp_path: Path) -> None:
    """A data directory too long for a Unix socket is refused with a message naming the key."""
    deep = tmp_path / ("d" * 120)
    with pytest.raises(EmbeddedError, match=r"redis\.data_dir: .* too long"):
        EmbeddedRedis(deep).start()
