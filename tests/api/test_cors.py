"""CORS (API.md section 6, issue 12 item 8): `SCOREBOARD_CORS_ORIGINS` lets exactly those
origins' browsers call the API; any other origin sees no CORS header at all, `/client.js`
stays importable from anywhere, and a bad origin in the setting stops start-up with one line.
The app tests run on the three backends (the hot routes answer some requests per backend)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.api.conftest import Api

from scoreboard.configuration import ConfigError, load_settings

SITE = "https://site.example"
LOCAL = "http://localhost:5173"
ORIGINS = f"{SITE}, {LOCAL}"
EVIL = "https://evil.example"
PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
}


def cors_headers(r: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in r.headers.items() if k.lower().startswith("access-control-")}


async def preflight(api: Api, origin: str, path: str = "/api/v1/scores/events") -> httpx.Response:
    return await api.client.options(path, headers={"Origin": origin, **PREFLIGHT})


async def test_a_preflight_from_an_allowed_origin_is_answered(
    database_url: str, api_factory: Callable[..., Any]
) -> None:
    async with api_factory(database_url, cors_origins=ORIGINS) as api:
        for origin in (SITE, LOCAL):
            r = await preflight(api, origin)
            assert r.status_code == 200, r.text
            assert r.headers["access-control-allow-origin"] == origin
            methods = r.headers["access-control-allow-methods"].split(", ")
            assert {"GET", "POST", "PUT", "PATCH", "DELETE"} <= set(methods)
            headers = r.headers["access-control-allow-headers"].lower().split(", ")
            assert {"authorization", "content-type", "idempotency-key"} <= set(headers)
            assert "access-control-allow-credentials" not in r.headers
        # Asking for a header the API does not take: nothing more is allowed.
        asks = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-a"}
        r = await api.client.options("/api/v1/scores/events", headers={"Origin": SITE, **asks})
        assert r.status_code == 400 and "x-a" not in r.headers["access-control-allow-headers"]


async def test_a_preflight_from_any_other_origin_is_answered_as_without_cors(
    database_url: str, api_factory: Callable[..., Any]
) -> None:
    async with api_factory(database_url) as plain:
        unconfigured = await preflight(plain, SITE)
    assert unconfigured.status_code == 405 and not cors_headers(unconfigured)
    async with api_factory(database_url, cors_origins=ORIGINS) as api:
        for origin in (EVIL, "https://site.example.evil", "http://site.example", "null"):
            r = await preflight(api, origin)
            assert r.status_code == 405, (origin, r.text)
            assert r.json() == unconfigured.json()
            assert not cors_headers(r), origin


async def test_answers_carry_cors_headers_only_for_allowed_origins(
    database_url: str, api_factory: Callable[..., Any]
) -> None:
    async with api_factory(database_url, cors_origins=ORIGINS) as api:
        _, auth = await api.user("cora")
        requests = [
            ("GET", "/api/v1/leaderboard?limit=5", {}, None),  # a hot route
            ("GET", "/api/v1/boards", {}, None),  # a FastAPI route
            ("POST", "/api/v1/scores/events", auth, {"action_type": "TASK_COMPLETED"}),
            ("GET", "/api/v1/leaderboard/me", {}, None),  # 401: errors are readable too
        ]
        for method, path, headers, body in requests:
            for origin, allowed in ((SITE, True), (LOCAL, True), (EVIL, False), (None, False)):
                sent = headers | ({"Origin": origin} if origin else {})
                r = await api.client.request(method, path, headers=sent, json=body)
                assert r.status_code in (200, 201, 401), r.text
                assert "origin" in r.headers.get("vary", "").lower()
                if allowed:
                    assert r.headers["access-control-allow-origin"] == origin
                    assert r.headers["access-control-expose-headers"] == "Retry-After"
                    assert "access-control-allow-credentials" not in r.headers
                else:
                    assert not cors_headers(r), (method, path, origin)


async def test_the_request_layers_own_refusals_carry_them_too(
    database_url: str, api_factory: Callable[..., Any]
) -> None:
    async with api_factory(database_url, cors_origins=SITE, max_body_bytes=256) as api:
        r = await api.client.post(
            "/api/v1/auth/login", content=b"{" + b" " * 400 + b"}", headers={"Origin": SITE}
        )
        assert r.status_code == 413 and r.headers["access-control-allow-origin"] == SITE


async def test_client_module_stays_importable_from_any_origin(
    database_url: str, api_factory: Callable[..., Any]
) -> None:
    async with api_factory(database_url, cors_origins=SITE) as api:
        for origin, expected in ((SITE, SITE), (EVIL, "*"), (None, "*")):
            headers = {"Origin": origin} if origin else {}
            r = await api.client.get("/client.js", headers=headers)
            assert r.status_code == 200
            assert r.headers["access-control-allow-origin"] == expected


async def test_without_the_setting_nothing_has_cors_headers(api: Api) -> None:
    r = await api.client.get("/api/v1/leaderboard", headers={"Origin": SITE})
    assert r.status_code == 200 and not cors_headers(r)
    assert "vary" not in r.headers


def test_origins_are_normalized_as_browsers_send_them(monkeypatch: pytest.MonkeyPatch) -> None:
    given = (
        "https://Site.Example:443, http://localhost:5173,http://[::1]:8080, https://site.example"
    )
    monkeypatch.setenv("SCOREBOARD_CORS_ORIGINS", given)
    assert load_settings().cors_origins == (
        "https://site.example",
        "http://localhost:5173",
        "http://[::1]:8080",
    )
    monkeypatch.setenv("SCOREBOARD_CORS_ORIGINS", "")
    assert load_settings().cors_origins == ()


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ("*", "no wildcards"),
        ("https://*.site.example", "no wildcards"),
        ("https://site.example/", "no path"),
        ("https://site.example/app", "no path"),
        ("site.example", "the scheme must be http or https"),
        ("ftp://site.example", "the scheme must be http or https"),
        ("null", "the scheme must be http or https"),
        ("https://site.example:99999", "the port must be"),
        ("https://user@site.example", "no user name"),
        ("https://site_example.com", "is not a host name"),
    ],
)
def test_a_bad_origin_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, entry: str, why: str
) -> None:
    monkeypatch.setenv("SCOREBOARD_CORS_ORIGINS", f"{SITE},{entry}")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    (line,) = caught.value.lines
    assert line.startswith("SCOREBOARD_CORS_ORIGINS=") and f"{entry!r} is not an origin" in line
    assert why in line


def test_a_bad_origin_stops_serve_with_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCOREBOARD_")}
    env["SCOREBOARD_CORS_ORIGINS"] = "https://site.example/"
    scoreboard = str(Path(sys.executable).with_name("scoreboard"))
    done = subprocess.run(
        [scoreboard, "serve", "--port", "1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "SCOREBOARD_CORS_ORIGINS='https://site.example/'" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) <= 2
