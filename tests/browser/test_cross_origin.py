"""CORS in a real browser (issue 12 item 8): a page on an origin of `SCOREBOARD_CORS_ORIGINS`
signs up, logs in, records a score event with `Authorization` and `Idempotency-Key` (requests
Chromium preflights) and refreshes its session; the same page on another origin (the same
server reached as `localhost` instead of `127.0.0.1`) is refused by the browser."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect
from tests.browser.test_client_module import other_origin
from tests.e2e.server import ServerProcess

__all__ = ["other_origin"]

PAGE = """<!doctype html>
<meta charset="utf-8"><title>A site calling the API</title>
<p id="state">not started</p>
<script type="module">
  const base = "SERVICE";
  const json = {"Content-Type": "application/json"};
  const post = (path, body, headers = {}) => fetch(base + path, {
    method: "POST", headers: {...json, ...headers}, body: JSON.stringify(body),
  });
  async function run() {
    const user = {username: "site" + Math.floor(Math.random() * 1e9), password: "correct horse"};
    await post("/api/v1/auth/register", user);
    const login = await (await post("/api/v1/auth/login", user)).json();
    const auth = {Authorization: "Bearer " + login.access_token, "Idempotency-Key": "k-1"};
    const event = await post("/api/v1/scores/events", {action_type: "TASK_COMPLETED"}, auth);
    const refreshed = await post("/api/v1/auth/refresh", {refresh_token: login.refresh_token});
    return `${event.status} ${refreshed.status} ${(await refreshed.json()).token_type}`;
  }
  const state = document.getElementById("state");
  run().then((text) => { state.textContent = text; },
             (error) => { state.textContent = "refused: " + error.name; });
</script>
"""


@pytest.mark.browser
async def test_an_allowed_origin_calls_the_api_and_another_is_refused(
    server_factory: Callable[..., ServerProcess],
    browser: Browser,
    other_origin: tuple[str, Path],
) -> None:
    site, folder = other_origin  # http://127.0.0.1:<port>
    server = server_factory(env={"SCOREBOARD_CORS_ORIGINS": site})
    (folder / "index.html").write_text(PAGE.replace("SERVICE", server.url))
    page = await (await browser.new_context()).new_page()
    await page.goto(f"{site}/index.html")
    await expect(page.locator("#state")).to_have_text("201 200 bearer", timeout=15_000)

    elsewhere = site.replace("127.0.0.1", "localhost")  # the same files, another origin
    page = await (await browser.new_context()).new_page()
    await page.goto(f"{elsewhere}/index.html")
    await expect(page.locator("#state")).to_have_text("refused: TypeError", timeout=15_000)
