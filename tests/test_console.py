"""The web console in a real Chromium, against ``keystile serve`` with two workers.

Each test drives the console by the accessible names a user sees ("Token",
"Sign in", "Delete selected"...), in its own browser context, on records of
its own. The main pages are photographed on the way (into docs/screenshots/ with
KEYSTILE_SCREENSHOTS=1, to refresh the pictures of docs/console.md).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
import redis
from playwright.sync_api import Page, expect

from tests.kits.console import Console, running


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    with running(tmp_path_factory.mktemp("console")) as started:
        yield started


def rows(page: Page) -> list[str]:
    """The client ids of the token table, top to bottom."""
    return page.locator("table.tokens tbody a.client-id").all_inner_texts()


def test_sign_in_opens_the_token_list_with_a_strict_cookie(console: Console) -> None:
    """Signing in with a token shows Tokens; the cookie is HttpOnly, Strict, and not the token."""
    page = console.page()
    response = page.goto(console.admin_url + "/")
    assert response is not None
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    console.screenshot(page, "sign-in")

    page.get_by_label("Token").fill(console.root)
    page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("heading", name="Tokens")).to_be_visible()
    (cookie,) = page.context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and not cookie["secure"]
    secret = console.root.split("_")[2]
    assert secret[:16] not in cookie["value"] and secret[:16] not in page.url
    assert page.evaluate("JSON.stringify(localStorage) + JSON.stringify(sessionStorage)") == "{}{}"
    headers = response.headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-content-type-options"] == "nosniff"


def test_a_wrong_token_is_shown_next_to_the_token_field(console: Console) -> None:
    """A wrong token leaves the sign-in form with the API's message beside "Token"."""
    page = console.page()
    page.goto(console.admin_url + "/")

    page.get_by_label("Token").fill("ks_nope")
    page.get_by_role("button", name="Sign in").click()

    expect(page.locator(".error")).to_contain_text("not valid")
    expect(page.get_by_label("Token")).to_have_attribute("aria-invalid", "true")


def test_a_new_token_is_shown_once_and_never_after_a_reload(console: Console) -> None:
    """Add token: the secret dialog shows a working token once; after a reload it is gone."""
    console.api("POST", "/users", {"username": "olga", "display_name": "Olga N."})
    page = console.signed_in()
    page.get_by_role("link", name="Add token").click()
    expect(page.get_by_role("heading", name="Add token")).to_be_visible()
    page.get_by_label("User").select_option("olga")
    page.get_by_label("Description").fill("olga's ci runner")
    page.get_by_role("row", name=re.compile("^orders")).get_by_label("Full access").check()
    console.screenshot(page, "add-token")

    page.get_by_role("button", name="Save", exact=True).click()

    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("button", name="Copy")).to_be_visible()
    expect(dialog).to_contain_text("cannot be shown again")
    token = dialog.get_by_label("New token").input_value()
    client_id = dialog.locator("code.client-id").inner_text()
    assert token.startswith(f"ks_{client_id}_")
    console.screenshot(page, "secret-dialog")
    page.keyboard.press("Escape")  # the dialog waits for the confirmation
    expect(dialog).to_be_visible()
    assert console.proxy_status(token) == 200
    dialog.get_by_role("button", name="I have saved the secret").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    assert token not in page.content()
    page.reload()
    page.goto(f"{console.admin_url}/#/tokens/{client_id}")
    expect(page.get_by_role("heading", name=f"Token {client_id}")).to_be_visible()
    assert token.split("_")[2] not in page.content()


def test_clicking_headers_sorts_by_several_columns_numbered_by_priority(console: Console) -> None:
    """User then Description: Description is key 1, User key 2; again reverses; kept in the URL."""
    for user, description in [("sortb", "zeta"), ("sorta", "zeta"), ("sortc", "alpha")]:
        console.token(user, description=f"sortcase {description}")
    page = console.signed_in()
    page.get_by_label("Search").fill("sortcase")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text("3 results")).to_be_visible()

    page.get_by_role("button", name="User", exact=True).click()
    page.get_by_role("button", name="Description", exact=True).click()

    description = page.get_by_role("columnheader", name="Description")
    user = page.get_by_role("columnheader", name="User", exact=True)
    expect(description).to_have_attribute("aria-sort", "ascending")
    expect(description.locator(".priority")).to_have_text("1")
    expect(user.locator(".priority")).to_have_text("2")
    expect(user).not_to_have_attribute("aria-sort", re.compile("."))
    assert "order=description%2Cuser" in page.url or "order=description,user" in page.url
    users = page.locator("table.tokens tbody tr td:nth-child(3)")
    expect(users).to_have_text(["sortc", "sorta", "sortb"])
    console.screenshot(page, "tokens")

    page.get_by_role("button", name="Description", exact=True).click()
    expect(description).to_have_attribute("aria-sort", "descending")
    expect(users).to_have_text(["sorta", "sortb", "sortc"])
    page.reload()  # the view is a bookmark
    expect(page.locator("table.tokens tbody tr td:nth-child(3)")).to_have_text(
        ["sorta", "sortb", "sortc"]
    )


def test_search_shows_results_of_the_total_with_a_link_back(console: Console) -> None:
    """A search shows "N results (M total)"; the total is a link to the whole list."""
    console.token("searcher", description="needle in a haystack")
    page = console.signed_in()
    _, everything = console.api("GET", "/tokens?limit=1")

    page.get_by_label("Search").fill("NEEDLE")
    page.get_by_role("button", name="Search").click()

    expect(page.locator("p.count")).to_have_text(f"1 results ({everything['total']} total)")
    expect(page.locator("table.tokens tbody tr")).to_have_count(1)
    page.get_by_role("link", name=f"{everything['total']} total").click()
    expect(page.get_by_label("Search")).to_have_value("")
    expect(page.locator("p.count")).to_have_text(re.compile(r"^\d+ tokens?$"))


def test_delete_selected_removes_the_checked_tokens_after_a_confirmation(console: Console) -> None:
    """Two checked rows, "Delete selected", confirmed: both are gone from the list and the API."""
    made = [console.token("bulky", description=f"bulkcase {n}") for n in range(3)]
    page = console.signed_in()
    page.goto(f"{console.admin_url}/#/tokens?q=bulkcase")
    for token in made[:2]:
        page.get_by_label(f"Select {token['client_id']}").check()

    page.get_by_role("button", name="Delete selected").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()

    expect(page.locator(".notice")).to_contain_text("Deleted 2 tokens")
    assert rows(page) == [made[2]["client_id"]]
    assert [console.api("GET", f"/tokens/{t['client_id']}")[0] for t in made] == [404, 404, 200]


def test_revoke_and_revoke_all_stop_the_proxy_accepting_the_tokens(console: Console) -> None:
    """Revoke on a token's page, then "Revoke all" on its user's page: the proxy refuses them."""
    one, two, three = (console.token("rita", access={"orders": "read"}) for _ in range(3))
    assert console.proxy_status(one["token"]) == 200
    page = console.signed_in()
    page.goto(f"{console.admin_url}/#/tokens/{one['client_id']}")

    page.get_by_role("button", name="Revoke").click()
    page.get_by_role("dialog").get_by_role("button", name="Revoke").click()
    expect(page.locator("dl.record")).to_contain_text("revoked")
    assert console.proxy_status(one["token"]) == 401
    assert console.proxy_status(two["token"]) == 200
    console.screenshot(page, "token-page")

    page.goto(f"{console.admin_url}/#/users/rita")
    page.get_by_role("button", name="Revoke all").click()
    page.get_by_role("dialog").get_by_role("button", name="Revoke all").click()

    expect(page.locator(".notice")).to_contain_text(re.compile(r"Revoked \d tokens of rita"))
    assert [console.proxy_status(t["token"]) for t in (two, three)] == [401, 401]


def test_edit_and_regenerate_show_in_the_history(console: Console) -> None:
    """Edit a description, regenerate with a grace period: History lists both, old and new."""
    made = console.token("hank", description="before", access={"orders": "read"})
    page = console.signed_in()
    page.goto(f"{console.admin_url}/#/tokens/{made['client_id']}")
    page.get_by_role("link", name="Edit").click()
    expect(page.get_by_role("heading", name=re.compile("^Edit"))).to_be_visible()
    page.get_by_label("Description").fill("after")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("dl.record")).to_contain_text("after")

    page.get_by_role("button", name="Regenerate").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Expiration (months)").select_option("3")
    dialog.get_by_label("Grace period (seconds)").fill("60")
    dialog.get_by_role("button", name="Regenerate").click()
    new_token = page.get_by_role("dialog").get_by_label("New token").input_value()
    page.get_by_role("button", name="I have saved the secret").click()
    assert [console.proxy_status(t) for t in (new_token, made["token"])] == [200, 200]  # grace
    page.get_by_role("link", name="History").click()

    history = page.locator("table.history tbody")
    expect(history).to_contain_text("regenerated")
    updated = history.locator("tr", has_text="updated")
    expect(updated.locator("td")).to_have_text(
        [re.compile("UTC"), "root", "updated", "description", "before", "after"]
    )
    console.screenshot(page, "history")


def test_grace_period_shows_old_secret_clients_and_can_be_ended(console: Console) -> None:
    """A token's page lists who used the old secret in its grace; "End grace period" stops it."""
    made = console.token("gail", access={"orders": "read"})
    console.api("POST", f"/tokens/{made['client_id']}/regenerate", {"grace_seconds": 600})
    assert console.proxy_status(made["token"]) == 200
    page = console.signed_in()
    page.goto(f"{console.admin_url}/#/tokens/{made['client_id']}")

    clients = page.locator("table.grace-clients tbody")
    for _ in range(30):  # the uses are written within a second
        if "127.0.0.1" in clients.inner_text():
            break
        page.wait_for_timeout(200)
        page.reload()
    expect(clients.locator("tr").first.locator("td")).to_have_text(
        ["127.0.0.1", re.compile("Python-urllib"), "1", re.compile("UTC")]
    )
    page.get_by_role("button", name="End grace period").click()
    page.get_by_role("dialog").get_by_role("button", name="End grace period").click()

    expect(page.locator(".notice")).to_contain_text("Ended the grace period")
    expect(page.get_by_role("heading", name="Grace period")).to_have_count(0)
    assert console.proxy_status(made["token"]) == 401


def test_api_errors_appear_next_to_the_field_they_name(console: Console) -> None:
    """No user: the API's message beside "User"; then "Save and continue editing" opens the edit."""
    page = console.signed_in()
    page.goto(f"{console.admin_url}/#/tokens/new")
    expect(page.get_by_role("heading", name="Add token")).to_be_visible()

    page.get_by_role("button", name="Save", exact=True).click()

    expect(page.get_by_label("User")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("p.error")).to_contain_text("user")
    page.get_by_label("User").select_option("root")
    page.get_by_role("button", name="Save and continue editing").click()
    page.get_by_role("button", name="I have saved the secret").click()
    expect(page.get_by_role("heading", name=re.compile("^Edit "))).to_be_visible()
    expect(page.get_by_label("User")).to_have_value("root")


def test_a_read_only_admin_sees_no_write_control_and_cannot_post(console: Console) -> None:
    """With read on admin: no "Add token", "Delete selected", "Edit" or "Revoke"; posts get 403."""
    reader = console.token("reader", access={"admin": "read"})
    page = console.signed_in(reader["token"])
    expect(page.locator("table.tokens")).to_be_visible()
    for name in ("Add token", "Delete selected"):
        expect(
            page.get_by_role("link", name=name).or_(page.get_by_role("button", name=name))
        ).to_have_count(0)
    page.goto(f"{console.admin_url}/#/tokens/{reader['client_id']}")
    expect(page.get_by_role("link", name="History")).to_be_visible()
    for name in ("Edit", "Regenerate", "Revoke", "Delete"):
        expect(
            page.get_by_role("button", name=name, exact=True).or_(
                page.get_by_role("link", name=name, exact=True)
            )
        ).to_have_count(0)

    csrf = page.request.get(console.admin_url + "/console/v1/session").json()["csrf"]
    headers = {"X-CSRF-Token": csrf}
    posted = page.request.post(
        console.admin_url + "/admin/v1/tokens", data={"user": "reader"}, headers=headers
    )
    revoked = page.request.post(
        f"{console.admin_url}/admin/v1/tokens/{reader['client_id']}/revoke",
        data={},
        headers=headers,
    )

    assert (posted.status, revoked.status) == (403, 403)
    assert console.api("GET", f"/tokens/{reader['client_id']}")[1]["status"] == "active"


def test_revoking_the_signed_in_token_ends_the_session(console: Console) -> None:
    """Once the token behind a session is revoked, the next click lands on the sign-in form."""
    admin = console.token("ivan", access={"admin": "full"})
    page = console.signed_in(admin["token"])
    console.api("POST", f"/tokens/{admin['client_id']}/revoke", {})

    page.get_by_role("link", name="Users").click()

    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("session has ended")
    assert page.request.get(console.admin_url + "/console/v1/session").status == 401


def test_sign_out_ends_the_session(console: Console) -> None:
    """ "Sign out" returns to the sign-in form, and the old cookie opens nothing any more."""
    page = console.signed_in()
    cookies = page.context.cookies()

    page.get_by_role("button", name="Sign out").click()

    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    other = console.browser.new_context()
    other.add_cookies(cookies)
    assert other.request.get(console.admin_url + "/console/v1/session").status == 401
    other.close()


def test_a_self_service_caller_sees_only_my_tokens(console: Console) -> None:
    """A token with no admin level gets "My tokens" alone, and can add a token of its own."""
    own = console.token("sam", access={"orders": "full"}, description="sam's laptop")
    page = console.signed_in(own["token"])

    expect(page.get_by_role("heading", name="My tokens")).to_be_visible()
    nav = page.get_by_role("navigation", name="Console")
    expect(nav.get_by_role("link")).to_have_text(["My tokens"])
    page.get_by_role("link", name="Add token").click()
    page.get_by_label("Description").fill("sam's phone")
    page.get_by_role("row", name=re.compile("^orders")).get_by_label("Read access").check()
    page.get_by_role("button", name="Save", exact=True).click()
    token = page.get_by_role("dialog").get_by_label("New token").input_value()
    page.get_by_role("button", name="I have saved the secret").click()

    expect(page.locator("table.tokens tbody tr")).to_have_count(2)
    assert console.proxy_status(token) == 200
    console.screenshot(page, "my-tokens")


def test_dialogs_take_focus_and_give_it_back(console: Console) -> None:
    """Enter on "Revoke" opens a dialog holding the focus; Escape closes it and refocuses Revoke."""
    made = console.token("fay")
    page = console.signed_in()
    page.goto(f"{console.admin_url}/#/tokens/{made['client_id']}")
    revoke = page.get_by_role("button", name="Revoke")

    revoke.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog").get_by_role("button", name="Cancel")).to_be_focused()
    page.keyboard.press("Escape")

    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(revoke).to_be_focused()
    assert console.api("GET", f"/tokens/{made['client_id']}")[1]["status"] == "active"


def test_users_and_roles_pages_and_a_role_in_use_cannot_be_deleted(console: Console) -> None:
    """Add a role with the access table, give it to a token: deleting it shows the API's 409."""
    page = console.signed_in()
    page.goto(f"{console.admin_url}/#/roles/new")
    page.get_by_label("Name").fill("auditor")
    page.get_by_label("Description").fill("reads everything")
    page.get_by_label("Access level").select_option("read")
    page.get_by_label("Apply to all APIs").check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name="Role auditor")).to_be_visible()
    assert console.api("GET", "/roles/auditor")[1]["access"] == {"*": "read"}
    console.token("uma", role="auditor")

    page.get_by_role("button", name="Delete").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()

    expect(page.locator("p.error")).to_contain_text("token")
    assert console.api("GET", "/roles/auditor")[0] == 200
    page.goto(f"{console.admin_url}/#/roles")
    expect(page.get_by_role("cell", name="auditor")).to_be_visible()
    console.screenshot(page, "roles")
    page.goto(f"{console.admin_url}/#/users")
    expect(page.get_by_role("link", name="uma")).to_be_visible()
    console.screenshot(page, "users")
    page.goto(f"{console.admin_url}/#/audit")
    expect(page.locator("table.history tbody")).to_contain_text("auditor")
    console.screenshot(page, "audit")


def test_the_token_list_fits_a_phone_width_screen(console: Console) -> None:
    """At 390 px the page does not scroll sideways: only the table's own box does."""
    page = console.signed_in(width=390, height=844)

    expect(page.locator("table.tokens")).to_be_visible()

    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    console.screenshot(page, "tokens-phone")


def test_a_store_outage_shows_a_banner_until_the_store_is_back(console: Console) -> None:
    """With Redis paused, the next page shows the store banner; once it is back, it goes away."""
    page = console.signed_in()
    expect(page.get_by_role("heading", name="Tokens")).to_be_visible()
    client = redis.Redis.from_url(console.redis_url)
    client.execute_command("CLIENT", "PAUSE", "1500", "ALL")  # past redis.timeout (0.5 s)
    client.close()

    page.get_by_role("link", name="Users").click()

    expect(page.locator("#banner")).to_contain_text("credential store is unavailable")
    expect(page.get_by_role("button", name="Retry")).to_be_visible()
    page.wait_for_timeout(1500)
    page.get_by_role("link", name="Roles").click()
    expect(page.get_by_role("heading", name="Roles")).to_be_visible()
    expect(page.locator("#banner")).to_be_hidden()


def test_token_page_shows_usage_and_applies_the_suggestion(console: Console) -> None:
    """Usage counts the GET; "Apply suggestion", confirmed, leaves only read on orders."""
    made = console.token("ursula", access={"orders": "full", "billing": "read"})
    assert console.proxy_status(made["token"]) == 200
    for _ in range(60):  # the flusher writes within a second
        _, usage = console.api("GET", f"/tokens/{made['client_id']}/usage")
        if usage["items"][0]["safe"]:
            break
        time.sleep(0.05)
    page = console.signed_in()
    page.goto(f"{console.admin_url}/#/tokens/{made['client_id']}")

    orders = page.locator("table.usage tbody tr", has_text="orders")
    expect(orders.locator("td")).to_have_text(["1", "0", re.compile(r"^\d{4}-")])
    suggested = page.locator("table.suggestion tbody")
    expect(suggested.locator("tr", has_text="orders").locator("td")).to_have_text(
        ["Full access", "Read access"]
    )
    page.get_by_role("button", name="Apply suggestion").click()
    page.get_by_role("dialog").get_by_role("button", name="Apply").click()

    expect(page.locator(".notice")).to_contain_text("Applied the suggested access")
    after = {"orders": "read", "billing": "none", "admin": "none"}
    assert console.api("GET", f"/tokens/{made['client_id']}")[1]["access"] == after


def test_own_token_page_does_not_offer_to_take_its_own_admin_access(console: Console) -> None:
    """Signed in with a token that only read: its own page shows the hint and no Apply button."""
    made = console.token("vera", access={"admin": "full"})
    page = console.signed_in(made["token"])
    page.goto(f"{console.admin_url}/#/tokens/{made['client_id']}")

    suggested = page.locator("table.suggestion tbody")
    expect(suggested.locator("tr", has_text="admin").locator("td").first).to_have_text(
        "Full access"
    )
    expect(page.locator("section.advice")).to_contain_text("the token you signed in with")
    expect(page.get_by_role("button", name="Apply suggestion")).to_have_count(0)
