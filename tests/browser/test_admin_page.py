"""The admin page at `/admin` in a real Chromium against a real server process (issue 12 item
9): sign-in (an admin, a non-admin, a reload), the user lookup and every moderation action, the
events with their void buttons, the flags queue, inert user input, and no request anywhere but
the service. What the page shows is checked against what the HTTP API says.

The events list (`GET /api/v1/admin/events`) and the flags queue (`GET /api/v1/admin/flags`,
`POST .../resolve`) come from other branches: `test_events_and_void` and `test_flags_queue`
need them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from weakref import WeakKeyDictionary

import httpx
import pytest
from playwright.async_api import Browser, Page, Route, expect
from playwright.async_api import TimeoutError as PlaywrightTimeoutError
from tests.e2e.server import ServerProcess

PASSWORD = "correct horse"
WITHIN_MS = 15_000
# The page's fetches that answer 4xx are logged by Chromium as console errors; those are
# expected. A refused script, style or call (the Content-Security-Policy) is not.
CSP_WORDS = ("Content Security Policy", "Content-Security-Policy")
XSS = "<img src=x onerror=__xss=1><script>__xss=2</script>&amp;"  # 56 of the 64 allowed

pytestmark = pytest.mark.browser


# --- helpers --------------------------------------------------------------------------------


def start(server_factory: Callable[..., ServerProcess], **env: str) -> ServerProcess:
    # The account cache off: a promotion counts at the next sign-in, whatever the timing.
    return server_factory({"SCOREBOARD_ACCOUNT_CACHE_SECONDS": "0", **env})


async def register(server: ServerProcess, username: str, display_name: str | None = None) -> str:
    body = {"username": username, "password": PASSWORD}
    if display_name is not None:
        body["display_name"] = display_name
    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.post("/api/v1/auth/register", json=body)
        assert r.status_code == 201, r.text
        user_id: str = r.json()["user_id"]
        return user_id


def _role(server: ServerProcess, username: str, command: str = "promote") -> None:
    """`scoreboard user promote|demote USERNAME` against the server's own database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCOREBOARD_")}
    env.update(server.env)
    exe = Path(sys.executable).with_name("scoreboard")
    done = subprocess.run(
        [str(exe), "user", command, username, "--reason", "admin page test"],
        cwd=server.workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


async def admin(server: ServerProcess, username: str = "boss") -> str:
    user_id = await register(server, username)
    await asyncio.to_thread(_role, server, username)
    return user_id


_tokens: WeakKeyDictionary[ServerProcess, dict[str, str]] = WeakKeyDictionary()


async def token(server: ServerProcess, username: str) -> str:
    """A user's access token (one sign-in per user and server: hashing is the slow part)."""
    known = _tokens.setdefault(server, {})
    if username not in known:
        async with httpx.AsyncClient(base_url=server.url) as http:
            r = await http.post(
                "/api/v1/auth/login", json={"username": username, "password": PASSWORD}
            )
            assert r.status_code == 200, r.text
            known[username] = r.json()["access_token"]
    return known[username]


async def score(server: ServerProcess, username: str, *actions: str) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {await token(server, username)}"}
    out = []
    async with httpx.AsyncClient(base_url=server.url, headers=headers) as http:
        for action in actions:
            r = await http.post("/api/v1/scores/events", json={"action_type": action})
            assert r.status_code == 201, r.text
            out.append(r.json())
    return out


async def public_ids(server: ServerProcess) -> list[str]:
    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.get("/api/v1/leaderboard", params={"limit": 100})
        assert r.status_code == 200, r.text
        return [item["user_id"] for item in r.json()["items"]]


async def audit_count(server: ServerProcess, username: str) -> int:
    headers = {"Authorization": f"Bearer {await token(server, username)}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers) as http:
        r = await http.get("/api/v1/admin/audit", params={"limit": 100})
        assert r.status_code == 200, r.text
        return len(r.json()["items"])


async def open_admin(browser: Browser, server: ServerProcess) -> tuple[Page, list[str]]:
    """The page, offline but for the service: any other request is blocked and recorded, as
    are script errors and Content-Security-Policy refusals (the list returned)."""
    context = await browser.new_context()
    problems: list[str] = []
    own = urlsplit(server.url).netloc

    async def only_the_service(route: Route) -> None:
        if urlsplit(route.request.url).netloc == own:
            await route.continue_()
        else:
            problems.append(f"request elsewhere: {route.request.url}")
            await route.abort()

    await context.route("**/*", only_the_service)
    page = await context.new_page()
    page.on("pageerror", lambda exc: problems.append(f"script error: {exc}"))
    page.on(
        "console",
        lambda m: (
            problems.append(f"console: {m.text}")
            if any(word in m.text for word in CSP_WORDS)
            else None
        ),
    )
    await page.goto(f"{server.url}/admin")
    return page, problems


async def sign_in(page: Page, username: str, password: str = PASSWORD) -> None:
    await page.fill("#signin-username", username)
    await page.fill("#signin-password", password)
    await page.click("#signin-btn")


async def signed_in(page: Page, username: str) -> None:
    await expect(page.locator("#console")).to_be_visible(timeout=WITHIN_MS)
    await expect(page.locator("#admin-who")).to_have_text(username)
    await expect(page.locator("#signin")).to_be_hidden()


async def look_up(page: Page, value: str, by: str = "username") -> None:
    await page.select_option("#lookup-by", by)
    await page.fill("#lookup-value", value)
    await page.click("#lookup-btn")


async def confirm(page: Page, reason: str, points: int | None = None) -> None:
    dialog = page.locator("#confirm")
    await expect(dialog).to_be_visible()
    if points is not None:
        await page.fill("#confirm-points", str(points))
    await page.fill("#confirm-reason", reason)
    await page.click("#confirm-ok")


async def boards(page: Page) -> dict[str, tuple[int, str]]:
    """What the user view shows: scope → (score, rank; "" when none)."""
    rows: list[dict[str, str]] = await page.eval_on_selector_all(
        "#boards-rows tr[data-scope]",
        "rows => rows.map(r => ({...r.dataset}))",
    )
    return {r["scope"]: (int(r["score"]), r["rank"]) for r in rows}


async def shown_status(page: Page, status: str) -> None:
    await expect(page.locator("#user-status")).to_have_attribute(
        "data-status", status, timeout=WITHIN_MS
    )
    await expect(page.locator("#user-status")).to_have_text(status)


# --- tests ----------------------------------------------------------------------------------


async def test_served_with_a_strict_policy_and_only_admins_get_in(
    server_factory: Callable[..., ServerProcess], browser: Browser
) -> None:
    server = start(server_factory)
    await register(server, "player")
    await admin(server, "boss")
    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.get("/admin")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "'unsafe-inline'" not in csp and "<script>" not in r.text  # no inline script
    assert r.headers["cache-control"] == "no-store"

    page, problems = await open_admin(browser, server)
    await expect(page.locator("#signin")).to_be_visible()
    await expect(page.locator("#console")).to_be_hidden()

    await sign_in(page, "player", "wrong password")
    await expect(page.locator("#message")).to_have_attribute("data-kind", "error")
    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.post(
            "/api/v1/auth/login", json={"username": "player", "password": "wrong password"}
        )
    assert r.json()["error"]["code"] == "INVALID_CREDENTIALS"
    await expect(page.locator("#message")).to_have_text(r.json()["error"]["message"])

    await sign_in(page, "player")  # a real account, but not an admin
    await expect(page.locator("#message")).to_have_text("This account is not an admin.")
    await expect(page.locator("#console")).to_be_hidden()
    await expect(page.locator("#signin")).to_be_visible()

    await sign_in(page, "boss")
    await signed_in(page, "boss")
    await expect(page.locator("#audit-rows tr[data-action='promote']")).to_have_count(1)
    # The session lives in the page's memory: nothing in the browser's storage, and a reload
    # signs out.
    stored = await page.evaluate("[sessionStorage.length, localStorage.length, document.cookie]")
    assert stored == [0, 0, ""]
    await page.reload()
    await expect(page.locator("#signin")).to_be_visible()
    await expect(page.locator("#console")).to_be_hidden()
    await sign_in(page, "boss")
    await signed_in(page, "boss")
    await page.click("#signout-btn")
    await expect(page.locator("#signin")).to_be_visible()
    await expect(page.locator("#message")).to_have_text("You are signed out.")
    assert problems == []


async def test_lookup_and_every_user_action(
    server_factory: Callable[..., ServerProcess], browser: Browser
) -> None:
    server = start(server_factory)
    await admin(server, "boss")
    cheat = await register(server, "cheater", "Cheater McCheat")
    honest = await register(server, "honest")
    await score(server, "cheater", "TASK_COMPLETED", "TASK_COMPLETED")
    await score(server, "honest", "TASK_COMPLETED")
    page, problems = await open_admin(browser, server)
    await sign_in(page, "boss")
    await signed_in(page, "boss")

    await look_up(page, "nobody")
    await expect(page.locator("#message")).to_have_text("No user with that username.")
    await look_up(page, "cheater")
    await shown_status(page, "active")
    await expect(page.locator("#user-name")).to_have_text("Cheater McCheat")
    await expect(page.locator("#user-username")).to_have_text("cheater")
    await expect(page.locator("#user-id")).to_have_text(cheat)
    await expect(page.locator("#user-flags")).to_have_text("0")
    shown = await boards(page)
    assert set(shown) == {"global", "daily", "weekly", "monthly"}
    assert shown["global"] == (20, "1")
    await expect(page.locator("#unban-btn")).to_be_disabled()
    await expect(page.locator("#release-btn")).to_be_disabled()

    # Ban: off the public board (the API says so) and the page shows it.
    await page.click("#ban-btn")
    await confirm(page, "   ")  # a blank reason is refused here, nothing is sent
    await expect(page.locator("#confirm-error")).to_have_text(
        "A reason is required: 1–500 characters."
    )
    assert await audit_count(server, "boss") == 1  # the promotion only
    await page.fill("#confirm-reason", "forged scores")
    await page.click("#confirm-ok")
    await expect(page.locator("#confirm")).to_be_hidden()
    await shown_status(page, "banned")
    assert await public_ids(server) == [honest]
    assert (await boards(page))["global"] == (20, "")
    await expect(page.locator("#boards-rows tr[data-scope='global'] td").nth(3)).to_have_text(
        "hidden"
    )
    await expect(page.locator("#ban-btn")).to_be_disabled()
    await expect(page.locator("#audit-rows tr").first).to_have_attribute("data-action", "ban")
    await expect(page.locator("#audit-rows tr .reason").first).to_have_text("forged scores")

    # The API's refusal shows in the dialog: a banned user's score cannot be adjusted.
    await page.click("#adjust-btn")
    await confirm(page, "bonus", points=5)
    await expect(page.locator("#confirm-error")).to_have_text(
        "The user is banned: unban them first to adjust."
    )
    await page.click("#confirm-cancel")
    await expect(page.locator("#confirm")).to_be_hidden()

    await page.click("#unban-btn")
    await confirm(page, "appeal upheld")
    await shown_status(page, "active")
    assert await public_ids(server) == [cheat, honest]

    await page.click("#quarantine-btn")
    await confirm(page, "suspicious")
    await shown_status(page, "quarantined")
    assert await public_ids(server) == [honest]
    await expect(page.locator("#quarantine-btn")).to_be_disabled()
    await page.click("#release-btn")
    await confirm(page, "cleared")
    await shown_status(page, "active")
    assert await public_ids(server) == [cheat, honest]

    # Adjust: the points are checked here, then the score shown follows.
    await page.click("#adjust-btn")
    await confirm(page, "penalty", points=0)
    await expect(page.locator("#confirm-error")).to_contain_text("non-zero whole number")
    await page.fill("#confirm-points", "-15")
    await page.click("#confirm-ok")
    await expect(page.locator("#confirm")).to_be_hidden()
    await expect(page.locator("#boards-rows tr[data-scope='global']")).to_have_attribute(
        "data-score", "5", timeout=WITHIN_MS
    )
    assert (await boards(page))["global"] == (5, "2")
    assert await public_ids(server) == [honest, cheat]

    # By user id too; every action above is in the audit panel, newest first.
    await look_up(page, honest, by="user_id")
    await expect(page.locator("#user-username")).to_have_text("honest")
    actions = await page.eval_on_selector_all(
        "#audit-rows tr[data-action]", "rows => rows.map(r => r.dataset.action)"
    )
    assert actions == ["adjust", "release", "quarantine", "unban", "ban", "promote"]
    assert problems == []


async def test_a_hostile_display_name_renders_inert(
    server_factory: Callable[..., ServerProcess], browser: Browser
) -> None:
    server = start(server_factory)
    await admin(server, "boss")
    await register(server, "mallory", XSS)
    await score(server, "mallory", "TASK_COMPLETED")
    page, problems = await open_admin(browser, server)
    await sign_in(page, "boss")
    await signed_in(page, "boss")
    await look_up(page, "mallory")
    await expect(page.locator("#user-name")).to_have_text(XSS)
    await page.click("#ban-btn")
    await expect(page.locator("#confirm-title")).to_have_text(f"Ban {XSS}")
    await confirm(page, XSS)  # the reason is user input too, shown in the audit panel
    await shown_status(page, "banned")
    await expect(page.locator("#audit-rows tr .reason").first).to_have_text(XSS)
    await page.wait_for_timeout(300)  # an injected image's error handler would have run
    assert await page.evaluate("window.__xss") is None
    assert await page.locator("main img, main script, dialog img").count() == 0
    # A phone's width: wide tables scroll inside their panel, the page itself does not.
    await page.set_viewport_size({"width": 375, "height": 740})
    widths = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths == [375, 375]
    assert problems == []


async def test_an_expired_access_token_is_refreshed_and_a_demoted_admin_is_out(
    server_factory: Callable[..., ServerProcess], browser: Browser
) -> None:
    server = start(server_factory, SCOREBOARD_TOKEN_TTL_SECONDS="2")
    await admin(server, "boss")
    await register(server, "someone")
    page, problems = await open_admin(browser, server)
    await sign_in(page, "boss")
    await signed_in(page, "boss")
    await asyncio.sleep(3)  # the access token has expired; the refresh token has not
    await look_up(page, "someone")
    await expect(page.locator("#user-username")).to_have_text("someone", timeout=WITHIN_MS)
    await expect(page.locator("#console")).to_be_visible()
    # Demoted meanwhile: the next admin call answers 403 and the page signs out, saying why.
    await asyncio.to_thread(_role, server, "boss", "demote")
    # The next admin call does it: the flags queue's poll (every 5 s) if it comes before the
    # click, which then finds the console already gone.
    with contextlib.suppress(PlaywrightTimeoutError):
        await page.click("#audit-refresh", timeout=2_000)
    await expect(page.locator("#message")).to_have_text(
        "This account is not an admin.", timeout=WITHIN_MS
    )
    await expect(page.locator("#signin")).to_be_visible(timeout=WITHIN_MS)
    await expect(page.locator("#console")).to_be_hidden(timeout=WITHIN_MS)
    assert problems == []


# --- these need the events route and the flags routes (other branches) ----------------------


async def test_events_and_void(
    server_factory: Callable[..., ServerProcess], browser: Browser
) -> None:
    server = start(server_factory)
    await admin(server, "boss")
    await register(server, "player")
    first, second = await score(server, "player", "TASK_COMPLETED", "TASK_COMPLETED")
    page, problems = await open_admin(browser, server)
    await sign_in(page, "boss")
    await signed_in(page, "boss")
    await look_up(page, "player")
    rows = page.locator("#events-rows tr[data-event-id]")
    await expect(rows).to_have_count(2, timeout=WITHIN_MS)
    assert await rows.evaluate_all("rs => rs.map(r => Number(r.dataset.eventId))") == [
        second["event_id"],
        first["event_id"],
    ]
    assert (await boards(page))["global"] == (20, "1")

    target = page.locator(f"#events-rows tr[data-event-id='{first['event_id']}']")
    await target.locator("button.void").click()
    await confirm(page, "duplicate submission")
    await expect(page.locator("#confirm")).to_be_hidden()
    await expect(target).to_have_attribute("data-state", "voided", timeout=WITHIN_MS)
    await expect(target.locator("button.void")).to_be_disabled()
    await expect(rows).to_have_count(3)
    compensation = page.locator("#events-rows tr[data-state='compensation']")
    await expect(compensation).to_have_count(1)
    await expect(compensation).to_have_attribute("data-points", "-10")
    await expect(compensation.locator("button.void")).to_be_disabled()
    await expect(
        page.locator(f"#events-rows tr[data-event-id='{second['event_id']}'] button.void")
    ).to_be_enabled()
    assert (await boards(page))["global"] == (10, "1")
    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.get("/api/v1/leaderboard")
    assert [i["score"] for i in r.json()["items"]] == [10]
    assert problems == []


async def test_flags_queue(
    server_factory: Callable[..., ServerProcess], browser: Browser, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"max_points_per_minute": 1}))
    server = start(server_factory, SCOREBOARD_RULES_FILE=str(rules))
    await admin(server, "boss")
    fast = await register(server, "fast")
    page, problems = await open_admin(browser, server)
    await sign_in(page, "boss")
    await signed_in(page, "boss")
    await score(server, "fast", "TASK_COMPLETED")  # 10 points in a minute: over 1

    flags = page.locator(f"#flags-rows tr[data-user-id='{fast}']")
    await expect(flags.first).to_be_visible(timeout=WITHIN_MS)  # the page polls the queue
    await expect(flags.first.locator("td").nth(2)).to_have_text("max_points_per_minute")
    flag_id = await flags.first.get_attribute("data-flag-id")
    count = await flags.count()
    await flags.first.locator("button.link").click()  # the flag's user, looked up
    await expect(page.locator("#user-id")).to_have_text(fast)
    await shown_status(page, "active")
    await expect(page.locator("#user-flags")).to_have_text(str(count))
    await flags.first.locator("button[data-action='quarantine']").click()
    await confirm(page, "too fast")
    await expect(page.locator("#confirm")).to_be_hidden()
    await expect(page.locator(f"#flags-rows tr[data-flag-id='{flag_id}']")).to_have_count(0)
    await expect(flags).to_have_count(count - 1)
    await shown_status(page, "quarantined")  # the user shown follows
    assert fast not in await public_ids(server)
    await expect(page.locator("#audit-rows tr[data-action='resolve_flag']")).to_have_count(1)
    assert problems == []
