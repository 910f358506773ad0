"""The admin role and the admin audit log (API.md section 6): `GET /api/v1/admin/audit` for
admins only (a promoted user's new token, an admin key), newest first with opaque cursors;
a demoted admin's token stops being one. On SQLite, PostgreSQL and Redis."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jwt
import pytest
from tests.api.conftest import Api

from scoreboard.domain.errors import NotFound

AUDIT = "/api/v1/admin/audit"


async def login(api: Api, username: str) -> tuple[str, dict[str, str]]:
    r = await api.client.post(
        "/api/v1/auth/login", json={"username": username, "password": "correct horse"}
    )
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    return token, {"Authorization": f"Bearer {token}"}


async def admin_key(api: Api) -> dict[str, str]:
    key, _ = await api.services.apikeys.create("ops", "admin")
    return {"Authorization": f"Bearer {key}"}


async def test_only_admins_read_the_audit_log(api: Api) -> None:
    _, user = await api.user("mallory")
    scorer, _ = await api.services.apikeys.create("backend", "scorer")
    refusals: list[tuple[dict[str, str], int, str]] = [
        ({}, 401, "UNAUTHENTICATED"),
        ({"Authorization": "Bearer garbage"}, 401, "UNAUTHENTICATED"),
        (user, 403, "FORBIDDEN"),
        ({"Authorization": f"Bearer {scorer}"}, 403, "FORBIDDEN"),
    ]
    for headers, status, code in refusals:
        r = await api.client.get(AUDIT, headers=headers)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), headers
    r = await api.client.get(AUDIT, headers=await admin_key(api))
    assert r.status_code == 200, r.text
    assert r.json() == {"items": [], "next_cursor": None}


async def test_promote_is_audited_and_the_next_token_is_an_admins(api: Api) -> None:
    user_id, before = await api.user("alice")
    await api.services.roles.promote("alice", actor="cli:root", reason="site owner")
    # A token issued before the promotion names no role: not an admin's.
    assert (await api.client.get(AUDIT, headers=before)).status_code == 403
    token, after = await login(api, "alice")
    assert jwt.decode(token, options={"verify_signature": False})["roles"] == ["admin"]
    r = await api.client.get(AUDIT, headers=after)
    assert r.status_code == 200, r.text
    [item] = r.json()["items"]
    assert item["actor"] == "cli:root" and item["action"] == "promote"
    assert item["target"] == user_id and item["reason"] == "site owner"
    assert item["created_at"].endswith("Z") and isinstance(item["audit_id"], int)


async def test_a_demoted_admins_token_stops_being_one(
    database_url: str, api_factory: Callable[..., Any]
) -> None:
    # The bound is the account cache's (service/roles.py); 0 makes it immediate here.
    async with api_factory(database_url, account_cache_seconds=0) as api:
        await api.user("bob")
        await api.services.roles.promote("bob", actor="test")
        _, headers = await login(api, "bob")
        assert (await api.client.get(AUDIT, headers=headers)).status_code == 200
        await api.services.roles.demote("bob", actor="test", reason="left the team")
        r = await api.client.get(AUDIT, headers=headers)
        assert (r.status_code, r.json()["error"]["code"]) == (403, "FORBIDDEN")
        token, _ = await login(api, "bob")
        assert "roles" not in jwt.decode(token, options={"verify_signature": False})


async def test_pages_newest_first_with_opaque_cursors(api: Api) -> None:
    headers = await admin_key(api)
    for n in range(5):
        await api.services.audit.append("apikey:ops", "adjust", f"user-{n}", f"reason {n}")
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        r = await api.client.get(AUDIT, params=params, headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        seen += [item["target"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert not cursor.isdigit()  # opaque, not the bare id
    assert seen == [f"user-{n}" for n in reversed(range(5))] and pages == 3
    whole = (await api.client.get(AUDIT, params={"limit": 100}, headers=headers)).json()
    assert [item["target"] for item in whole["items"]] == seen and whole["next_cursor"] is None


async def test_bad_paging_is_400(api: Api) -> None:
    headers = await admin_key(api)
    for params in (
        {"limit": 0},
        {"limit": 101},
        {"limit": "x"},
        {"cursor": "%%%"},
        {"cursor": "MT"},
    ):
        r = await api.client.get(AUDIT, params=params, headers=headers)
        assert (r.status_code, r.json()["error"]["code"]) == (400, "VALIDATION_FAILED"), params


async def test_promote_and_demote_of_nobody_write_nothing(api: Api) -> None:
    with pytest.raises(NotFound):
        await api.services.roles.promote("nobody", actor="test")
    _, headers = await api.user("carol")
    assert (await api.client.delete("/api/v1/users/me", headers=headers)).status_code == 204
    with pytest.raises(NotFound):
        await api.services.roles.demote("carol", actor="test")
    assert (await api.services.audit.page()).items == []
