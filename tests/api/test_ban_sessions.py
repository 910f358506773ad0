"""A ban ends the user's sessions (API.md section 6, issue 12 item 3): every refresh token of
the user is revoked in the ban's own transaction (401 on refresh, also after an unban), and
the access tokens already issued are refused (403 `FORBIDDEN`) on every authenticated route
within `SCOREBOARD_ACCOUNT_CACHE_SECONDS` (0 here), reads of /me and the live endpoint
included; writes are refused at once by the batch whatever the cache. A quarantine ends
nothing (the user is not told). On the three backends."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from tests.api.conftest import Api
from tests.api.test_live_boards import connect
from tests.api.test_sessions import bearer, login, refresh, refused

from scoreboard.realtime.subscriber import CloseCode
from scoreboard.service.live import Refused

NO_CACHE = {"account_cache_seconds": 0}
COMPAT: list[tuple[str, str, Any]] = [
    ("GET", "/api/scores/me", None),
    ("POST", "/api/score/update", {"score_increment": 10}),
    ("POST", "/api/v1/scores/update", {"action_type": "TASK_COMPLETED", "score_increment": 10}),
    ("GET", "/api/v1/users/me", None),
    ("GET", "/api/v1/users/me/events", None),
    ("PATCH", "/api/v1/users/me", {"display_name": "Still here"}),
]


async def admin_key(api: Api) -> dict[str, str]:
    key, _ = await api.services.apikeys.create("mod-admin", role="admin")
    return {"Authorization": f"Bearer {key}"}


async def moderate(api: Api, admin: dict[str, str], user_id: str, action: str) -> None:
    r = await api.client.post(
        f"/api/v1/admin/users/{user_id}/{action}", json={"reason": "test"}, headers=admin
    )
    assert r.status_code == 200, r.text


def forbidden(r: Any) -> bool:
    return r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN"


async def me(api: Api, session: dict[str, Any]) -> Any:
    return await api.client.get("/api/v1/leaderboard/me", headers=bearer(session))


async def test_a_ban_ends_every_session_and_an_unban_brings_none_back(
    database_url: str, api_factory: Callable[..., Any]
) -> None:
    async with api_factory(database_url, **NO_CACHE) as api:
        admin = await admin_key(api)
        first = await login(api, "cheater")
        second = await login(api, "cheater", register=False)  # another device: its own family
        r = await refresh(api, first["refresh_token"])
        assert r.status_code == 200, r.text
        first = r.json()  # the rotated session: its token is the live one of that family
        honest = await login(api, "honest")
        assert (await api.score(bearer(first))).status_code == 201
        user_id = (await me(api, first)).json()["user_id"]
        await moderate(api, admin, user_id, "ban")

        for session in (first, second):
            assert refused(await refresh(api, session["refresh_token"]))
            assert forbidden(await me(api, session))
            assert forbidden(await api.score(bearer(session)))
            assert forbidden(
                await api.client.get("/api/v1/users/me/friends", headers=bearer(session))
            )
        for method, path, body in COMPAT:  # every dialect's routes, in their own shapes
            r = await api.client.request(method, path, json=body, headers=bearer(first))
            assert r.status_code == 403 and "banned" in r.text, (path, r.text)
        with pytest.raises(Refused) as caught:
            async with connect(api, first["access_token"]):
                pass
        assert caught.value.code == CloseCode.POLICY_VIOLATION
        assert caught.value.error.code == "FORBIDDEN"
        # Signing in still answers (decision), but no session of it works while banned.
        during = await login(api, "cheater", register=False)
        assert forbidden(await me(api, during))
        assert refused(await refresh(api, during["refresh_token"]))
        # Nobody else's session ended.
        r = await refresh(api, honest["refresh_token"])
        assert r.status_code == 200, r.text

        await moderate(api, admin, user_id, "unban")
        for session in (first, second):
            assert refused(await refresh(api, session["refresh_token"]))  # revoked for good
        # Access tokens are not stored: one issued before the ban works again until its exp.
        assert (await me(api, first)).status_code == 200
        assert (await api.score(bearer(first))).status_code == 201
        fresh = await login(api, "cheater", register=False)
        r = await refresh(api, fresh["refresh_token"])
        assert r.status_code == 200, r.text


async def test_a_quarantine_ends_no_session(
    database_url: str, api_factory: Callable[..., Any]
) -> None:
    async with api_factory(database_url, **NO_CACHE) as api:
        admin = await admin_key(api)
        session = await login(api, "suspect")
        user_id = (await me(api, session)).json()["user_id"]
        await moderate(api, admin, user_id, "quarantine")
        assert (await me(api, session)).status_code == 200
        assert (await api.score(bearer(session))).status_code == 201
        r = await refresh(api, session["refresh_token"])
        assert r.status_code == 200, r.text
        await moderate(api, admin, user_id, "ban")  # a ban replaces the quarantine
        assert refused(await refresh(api, r.json()["refresh_token"]))
        assert forbidden(await me(api, r.json()))
