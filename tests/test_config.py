"""Config: TOML plus environment, validated as a whole (spec sections 5 and 6)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from sidecar.config import ConfigError, HostPort, load, parse

ROOT = Path(__file__).resolve().parent.parent


def _problems(raw: dict[str, object], environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(raw, environ or {})
    return caught.value.problems


def test_defaults_match_the_spec() -> None:
    """With no file the listeners, prefix and expiry choices are those of spec section 6."""
    config = parse({}, {})
    assert config.proxy.listen == HostPort("127.0.0.1", 8080)
    assert config.admin.listen == HostPort("127.0.0.1", 8081)
    assert config.redis.url is None
    assert config.tokens.prefix == "ks"
    assert config.tokens.expiry_months_choices == (3, 6, 12)
    assert config.tokens.default_expiry_months == 6
    assert config.proxy.max_body_bytes == 100 * 1024 * 1024
    assert config.admin.max_body_bytes == 64 * 1024


def test_example_config_is_valid_and_documents_every_section() -> None:
    """config.example.toml loads, and names every section the parser knows."""
    config = load(ROOT / "config.example.toml", {})
    assert [api.name for api in config.apis] == ["orders"]
    text = (ROOT / "config.example.toml").read_text()
    for section in ("proxy", "admin", "redis", "tokens", "hashing", "headers", "log"):
        assert f"[{section}]" in text
    raw = tomllib.loads(text)
    for section, table in raw.items():
        if isinstance(table, dict):
            defaults = getattr(config, section)
            for key in table:
                assert hasattr(defaults, key), f"{section}.{key} documented but unknown"


def test_environment_overrides_the_file() -> None:
    """KEYSTILE_<SECTION>_<KEY> wins over the file, for strings and numbers alike."""
    environ = {
        "KEYSTILE_REDIS_URL": "redis://cache:6379/2",
        "KEYSTILE_PROXY_LISTEN": "0.0.0.0:9090",
        "KEYSTILE_TOKENS_MAX_GRACE_SECONDS": "60",
    }
    config = parse({"redis": {"url": "redis://other:6379/0"}}, environ)
    assert config.redis.url == "redis://cache:6379/2"
    assert config.proxy.listen == HostPort("0.0.0.0", 9090)
    assert config.tokens.max_grace_seconds == 60


def test_every_problem_is_reported_at_once_with_its_key() -> None:
    """A config with several mistakes lists each one, naming its dotted key."""
    problems = _problems(
        {
            "proxy": {"listen": "notaport"},
            "tokens": {"prefix": "Bad_Prefix", "default_expiry_months": 5},
            "apis": [{"name": "admin", "prefix": "/a", "upstream": "ftp://x"}],
            "bogus": {},
        }
    )
    text = "\n".join(problems)
    assert "proxy.listen: 'notaport' is not host:port" in text
    assert "tokens.prefix:" in text
    assert "tokens.default_expiry_months:" in text
    assert "apis[0].name: 'admin' is reserved" in text
    assert "apis[0].upstream:" in text
    assert "bogus: unknown section" in text


def test_environment_mistakes_name_the_variable() -> None:
    """A bad environment override is reported under the variable's name."""
    problems = _problems({}, {"KEYSTILE_ADMIN_LISTEN": "nope"})
    assert problems == ["KEYSTILE_ADMIN_LISTEN: 'nope' is not host:port"]


@pytest.mark.parametrize(
    ("api", "key"),
    [
        ({"prefix": "/a", "upstream": "http://x"}, "apis[0].name: required"),
        ({"name": "a", "prefix": "a/", "upstream": "http://x"}, "apis[0].prefix:"),
        ({"name": "a", "prefix": "/a/../b", "upstream": "http://x"}, "apis[0].prefix:"),
        ({"name": "a", "prefix": "/a", "upstream": "http://x", "timeout": 0}, "apis[0].timeout:"),
        ({"name": "a", "prefix": "/a", "upstream": "http://x", "colour": 1}, "apis[0].colour:"),
    ],
)
def test_bad_api_entries_are_named(api: dict[str, object], key: str) -> None:
    """Each kind of bad [[apis]] entry is reported with its index and key."""
    assert any(problem.startswith(key) for problem in _problems({"apis": [api]}))


def test_duplicate_api_names_and_prefixes_are_refused() -> None:
    """Two APIs cannot share a name or a prefix."""
    api = {"name": "a", "prefix": "/a", "upstream": "http://x"}
    problems = _problems({"apis": [api, dict(api)]})
    assert any("declared twice" in p for p in problems)


def test_missing_and_broken_files_give_one_clear_problem(tmp_path: Path) -> None:
    """A missing file and a file that is not TOML each give one line naming the file."""
    with pytest.raises(ConfigError) as missing:
        load(tmp_path / "nope.toml", {})
    assert missing.value.problems == [f"config file {str(tmp_path / 'nope.toml')!r} does not exist"]
    broken = tmp_path / "broken.toml"
    broken.write_text("[proxy\nlisten=")
    with pytest.raises(ConfigError) as bad:
        load(broken, {})
    assert "is not valid TOML" in bad.value.problems[0]


def test_ipv6_listen_address_is_accepted() -> None:
    """[::1]:8080 is a valid listen address."""
    assert parse({"proxy": {"listen": "[::1]:8080"}}, {}).proxy.listen == HostPort("::1", 8080)


def test_relative_paths_are_read_from_the_config_files_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """data_dir (given or default) and a server_binary path sit beside the file; bare names stay."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    given = tmp_path / "given.toml"
    given.write_text('[redis]\ndata_dir = "store"\nserver_binary = "bin/redis-server"\n')
    default = tmp_path / "default.toml"
    default.write_text('[redis]\nserver_binary = "redis-server"\n')

    from_given, from_default = load(given, {}), load(default, {})

    assert from_given.redis.data_dir == tmp_path / "store"
    assert from_given.redis.server_binary == str(tmp_path / "bin" / "redis-server")
    assert from_default.redis.data_dir == tmp_path / "keystile-data"
    assert from_default.redis.server_binary == "redis-server"


def test_absolute_paths_and_environment_paths_are_kept_as_given(tmp_path: Path) -> None:
    """An absolute data_dir stays; KEYSTILE_REDIS_DATA_DIR is relative to the current directory."""
    config = tmp_path / "keystile.toml"
    config.write_text('[redis]\ndata_dir = "/var/lib/keystile"\n')

    assert load(config, {}).redis.data_dir == Path("/var/lib/keystile")
    assert load(config, {"KEYSTILE_REDIS_DATA_DIR": "here"}).redis.data_dir == Path("here")


def test_a_misspelt_keystile_variable_is_a_problem_naming_it() -> None:
    """KEYSTILE_PROXY_LISTN is reported with its likely meaning; real overrides are not."""
    environ = {
        "KEYSTILE_PROXY_LISTN": "0.0.0.0:80",
        "KEYSTILE_PROXY_LISTEN": "0.0.0.0:81",
        "KEYSTILE_TOKEN": "ks_for_the_cli",
        "KEYSTILE_ADMIN_URL": "http://127.0.0.1:8081",
        "OTHER_PROGRAM_SETTING": "x",
    }

    problems = _problems({}, environ)

    assert problems == [
        "KEYSTILE_PROXY_LISTN: unknown environment variable, no config key has it "
        "(did you mean KEYSTILE_PROXY_LISTEN?)"
    ]


def test_every_config_key_has_an_override_that_is_not_refused() -> None:
    """Each scalar key of every section may be set as KEYSTILE_<SECTION>_<KEY> without a problem."""
    config = parse({}, {})
    sections = ("proxy", "admin", "redis", "tokens", "hashing", "cache", "limits", "headers", "log")
    for section in sections:
        for key in getattr(config, section).__dataclass_fields__:
            name = f"KEYSTILE_{section}_{key}".upper()
            problems = _problems({"bogus": 1}, {name: "@"})
            assert not any("unknown environment variable" in p for p in problems), name


def test_redis_max_connections_defaults_to_200_and_must_be_positive() -> None:
    """redis.max_connections is 200 unless set; 0 or a string stops the start naming the key."""
    assert parse({}, {}).redis.max_connections == 200
    assert parse({"redis": {"max_connections": 8}}, {}).redis.max_connections == 8
    for bad in (0, "many"):
        [problem] = _problems({"redis": {"max_connections": bad}})
        assert problem.startswith("redis.max_connections:")


def test_a_redis_url_that_cannot_be_parsed_is_refused_without_echoing_it() -> None:
    """A password where the port should be is refused naming redis.url, never shown."""
    [problem] = _problems({"redis": {"url": "redis://app:s3cret/0"}})
    assert problem.startswith("redis.url:") and "s3cret" not in problem


def test_connection_bounds_default_to_the_spec_and_are_validated_per_listener() -> None:
    """Both listeners default to the spec's connection bounds; a bad one names its key."""
    # The spec's bounds: header_timeout 10, idle_timeout 75 and max_connections 10000.
    config = parse({"admin": {"idle_timeout": 5}}, {"KEYSTILE_PROXY_MAX_CONNECTIONS": "7"})
    assert (config.proxy.header_timeout, config.proxy.idle_timeout) == (10.0, 75.0)
    assert (config.proxy.max_connections, config.admin.max_connections) == (7, 10_000)
    assert config.admin.idle_timeout == 5.0
    problems = _problems(
        {"proxy": {"header_timeout": 0}, "admin": {"max_connections": 0, "idle_timeout": "1"}}
    )
    assert problems == [
        "proxy.header_timeout: 0 must be greater than 0",
        "admin.idle_timeout: '1' is not a number",
        "admin.max_connections: 0 must be at least 1",
    ]
