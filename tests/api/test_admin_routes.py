"""The moderation routes, `/api/v1/admin/*` (API.md section 6): every action with an admin
key, every refusal (401, 403, 404, 409, 400), each action in the admin audit log."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Api


async def admin_headers(api: Api, name: str = "moderator") -> dict[str, str]:
    key, _ = await api.services.apikeys.create(name, role="admin")
    return {"Authorization": f"Bearer {key}"}


async def ids(api: Api, **params: Any) -> list[str]:
    r = await api.client.get("/api/v1/leaderboard", params={"limit": 100, **params})
    return [item["user_id"] for item in r.json()["items"]]


async def test_moderation_routes(api: Api) -> None:
    admin = await admin_headers(api)
    user, user_h = await api.user()
    other, other_h = await api.user()
    first = (await api.score(user_h, "ACHIEVEMENT_UNLOCKED")).json()
    await api.score(other_h, "TASK_COMPLETED")
    reason = {"reason": "cheating"}
    base = "/api/v1/admin"

    r = await api.client.post(f"{base}/users/{user}/ban", json=reason, headers=admin)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "banned" and body["user_id"] == user and body["open_flags"] == 0
    assert {b["scope"] for b in body["boards"]} == {"global", "daily", "weekly", "monthly"}
    assert await ids(api) == [other]
    assert (await api.score(user_h)).status_code == 403
    r = await api.client.post(f"{base}/users/{user}/release", json=reason, headers=admin)
    assert r.status_code == 409 and r.json()["error"]["code"] == "CONFLICT"
    r = await api.client.post(f"{base}/users/{user}/unban", json=reason, headers=admin)
    assert r.status_code == 200 and r.json()["status"] == "active"
    assert await ids(api) == [user, other]
    r = await api.client.post(f"{base}/users/{user}/quarantine", json=reason, headers=admin)
    assert r.status_code == 200 and r.json()["status"] == "quarantined"
    assert await ids(api) == [other]
    r = await api.client.post(f"{base}/users/{user}/release", json=reason, headers=admin)
    assert r.status_code == 200 and await ids(api) == [user, other]

    r = await api.client.post(
        f"{base}/users/{other}/adjust", json={"points": 500, "reason": "prize"}, headers=admin
    )
    assert r.status_code == 201, r.text
    assert r.json()["awarded_points"] == 500 and r.json()["new_score"] == 510
    assert r.json()["action_type"] == "ADJUSTMENT" and r.json()["rank"] == 1
    assert await ids(api) == [other, user]
    r = await api.client.post(
        f"{base}/users/{other}/adjust", json={"points": -600, "reason": "oops"}, headers=admin
    )
    assert r.status_code == 201 and r.json()["new_score"] == -90  # scores may go down
    for bad in ({"points": 0, "reason": "x"}, {"points": 10**7, "reason": "x"}, {"points": 5}):
        r = await api.client.post(f"{base}/users/{other}/adjust", json=bad, headers=admin)
        assert r.status_code == 400, bad

    r = await api.client.post(f"{base}/events/{first['event_id']}/void", json=reason, headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["voids"] == first["event_id"] and r.json()["awarded_points"] == -100
    r = await api.client.post(f"{base}/events/{first['event_id']}/void", json=reason, headers=admin)
    assert r.status_code == 409 and r.json()["error"]["code"] == "ALREADY_VOIDED"
    r = await api.client.post(f"{base}/events/999999/void", json=reason, headers=admin)
    assert r.status_code == 404

    r = await api.client.get(f"{base}/users/{user}", headers=admin)
    assert r.status_code == 200 and r.json()["status"] == "active"
    assert (await api.client.get(f"{base}/users/nobody", headers=admin)).status_code == 404

    audit = (await api.client.get(f"{base}/audit", headers=admin)).json()["items"]
    actions = [item["action"] for item in audit]
    assert actions == ["void", "adjust", "adjust", "release", "quarantine", "unban", "ban"]
    assert {item["actor"] for item in audit} == {"apikey:moderator"}
    assert audit[-1]["target"] == user and audit[-1]["reason"] == "cheating"


async def test_moderation_refusals(api: Api) -> None:
    user, user_h = await api.user()
    path = f"/api/v1/admin/users/{user}/ban"
    assert (await api.client.post(path, json={"reason": "x"})).status_code == 401
    r = await api.client.post(path, json={"reason": "x"}, headers=user_h)
    assert r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN"
    admin = await admin_headers(api, "mod2")
    for bad in ({}, {"reason": ""}, {"reason": "x" * 501}, {"reason": "x", "extra": 1}):
        r = await api.client.post(path, json=bad, headers=admin)
        assert r.status_code == 400, bad
    r = await api.client.post("/api/v1/admin/users/nobody/ban", json={"reason": "x"}, headers=admin)
    assert r.status_code == 404
    assert (await api.client.get(f"/api/v1/admin/users/{user}", headers=user_h)).status_code == 403
