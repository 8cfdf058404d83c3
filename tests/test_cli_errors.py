"""The command line's edges: exit codes, where and who, help, completion, terminals, https."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kits.cli import Deployment, deployment, https_front, on_terminal, run_cli
from tests.kits.redis import free_port


@pytest.fixture(scope="module")
def ks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with deployment(tmp_path_factory.mktemp("cli-errors")) as running:
        running.ok("users", "create", "svc")
        yield running


def test_a_refused_field_is_exit_1_with_the_field_named(ks: Deployment) -> None:
    """A level the API refuses is exit 1, with the dotted field and the API's message."""
    result = ks.cli("tokens", "create", "--user", "svc", "--access", "orders=sudo")
    assert result.code == 1
    assert result.err.startswith("keystile: access.orders: ") and "none, read, full" in result.err
    assert result.out == "" and "Traceback" not in result.err
    unknown = ks.cli("tokens", "create", "--user", "nobody")
    assert unknown.code == 1 and "user:" in unknown.err


def test_a_bad_credential_is_exit_1_without_the_secret(ks: Deployment) -> None:
    """A wrong token is exit 1 naming what to check; the token itself never reaches stderr."""
    wrong = ks.admin_token[:-8] + "AAAAAAAA"
    result = ks.cli("apis", token=wrong)
    assert result.code == 1 and "401" in result.err and "KEYSTILE_TOKEN" in result.err
    assert wrong not in result.err and wrong.split("_")[2][:20] not in result.err


def test_an_unreachable_admin_url_is_exit_1_naming_it() -> None:
    """A closed port is exit 1 with the URL (without any password in it) and what to check."""
    url = f"http://127.0.0.1:{free_port()}"
    result = run_cli("apis", "--admin-url", url.replace("//", "//ops:hunter2@"),
                     env={"KEYSTILE_TOKEN": "ks_x"})  # fmt: skip
    assert result.code == 1
    shown = url.replace("//", "//***@")  # the userinfo masked, as every logged URL is
    assert shown in result.err and "--admin-url" in result.err and "hunter2" not in result.err


@pytest.mark.parametrize(
    "args",
    [
        ("tokens", "frobnicate"),
        ("tokens", "list", "--status", "lost"),
        ("tokens", "create", "--user", "svc", "--access", "orders"),
        ("tokens", "create", "--user", "svc", "--expires-in-months", "3", "--expires-at", "x"),
        ("tokens", "revoke"),
        ("tokens", "edit", "abc", "--role", "r", "--no-role"),
        ("users", "edit", "svc"),
        ("completion", "fish"),
    ],
)
def test_usage_errors_are_exit_2(args: tuple[str, ...]) -> None:
    """A command line that cannot be run is exit 2 before any call, with no traceback."""
    result = run_cli(
        *args, env={"KEYSTILE_TOKEN": "ks_x", "KEYSTILE_ADMIN_URL": "http://127.0.0.1:9"}
    )
    assert result.code == 2, result.err
    assert "Traceback" not in result.err and "cannot reach" not in result.err


def test_no_credential_is_exit_2() -> None:
    """Without KEYSTILE_TOKEN or --token-file the command says how to give one."""
    result = run_cli("apis")
    assert result.code == 2 and "KEYSTILE_TOKEN" in result.err and "--token-file" in result.err


def test_the_admin_url_comes_from_the_config_and_the_token_from_a_file(
    ks: Deployment, tmp_path: Path
) -> None:
    """--config FILE gives admin.listen; --token-file reads a file or stdin ('-'), once."""
    secret = tmp_path / "token"
    secret.write_text(ks.admin_token + "\n")
    from_file = run_cli("apis", "--config", str(ks.config), "--token-file", str(secret))
    assert from_file.code == 0 and "orders" in from_file.out, from_file.err
    piped = run_cli("--config", str(ks.config), "apis", "--token-file", "-", stdin=ks.admin_token)
    assert piped.code == 0 and "orders" in piped.out, piped.err
    # roles set reads the role, then writes it: two calls on the one credential stdin gave
    role = ("roles", "set", "piped", "--access", "orders=read", "--token-file", "-")
    twice = run_cli(*role, "--admin-url", ks.admin_url, stdin=ks.admin_token)
    assert twice.code == 0, twice.err


def test_an_https_admin_url_with_a_private_ca(ks: Deployment, tmp_path: Path) -> None:
    """https:// is refused for an unknown CA (saying --ca-file), and works with --ca-file."""
    with https_front(ks.admin_port, tmp_path) as (url, ca_file):
        untrusted = ks.cli("apis", "--admin-url", url)
        assert untrusted.code == 1 and "--ca-file" in untrusted.err
        trusted = ks.ok("apis", "--admin-url", url, "--ca-file", str(ca_file))
        assert "orders" in trusted.out


def test_version_and_help_on_every_level() -> None:
    """--version answers; every group and command has help with an example, no reST backticks."""
    version = run_cli("--version")
    assert version.code == 0 and version.out.startswith("keystile, version ")
    for words in (
        (), ("tokens",), ("tokens", "create"), ("tokens", "revoke"), ("users",), ("users", "edit"),
        ("roles", "set"), ("apis",), ("audit",), ("me",), ("me", "tokens", "create"),
        ("serve",), ("bootstrap",), ("completion",),
    ):  # fmt: skip
        shown = run_cli(*words, "--help")
        assert shown.code == 0, words
        assert "Example" in shown.out and "``" not in shown.out, words


def test_completion_scripts_for_bash_and_zsh() -> None:
    """`completion bash|zsh` prints a script, and the command completes its own words."""
    assert (
        "complete -o nosort -F _keystile_completion keystile" in run_cli("completion", "bash").out
    )
    assert "#compdef keystile" in run_cli("completion", "zsh").out
    env = {"_KEYSTILE_COMPLETE": "bash_complete", "COMP_WORDS": "keystile tokens re",
           "COMP_CWORD": "2"}  # fmt: skip
    assert run_cli(env=env).out.split() == ["plain,regenerate", "plain,revoke"]


def test_on_a_terminal_delete_asks_and_tables_have_colour_and_local_time(ks: Deployment) -> None:
    """A terminal gets a question before deleting, coloured statuses and local timestamps."""
    client_id = ks.ok("tokens", "create", "--user", "svc", "--json").json()["client_id"]
    env = {"KEYSTILE_ADMIN_URL": ks.admin_url, "KEYSTILE_TOKEN": ks.admin_token, "TZ": "Asia/Tokyo"}
    code, shown = on_terminal("tokens", "delete", client_id, env=env, answer="n\n")
    assert code == 1 and f"Delete token {client_id} for good? [y/N]" in shown
    code, shown = on_terminal("tokens", "list", "--user", "svc", env=env)
    assert code == 0 and "\x1b[32mactive" in shown and " JST" in shown
    code, shown = on_terminal("tokens", "list", "--user", "svc", env={**env, "NO_COLOR": "1"})
    assert code == 0 and "\x1b[" not in shown
    code, shown = on_terminal("tokens", "delete", client_id, env=env, answer="y\n")
    assert code == 0 and ks.cli("tokens", "show", client_id).code == 1


def test_an_unreachable_admin_url_is_shown_without_its_credentials() -> None:
    """A dead admin URL with user:password and ?token= is named in the error, masked."""
    url = f"http://ops:s3cret@127.0.0.1:{free_port()}/?token=s3cret"
    result = run_cli("apis", env={"KEYSTILE_TOKEN": "ks_x", "KEYSTILE_ADMIN_URL": url})
    assert result.code == 1, result.err
    assert "cannot reach the admin API at http://***@127.0.0.1:" in result.err
    assert "s3cret" not in result.out + result.err
