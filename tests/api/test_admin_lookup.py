"""`GET /api/v1/admin/users?username=NAME` (the admin page's lookup by name): the same body as
`GET /api/v1/admin/users/{user_id}`; 401 without a token, 403 for a non-admin, 404 for an
unknown or deleted username, 400 for a missing or malformed one. On every backend."""

from __future__ import annotations

from tests.api.conftest import Api

PATH = "/api/v1/admin/users"


async def admin_headers(api: Api) -> dict[str, str]:
    key, _ = await api.services.apikeys.create("lookup", role="admin")
    return {"Authorization": f"Bearer {key}"}


async def test_by_username_is_the_same_view_as_by_id(api: Api) -> None:
    admin = await admin_headers(api)
    user, user_h = await api.user("Lookup.Me")
    await api.user("lookup.me2")  # a near name is not a match
    await api.score(user_h, "TASK_COMPLETED")
    r = await api.client.post(f"{PATH}/{user}/quarantine", json={"reason": "x"}, headers=admin)
    assert r.status_code == 200, r.text
    by_id = await api.client.get(f"{PATH}/{user}", headers=admin)
    by_name = await api.client.get(PATH, params={"username": "Lookup.Me"}, headers=admin)
    assert by_name.status_code == 200, by_name.text
    assert by_name.json() == by_id.json()
    body = by_name.json()
    assert (body["user_id"], body["username"], body["status"]) == (
        user,
        "Lookup.Me",
        "quarantined",
    )
    assert {b["scope"] for b in body["boards"]} == {"global", "daily", "weekly", "monthly"}
    assert all(b["score"] == 10 and b["rank"] is None for b in body["boards"])


async def test_refusals(api: Api) -> None:
    admin = await admin_headers(api)
    _, gone_h = await api.user("leaving")
    _, user_h = await api.user("plainuser")
    assert (await api.client.delete("/api/v1/users/me", headers=gone_h)).status_code == 204

    r = await api.client.get(PATH, params={"username": "plainuser"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "UNAUTHENTICATED"
    r = await api.client.get(PATH, params={"username": "plainuser"}, headers=user_h)
    assert r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN"
    for missing in ("nobody", "leaving", "PLAINUSER"):
        r = await api.client.get(PATH, params={"username": missing}, headers=admin)
        assert r.status_code == 404, missing
        assert r.json()["error"]["code"] == "NOT_FOUND"
    for bad in ({}, {"username": ""}, {"username": "x" * 65}):
        r = await api.client.get(PATH, params=bad, headers=admin)
        assert r.status_code == 400, bad
        assert r.json()["error"]["code"] == "VALIDATION_FAILED"
