"""What a first visitor met on the page (issue 13): Enter in the display-name field, a sign-up
whose login is rate limited, the "cannot reach" message after a reconnect, and "Your standing"
outside the top 10. Real Chromium, real server processes."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import httpx
import pytest
from playwright.async_api import Browser, expect
from tests.browser.test_page import (
    DESKTOP,
    PASSWORD,
    assert_clean,
    complete_task,
    conn_state,
    eventually,
    open_page,
)
from tests.e2e.client import new_user
from tests.e2e.server import ServerProcess


@pytest.mark.browser
async def test_enter_in_the_display_name_field_signs_up(
    server: ServerProcess, browser: Browser
) -> None:
    page = await open_page(await browser.new_context(viewport=DESKTOP), server.url)
    await page.get_by_label("Username", exact=True).fill("gina")
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    name = page.get_by_label("Display name")
    await name.fill("Gina G")
    await name.press("Enter")
    await expect(page.locator("#signed-in")).to_be_visible()
    await expect(page.locator("#who")).to_have_text("Gina G")
    assert "Welcome, Gina G!" in await page.locator("#message").inner_text()
    # Enter in the password field still logs in (the form's first button).
    await page.get_by_role("button", name="Sign out").click()
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_label("Password", exact=True).press("Enter")
    await expect(page.locator("#message")).to_have_text("You are logged in.")
    assert_clean(page)


@pytest.mark.browser
async def test_a_sign_up_whose_login_is_rate_limited_says_the_account_exists(
    server_factory: Callable[..., ServerProcess], browser: Browser
) -> None:
    server = server_factory(env={"SCOREBOARD_RATE_LIMIT_LOGIN_ADDRESS": "1/minute"})
    async with httpx.AsyncClient(base_url=server.url) as http:  # the address's one login
        r = await http.post("/api/v1/auth/login", json={"username": "x-y-z", "password": "n" * 8})
        assert r.status_code == 401
    page = await open_page(await browser.new_context(viewport=DESKTOP), server.url)
    await page.get_by_label("Username", exact=True).fill("hana")
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    signup = page.get_by_role("button", name="Sign up", exact=True)
    await signup.click()
    message = page.locator("#message")
    await expect(message).to_contain_text("Your account “hana” is created.")
    await expect(message).to_contain_text(re.compile(r"Slow down — try again in \d+ s\."))
    # Pressing "Sign up" again does not report the account as taken.
    await expect(signup).to_have_attribute("aria-disabled", "false")
    await signup.click()
    await expect(message).to_contain_text("Your account “hana” is created.")
    await expect(message).not_to_contain_text("taken")
    assert_clean(page)


@pytest.mark.browser
async def test_cannot_reach_message_goes_once_the_service_is_back(
    server: ServerProcess, browser: Browser
) -> None:
    page = await open_page(await browser.new_context(viewport=DESKTOP), server.url)
    await page.get_by_label("Username", exact=True).fill("ivan")
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="Sign up", exact=True).click()
    await expect(page.locator("#signed-in")).to_be_visible()
    await conn_state(page, "live")
    await asyncio.to_thread(server.stop)
    assert "Cannot reach the service" in await complete_task(page)
    await expect(page.locator("#message")).to_have_attribute("data-kind", "error")
    await asyncio.to_thread(server.start)
    await conn_state(page, "live")
    await expect(page.locator("#message")).to_have_text("Connected again.")
    await expect(page.locator("#message")).to_have_attribute("data-kind", "ok")
    assert_clean(page)


@pytest.mark.browser
async def test_your_standing_follows_moves_outside_the_top_ten(
    server: ServerProcess, browser: Browser
) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        for n in range(10):  # a full top 10 of 100 points each
            _, token = await new_user(http, f"top{n}")
            r = await http.post(
                "/api/v1/scores/events",
                json={"action_type": "ACHIEVEMENT_UNLOCKED"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert r.status_code == 201, r.text
    page = await open_page(await browser.new_context(viewport=DESKTOP), server.url)
    await page.get_by_label("Username", exact=True).fill("judy")
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="Sign up", exact=True).click()
    await conn_state(page, "live")
    assert "rank #11" in await complete_task(page)
    standing = page.locator("#standing")
    await expect(standing).to_have_attribute("data-rank", "11")

    async with httpx.AsyncClient(base_url=server.url) as http:  # passes judy, not the top 10
        _, token = await new_user(http, "kim")
        for _ in range(2):
            r = await http.post(
                "/api/v1/scores/events",
                json={"action_type": "TASK_COMPLETED"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert r.status_code == 201, r.text

    async def moved() -> bool:
        return await standing.get_attribute("data-rank") == "12"

    await eventually(moved, within=15)
    assert_clean(page)
