"""Sessions (API.md section 6, issue 12 item 7): login's refresh token, rotation, reuse
detection revoking the whole login, concurrent refreshes, expiry, logout, deleted accounts,
the refresh rate limit. Every test on the three backends."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from tests.api.clock import FakeClock
from tests.api.conftest import Api

from scoreboard.store.engine import async_url

PASSWORD = "correct horse"


async def login(api: Api, name: str, *, register: bool = True) -> dict[str, Any]:
    """Register `name` (unless told not to) and log in: the login's body."""
    credentials = {"username": name, "password": PASSWORD}
    if register:
        assert (await api.client.post("/api/v1/auth/register", json=credentials)).status_code == 201
    r = await api.client.post("/api/v1/auth/login", json=credentials)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def refresh(api: Api, token: str) -> httpx.Response:
    return await api.client.post("/api/v1/auth/refresh", json={"refresh_token": token})


async def logout(api: Api, token: Any) -> httpx.Response:
    return await api.client.post("/api/v1/auth/logout", json={"refresh_token": token})


def bearer(body: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {body['access_token']}"}


def refused(r: httpx.Response) -> bool:
    return r.status_code == 401 and r.json()["error"]["code"] == "UNAUTHENTICATED"


async def stored_hashes(database_url: str) -> list[str]:
    engine = create_async_engine(async_url(database_url), poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(sa.text("SELECT token_hash FROM refresh_tokens"))
            return [row[0] for row in rows]
    finally:
        await engine.dispose()


async def test_login_returns_a_refresh_token_stored_only_hashed(
    api: Api, database_url: str
) -> None:
    body = await login(api, "rita")
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
    token = body["refresh_token"]
    assert token.startswith("sbr_") and len(token) == 47
    assert await stored_hashes(database_url) == [hashlib.sha256(token.encode()).hexdigest()]
    # The 001 compatibility login keeps its specification's shape: no refresh token.
    r = await api.client.post("/auth/login", json={"username": "rita", "password": PASSWORD})
    assert r.status_code == 200 and set(r.json()) == {"accessToken", "expiresIn"}
    assert len(await stored_hashes(database_url)) == 1


async def test_a_refresh_rotates_and_its_access_token_works(api: Api) -> None:
    first = await login(api, "sam")
    r = await refresh(api, first["refresh_token"])
    assert r.status_code == 200, r.text
    second = r.json()
    assert set(second) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert second["token_type"] == "bearer" and second["expires_in"] > 0
    assert second["refresh_token"] != first["refresh_token"]
    me = await api.client.get("/api/v1/leaderboard/me", headers=bearer(second))
    assert me.status_code == 200, me.text
    # The chain goes on: the new token is good for one refresh too.
    third = await refresh(api, second["refresh_token"])
    assert third.status_code == 200 and third.json()["refresh_token"] != second["refresh_token"]


async def test_a_reused_token_revokes_its_whole_login_and_only_it(api: Api) -> None:
    laptop = await login(api, "tess")
    phone = await login(api, "tess", register=False)  # another login: another family
    rotated = (await refresh(api, laptop["refresh_token"])).json()["refresh_token"]
    assert refused(await refresh(api, laptop["refresh_token"]))  # presented a second time
    assert refused(await refresh(api, rotated))  # its family went with it
    assert refused(await refresh(api, laptop["refresh_token"]))
    assert (await refresh(api, phone["refresh_token"])).status_code == 200


async def test_of_concurrent_refreshes_of_one_token_exactly_one_succeeds(api: Api) -> None:
    for round_ in range(3):
        token = (await login(api, f"uma{round_}"))["refresh_token"]
        answers = await asyncio.gather(*(refresh(api, token) for _ in range(6)))
        statuses = sorted(r.status_code for r in answers)
        assert statuses == [200, 401, 401, 401, 401, 401], statuses
        # The losers presented a used token: a reuse, so the winner's successor is revoked
        # too (a client refreshes one at a time; docs in service/sessions.py).
        winner = next(r for r in answers if r.status_code == 200).json()
        assert refused(await refresh(api, winner["refresh_token"]))


async def test_refresh_tokens_expire_after_the_setting(
    database_url: str, api_factory: Callable[..., Any]
) -> None:
    clock = FakeClock()
    async with api_factory(database_url, clock=clock, refresh_ttl_seconds=60) as api:
        token = (await login(api, "vera"))["refresh_token"]
        clock.advance(59)
        r = await refresh(api, token)
        assert r.status_code == 200, r.text
        successor = r.json()["refresh_token"]  # lives 60 s from its own issue
        clock.advance(59)
        r = await refresh(api, successor)
        assert r.status_code == 200, r.text
        clock.advance(61)
        assert refused(await refresh(api, r.json()["refresh_token"]))


async def test_logout_revokes_the_login_and_is_idempotent(api: Api) -> None:
    body = await login(api, "wes")
    other = await login(api, "wes", register=False)
    rotated = (await refresh(api, body["refresh_token"])).json()["refresh_token"]
    r = await logout(api, rotated)  # no access token needed
    assert r.status_code == 204 and r.content == b""
    assert refused(await refresh(api, rotated))
    assert (await logout(api, rotated)).status_code == 204  # again: still 204
    # Unknown tokens, well-formed or not: 204, telling nothing.
    assert (await logout(api, "sbr_" + "A" * 43)).status_code == 204
    assert (await logout(api, "not a token")).status_code == 204
    # The other login is untouched; logging out with a used token of it ends it all the same.
    fresh = (await refresh(api, other["refresh_token"])).json()["refresh_token"]
    assert (await logout(api, other["refresh_token"])).status_code == 204
    assert refused(await refresh(api, fresh))


async def test_a_deleted_accounts_refresh_tokens_never_work(api: Api) -> None:
    body = await login(api, "xena")
    assert (await api.client.delete("/api/v1/users/me", headers=bearer(body))).status_code == 204
    assert refused(await refresh(api, body["refresh_token"]))
    assert refused(await refresh(api, body["refresh_token"]))  # not even "used" by that


async def test_refresh_and_logout_validate_their_body(api: Api) -> None:
    for payload in ({}, {"refresh_token": 5}, {"refresh_token": "sbr_x", "user_id": "u"}):
        for route in ("/api/v1/auth/refresh", "/api/v1/auth/logout"):
            r = await api.client.post(route, json=payload)
            assert r.status_code == 400, (route, payload, r.text)
            assert r.json()["error"]["code"] == "VALIDATION_FAILED"
    assert (await refresh(api, "sbr_" + "x" * 200)).status_code == 400  # over 128 characters
    assert refused(await refresh(api, "sbr_" + "A" * 43))  # unknown
    assert refused(await refresh(api, "eyJhbGciOiJIUzI1NiJ9.e30.x"))  # an access token is not one


async def test_refreshes_and_logouts_share_a_rate_limit_per_address(
    database_url: str, api_factory: Callable[..., Any]
) -> None:
    async with api_factory(database_url, rate_limit_refresh="3/minute") as api:
        token = (await login(api, "yuri"))["refresh_token"]
        assert (await refresh(api, token)).status_code == 200
        assert refused(await refresh(api, "sbr_" + "B" * 43))
        assert (await logout(api, "sbr_" + "C" * 43)).status_code == 204
        for r in (await refresh(api, "sbr_" + "D" * 43), await logout(api, token)):
            assert r.status_code == 429, r.text
            assert r.json()["error"]["code"] == "RATE_LIMITED" and "retry-after" in r.headers
