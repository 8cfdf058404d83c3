"""The management command line (spec section 7): the installed ``keystile`` against a real serve."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from tests.kits.cli import Deployment, deployment

TOKEN_HEADERS = ["Client ID", "User", "Description", "Role", "Status", "Created", "Expires",
                 "Last access"]  # fmt: skip


@pytest.fixture(scope="module")
def ks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with deployment(tmp_path_factory.mktemp("cli")) as running:
        yield running


def new_token(ks: Deployment, user: str, *flags: str) -> tuple[str, str]:
    """A user (made if needed) and a token for it, through the CLI: (client_id, token)."""
    ks.cli("users", "create", user)
    body = ks.ok("tokens", "create", "--user", user, *flags, "--json").json()
    return body["client_id"], body["token"]


def test_a_token_created_by_the_cli_passes_the_proxy_until_revoked(ks: Deployment) -> None:
    """A token from `tokens create --quiet` is let through, and refused once `tokens revoke` ran."""
    ks.ok("users", "create", "svc", "--display-name", "Deploy bot")
    token = ks.ok("tokens", "create", "--user", "svc", "--access", "orders=read", "-q").out.strip()
    assert (ks.proxy_get("/orders/1", token)) == (200, {"user": "svc"})
    client_id = token.split("_")[1]
    revoked = ks.ok("tokens", "revoke", client_id)
    assert "revoked" in revoked.out
    assert re.search(r"Propagation +(\d+) of \1 replicas, [\d.]+ ms$", revoked.out, re.M)
    assert ks.proxy_get("/orders/1", token)[0] == 401


def test_create_prints_the_token_once_on_the_last_line(ks: Deployment) -> None:
    """In table mode the record comes first, the token alone last, the note on stderr only."""
    ks.cli("users", "create", "ci")
    result = ks.ok("tokens", "create", "--user", "ci", "--description", "CI deploys",
                   "--access", "orders=full")  # fmt: skip
    lines = result.out.rstrip("\n").splitlines()
    token = lines[-1]
    assert token.startswith("ks_") and "CI deploys" in result.out
    assert result.out.count(token) == 1
    assert "will not be shown again" in result.err and token not in result.err
    assert ks.proxy_get("/orders/9", token) == (200, {"user": "ci"})


def test_list_is_a_table_with_the_console_columns(ks: Deployment) -> None:
    """`tokens list` prints the console's headers, one row per token, no escape codes in a pipe."""
    client_id, _ = new_token(ks, "tabled", "--description", "tabled one")
    out = ks.ok("tokens", "list", "--user", "tabled").out
    header, *rows = out.splitlines()
    assert header.split("  ")[0] == "Client ID"
    positions = [header.index(name) for name in TOKEN_HEADERS]
    assert positions == sorted(positions)
    assert len(rows) == 1 and rows[0].startswith(client_id) and "tabled one" in rows[0]
    assert rows[0][header.index("Status") :].startswith("active")
    assert "\x1b[" not in out


def test_json_is_exactly_the_admin_api_body(ks: Deployment) -> None:
    """`--json` (before or after the words) prints what the admin API answers."""
    client_id, _ = new_token(ks, "jsoned")
    shown = ks.ok("tokens", "show", client_id, "--json").json()
    assert shown == ks.admin_get(f"/tokens/{client_id}")
    listed = ks.ok("--json", "tokens", "list", "--user", "jsoned").json()
    assert listed == ks.admin_get("/tokens?user=jsoned")
    assert ks.ok("apis", "--json").json() == ks.admin_get("/apis")


def test_list_filters_pages_and_all(ks: Deployment) -> None:
    """--search is the API's q, --limit pages (noting what is left), --all gets every one."""
    for n in range(3):
        new_token(ks, "pager", "--description", f"page-{n}")
    one = ks.ok("tokens", "list", "--search", "page-1", "--json").json()
    assert [item["description"] for item in one["items"]] == ["page-1"]
    first = ks.ok("tokens", "list", "--user", "pager", "--limit", "2", "--order", "description")
    assert len(first.out.splitlines()) == 3 and "2 of 3 shown" in first.err
    every = ks.ok(
        "tokens",
        "list",
        "--user",
        "pager",
        "--limit",
        "2",
        "--all",
        "--order",
        "-description",
        "--json",
    ).json()
    assert [i["description"] for i in every["items"]] == ["page-2", "page-1", "page-0"]
    assert every["total"] == 3


def test_edit_replaces_the_access_map_and_drops_the_role(ks: Deployment) -> None:
    """`edit --access` sets the whole map; `--no-role` sends role null."""
    ks.ok("roles", "set", "editors", "--access", "orders=read")
    client_id, _ = new_token(ks, "edited", "--role", "editors", "--access", "orders=full",
                             "--access", "*=read")  # fmt: skip
    args = ("tokens", "edit", client_id, "--access", "orders=none", "--no-role", "--json")
    edited = ks.ok(*args).json()
    assert (edited["access"], edited["role"]) == ({"orders": "none"}, None)
    assert ks.cli("tokens", "edit", client_id).code == 2  # nothing to change


def test_regenerate_with_grace_keeps_the_old_secret_for_a_while(ks: Deployment) -> None:
    """`regenerate --grace`: a new working token, the old one works meanwhile, history says so."""
    client_id, old = new_token(ks, "rotated", "--access", "orders=read")
    new = ks.ok("tokens", "regenerate", client_id, "--grace", "600", "--quiet").out.strip()
    assert new != old and new.split("_")[1] == client_id
    assert ks.proxy_get("/orders/1", new)[0] == 200
    assert ks.proxy_get("/orders/1", old)[0] == 200
    history = ks.ok("tokens", "history", client_id).out
    assert history.splitlines()[0].split() == ["Time", "Actor", "Action", "Changes"]
    assert "regenerated" in history and "created" in history


def test_show_has_the_grace_block_and_end_grace_ends_it(ks: Deployment) -> None:
    """`tokens show` lists who used the old secret; `end-grace` (and `me`'s) stops it."""
    client_id, old = new_token(ks, "graced", "--access", "orders=read")
    new = ks.ok("tokens", "regenerate", client_id, "--grace", "600", "--quiet").out.strip()
    assert ks.proxy_get("/orders/1", old)[0] == 200
    for _ in range(40):  # the uses are written within a second
        if ks.admin_get(f"/tokens/{client_id}")["grace"]["old_secret_uses"]:
            break
        time.sleep(0.1)
    shown = ks.ok("tokens", "show", client_id).out
    assert "Grace period" in shown and "Old secret uses" in shown
    headers = ["Address", "User", "agent", "Uses", "Last", "use"]
    assert headers in [line.split() for line in shown.splitlines()]
    assert ks.ok("tokens", "show", client_id, "--json").json() == ks.admin_get(
        f"/tokens/{client_id}"
    )
    ended = ks.ok("tokens", "end-grace", client_id, "--json").json()
    assert ended["grace"] is None and ks.proxy_get("/orders/1", old)[0] == 401
    assert ks.cli("tokens", "end-grace", client_id).code != 0
    newest = ks.ok("tokens", "regenerate", client_id, "--grace", "600", "--quiet").out.strip()
    ks.ok("me", "tokens", "end-grace", client_id, token=newest)  # self-service
    assert ks.proxy_get("/orders/1", new)[0] == 401


def test_revoke_and_delete_several_and_by_user(ks: Deployment) -> None:
    """Several IDs use the bulk calls; --user revokes all of a user's; deleted ones are gone."""
    (a, _), (b, _) = new_token(ks, "bulk"), new_token(ks, "bulk")
    assert "revoked 2" in ks.ok("tokens", "revoke", a, b).out
    assert ks.ok("tokens", "delete", a, b, "--yes", "--json").json()["deleted"] == 2
    assert ks.cli("tokens", "show", a).code == 1
    c, token = new_token(ks, "bulk", "--access", "orders=read")
    assert ks.ok("tokens", "revoke", "--user", "bulk", "--yes", "--json").json()["revoked"] == 1
    assert ks.proxy_get("/orders/1", token)[0] == 401
    assert "deleted token" in ks.ok("tokens", "delete", c, "-y").out


def test_deleting_without_yes_off_a_terminal_is_exit_2(ks: Deployment) -> None:
    """delete and revoke --user need --yes off a terminal, and change nothing without it."""
    client_id, token = new_token(ks, "careful", "--access", "orders=read")
    for args in (("tokens", "delete", client_id), ("tokens", "revoke", "--user", "careful"),
                 ("users", "delete", "careful")):  # fmt: skip
        refused = ks.cli(*args)
        assert refused.code == 2 and "--yes" in refused.err
    assert ks.proxy_get("/orders/1", token)[0] == 200


def test_users_create_show_list_edit_delete(ks: Deployment) -> None:
    """users: create, show, search; --inactive refuses its tokens; delete removes them."""
    ks.ok("users", "create", "ops", "--display-name", "Ops Team", "--email", "ops@example.org")
    assert "ops@example.org" in ks.ok("users", "show", "ops").out
    found = ks.ok("users", "list", "--search", "example.org", "--json").json()
    assert [user["username"] for user in found["items"]] == ["ops"]
    assert ks.ok("users", "list").out.splitlines()[0].split("  ")[0] == "Username"
    _, token = new_token(ks, "ops", "--access", "orders=read")
    assert ks.ok("users", "edit", "ops", "--inactive", "--json").json()["active"] is False
    assert ks.proxy_get("/orders/1", token)[0] == 401
    ks.ok("users", "edit", "ops", "--active")
    assert ks.proxy_get("/orders/1", token)[0] == 200
    ks.ok("users", "delete", "ops", "--yes")
    assert ks.cli("users", "show", "ops").code == 1
    assert ks.proxy_get("/orders/1", token)[0] == 401


def test_roles_set_show_list_delete(ks: Deployment) -> None:
    """roles: set creates and changes (keeping what is not given), a role in use is not deleted."""
    ks.ok("roles", "set", "reader", "--access", "orders=read", "--description", "Read only")
    changed = ks.ok("roles", "set", "reader", "--access", "orders=full", "--json").json()
    changed.pop("propagation")
    assert changed == {"name": "reader", "description": "Read only", "access": {"orders": "full"}}
    assert "orders=full" in ks.ok("roles", "show", "reader").out
    assert "reader" in ks.ok("roles", "list").out
    client_id, _ = new_token(ks, "roled", "--role", "reader")
    in_use = ks.cli("roles", "delete", "reader", "--yes")
    assert in_use.code == 1 and "409" in in_use.err
    ks.ok("tokens", "delete", client_id, "--yes")
    ks.ok("roles", "delete", "reader", "--yes")
    assert ks.cli("roles", "show", "reader").code == 1


def test_apis_and_audit(ks: Deployment) -> None:
    """apis lists the configured API; audit shows the newest changes first, --since filters."""
    assert ks.ok("apis").out.splitlines()[1].split() == ["orders", "/orders"]
    ks.ok("users", "create", "audited")
    newest = ks.ok("audit", "--limit", "1", "--json").json()["items"]
    assert [(e["action"], e["target"]) for e in newest] == [("created", "audited")]
    assert "audited" in ks.ok("audit", "--limit", "3").out
    assert ks.ok("audit", "--since", "2999-01-01T00:00:00Z", "--json").json() == {"items": []}


def test_me_for_a_self_service_token(ks: Deployment) -> None:
    """me shows the caller; me tokens list/create/revoke/delete act on its own tokens only."""
    _, mine = new_token(ks, "selfie", "--access", "orders=full")
    assert "selfie" in ks.ok("me", token=mine).out
    made = ks.ok("me", "tokens", "create", "--access", "orders=read", "--quiet", token=mine)
    own = made.out.strip()
    assert ks.proxy_get("/orders/1", own) == (200, {"user": "selfie"})
    listed = ks.ok("me", "tokens", "list", "--json", token=mine).json()
    assert {item["user"] for item in listed["items"]} == {"selfie"} and listed["total"] == 2
    ks.ok("me", "tokens", "revoke", own.split("_")[1], token=mine)
    assert ks.proxy_get("/orders/1", own)[0] == 401
    ks.ok("me", "tokens", "delete", own.split("_")[1], "--yes", token=mine)
    assert ks.cli("tokens", "list", token=mine).code == 1  # no level on admin


# -- least privilege from observed use (admin/cli_advice.py) --------------------


def test_usage_and_advice_then_apply_with_yes(ks: Deployment) -> None:
    """tokens usage and advice show the counted GETs; advice --apply needs --yes, then tightens."""
    client_id, token = new_token(ks, "watched", "--access", "orders=full")
    assert ks.proxy_get("/orders/1", token)[0] == 200
    for _ in range(60):  # the flusher writes within a second
        usage = ks.ok("tokens", "usage", client_id, "--json").json()
        if usage["items"][0]["safe"]:
            break
        time.sleep(0.05)
    table = ks.ok("tokens", "usage", client_id, "--days", "7").out
    advice = ks.ok("tokens", "advice", client_id).out
    as_json = ks.ok("tokens", "advice", client_id, "--json").json()
    from_api = ks.admin_get(f"/tokens/{client_id}/advice")
    refused = ks.cli("tokens", "advice", client_id, "--apply")
    applied = ks.ok("tokens", "advice", client_id, "--apply", "--yes", "--json").json()

    assert usage["items"][0] == {**usage["items"][0], "api": "orders", "safe": 1, "unsafe": 0}
    assert "orders" in table and "Unsafe" in table
    assert "full -> read" in advice
    assert as_json == from_api
    assert refused.code == 2 and "--yes" in refused.err
    assert applied["access"] == {"orders": "read", "admin": "none"}
