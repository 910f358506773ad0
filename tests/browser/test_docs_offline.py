"""`/docs` and `/redoc` render with no internet: every request the pages make goes to the
service itself (anything else is blocked and counted), and the operations appear."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, Page, Route, expect
from tests.e2e.server import ServerProcess


async def offline_page(
    browser: Browser, server: ServerProcess, path: str
) -> tuple[Page, list[str]]:
    context = await browser.new_context()
    elsewhere: list[str] = []
    own = urlsplit(server.url).netloc

    async def only_the_service(route: Route) -> None:
        if urlsplit(route.request.url).netloc == own:
            await route.continue_()
        else:
            elsewhere.append(route.request.url)
            await route.abort()

    await context.route("**/*", only_the_service)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(f"{server.url}{path}")
    return page, elsewhere + errors


@pytest.mark.browser
async def test_swagger_ui_renders_offline(server: ServerProcess, browser: Browser) -> None:
    page, problems = await offline_page(browser, server, "/docs")
    operations = page.locator(".opblock")
    await expect(operations.first).to_be_visible(timeout=15_000)
    assert await operations.count() >= 10
    await expect(page.get_by_text("/api/v1/scores/events").first).to_be_visible()
    assert problems == []


@pytest.mark.browser
async def test_redoc_renders_offline(server: ServerProcess, browser: Browser) -> None:
    page, problems = await offline_page(browser, server, "/redoc")
    operation = page.locator('[id^="operation/"]')
    await expect(operation.first).to_be_attached(timeout=15_000)
    assert await operation.count() >= 10
    assert problems == []
