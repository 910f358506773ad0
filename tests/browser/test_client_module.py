"""/client.js, the live client as an ES module: embedded in a page of ANOTHER origin (a tiny
HTTP server of the test's own), it shows the service's live board, follows events posted to
the API, and reports a refused token. Real Chromium, real server process."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, expect
from tests.browser.test_page import api_board, eventually
from tests.e2e.client import new_user
from tests.e2e.server import ServerProcess

EMBED = """<!doctype html>
<meta charset="utf-8"><title>A site embedding the board</title>
<p id="state">not started</p><ol id="board"></ol>
<script type="module">
  import { LiveBoard } from "SERVICE/client.js";
  const board = new LiveBoard({
    base: "SERVICE",
    token: "TOKEN",
    limit: 5,
    onBoard(items) {
      document.getElementById("board").replaceChildren(...items.map((item) => {
        const li = document.createElement("li");
        li.dataset.userId = item.user_id;
        li.dataset.score = String(item.score);
        li.textContent = item.display_name;
        return li;
      }));
    },
    onState(state) { document.getElementById("state").textContent = state; },
  });
  window.board = board;
  board.start();
</script>
"""


@pytest.fixture
def other_origin(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTP server on another port (another origin) serving files from a folder."""
    folder = tmp_path / "site"
    folder.mkdir()
    handler = partial(SimpleHTTPRequestHandler, directory=str(folder))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", folder
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.browser
async def test_the_module_shows_the_live_board_on_another_site(
    server: ServerProcess, browser: Browser, other_origin: tuple[str, Path]
) -> None:
    site, folder = other_origin
    async with httpx.AsyncClient(base_url=server.url) as http:
        user_id, token = await new_user(http, "embed")
        served = await http.get("/client.js")
        assert served.headers["content-type"].startswith("text/javascript")
        assert served.headers["access-control-allow-origin"] == "*"
    page_html = EMBED.replace("SERVICE", server.url).replace("TOKEN", token)
    (folder / "index.html").write_text(page_html)
    page = await (await browser.new_context()).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(f"{site}/index.html")
    await expect(page.locator("#state")).to_have_text("live", timeout=15_000)

    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.post(
            "/api/v1/scores/events",
            json={"action_type": "TASK_COMPLETED"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 201, r.text

    async def shown() -> list[dict[str, Any]] | None:
        rows: list[dict[str, Any]] = await page.eval_on_selector_all(
            "#board li",
            "els => els.map(e => ({user_id: e.dataset.userId, score: Number(e.dataset.score)}))",
        )
        expected = [
            {"user_id": i["user_id"], "score": i["score"]} for i in await api_board(server.url, 5)
        ]
        return rows if rows and rows == expected else None

    rows = await eventually(shown, within=10)
    assert rows[0] == {"user_id": user_id, "score": 10}

    await page.evaluate("window.board.setToken('not-a-token')")
    await expect(page.locator("#state")).to_have_text("unauthenticated", timeout=10_000)
    assert errors == []
