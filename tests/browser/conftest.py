"""Browser tests: Playwright (the Python package) driving Debian's Chromium against real
`scoreboard serve` processes (the e2e fixtures `server` and `server_factory`).

Chromium is `/usr/bin/chromium` (`.ci/run` installs it when missing; override with
SCOREBOARD_TEST_CHROMIUM). Without it these tests skip with the reason, except under CI=true,
where they fail.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright
from tests.conftest import IN_CI
from tests.e2e.conftest import server, server_factory

__all__ = ["browser", "server", "server_factory"]

CHROMIUM = Path(os.environ.get("SCOREBOARD_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """A headless Chromium, one per test (launching takes well under a second)."""
    if not os.access(CHROMIUM, os.X_OK):
        reason = f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: browser tests must not skip)")
        pytest.skip(reason)
    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            yield instance
        finally:
            await instance.close()
