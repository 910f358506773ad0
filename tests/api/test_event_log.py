"""The event log (API.md section 6, "Audit log query"): `GET /api/v1/admin/events` (who may
read it, its refusals, its items and sources, filters, cursor pages newest first) and
`GET /api/v1/users/me/events` (the caller's own, sources as a user is told them). On SQLite,
PostgreSQL and Redis. The NDJSON export: `test_event_export.py`."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from tests.api.conftest import Api
from tests.api.events_client import (
    EVENTS,
    MINE,
    NDJSON,
    admin_key,
    bulk,
    export,
    iso,
    logged,
    walk,
)

from scoreboard.store.event_log import LoggedEvent


async def test_who_may_read_the_event_log(api: Api) -> None:
    _, user = await api.user()
    scorer, _ = await api.services.apikeys.create("backend", "scorer")
    admin = await admin_key(api)
    refusals: list[tuple[str, dict[str, str], int, str]] = [
        (EVENTS, {}, 401, "UNAUTHENTICATED"),
        (EVENTS, {"Authorization": "Bearer garbage"}, 401, "UNAUTHENTICATED"),
        (EVENTS, user, 403, "FORBIDDEN"),
        (EVENTS, {"Authorization": f"Bearer {scorer}"}, 403, "FORBIDDEN"),
        (EVENTS, user | NDJSON, 403, "FORBIDDEN"),
        (MINE, {}, 401, "UNAUTHENTICATED"),
        (MINE, {"Authorization": "Bearer garbage"}, 401, "UNAUTHENTICATED"),
        (MINE, admin, 401, "UNAUTHENTICATED"),  # an API key is no user: it has no events
    ]
    for path, headers, status, code in refusals:
        r = await api.client.get(path, headers=headers)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), (path, headers)
    for path, headers in ((EVENTS, admin), (MINE, user)):
        r = await api.client.get(path, headers=headers)
        assert r.status_code == 200, r.text
        assert r.json() == {"items": [], "next_cursor": None}
    assert await export(api, admin) == []


async def test_bad_input_is_refused_with_the_error_shape(api: Api) -> None:
    _, user = await api.user()
    admin = await admin_key(api)
    not_ours = base64.urlsafe_b64encode(b"12x").decode().rstrip("=")
    refused: list[tuple[str, dict[str, Any], str]] = [
        (EVENTS, {"cursor": "garbage!"}, "cursor"),
        (EVENTS, {"cursor": not_ours}, "cursor"),
        (EVENTS, {"cursor": "MTI="}, "cursor"),  # padded: not what the API hands out
        (EVENTS, {"cursor": "x" * 65}, "cursor"),
        (EVENTS, {"limit": 0}, "limit"),
        (EVENTS, {"limit": 101}, "limit"),
        (EVENTS, {"limit": "many"}, "limit"),
        (EVENTS, {"since": "yesterday"}, "since"),
        (EVENTS, {"since": "2026-12-01T00:00:00"}, "since"),  # no time zone: not guessed
        (EVENTS, {"until": "2026-12-01"}, "until"),
        (EVENTS, {"until": "2026-13-01T00:00:00Z"}, "until"),
        (EVENTS, {"since": "1764547200"}, "since"),  # epoch seconds are not ISO-8601
        (EVENTS, {"since": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z"}, "since"),
        (EVENTS, {"user_id": "u" * 65}, "user_id"),
        (EVENTS, {"action_type": ""}, "action_type"),
        (MINE, {"cursor": "garbage!"}, "cursor"),
        (MINE, {"limit": 0}, "limit"),
        (MINE, {"limit": 101}, "limit"),
    ]
    for path, params, field in refused:
        for headers in [admin if path == EVENTS else user] + ([admin | NDJSON] * (path == EVENTS)):
            r = await api.client.get(path, params=params, headers=headers)
            assert r.status_code == 400, (path, params, r.text)
            error = r.json()["error"]
            assert error["code"] == "VALIDATION_FAILED" and error["message"], (params, error)
            assert field in {d["field"] for d in error["details"]}, (params, error)
    # A time with an offset is the same instant as in UTC; since == until is simply empty.
    for params in (
        {"since": "2026-12-01T01:00:00+01:00", "until": "2026-12-01T00:00:00Z"},
        {"since": "2026-12-01T00:00:00.5Z"},
    ):
        r = await api.client.get(EVENTS, params=params, headers=admin)
        assert r.status_code == 200, (params, r.text)


async def test_items_sources_and_the_void_pair(api: Api) -> None:
    alice, alice_h = await api.user()
    bob, bob_h = await api.user()
    boss, _ = await api.user("boss")
    await api.services.roles.promote("boss", actor="test")
    r = await api.client.post(
        "/api/v1/auth/login", json={"username": "boss", "password": "correct horse"}
    )
    boss_h = {"Authorization": f"Bearer {r.json()['access_token']}"}
    scorer, _ = await api.services.apikeys.create("backend", "scorer")

    own = (await api.score(alice_h, "TASK_COMPLETED", key="k-1")).json()
    server = await api.client.post(
        f"/api/v1/users/{alice}/score-events",
        json={"action_type": "ACHIEVEMENT_UNLOCKED"},
        headers={"Authorization": f"Bearer {scorer}", "Idempotency-Key": "srv-1"},
    )
    assert server.status_code == 201, server.text
    adjusted = await api.client.post(
        f"/api/v1/admin/users/{alice}/adjust", json={"points": -3, "reason": "x"}, headers=boss_h
    )
    assert adjusted.status_code == 201, adjusted.text
    voided = await api.client.post(
        f"/api/v1/admin/events/{own['event_id']}/void", json={"reason": "dup"}, headers=boss_h
    )
    assert voided.status_code == 200, voided.text
    by_key = await api.client.post(
        f"/api/v1/admin/users/{bob}/adjust",
        json={"points": 5, "reason": "x"},
        headers=await admin_key(api),
    )
    assert by_key.status_code == 201, by_key.text
    bobs = (await api.score(bob_h, "TASK_COMPLETED")).json()

    items = await walk(api, EVENTS, await admin_key(api, "reader"))
    ids = {
        "own": own["event_id"],
        "server": server.json()["event_id"],
        "adjust": adjusted.json()["event_id"],
        "void": voided.json()["event_id"],
        "by_key": by_key.json()["event_id"],
        "bob": bobs["event_id"],
    }
    assert [i["event_id"] for i in items] == sorted(ids.values(), reverse=True)
    got = {i["event_id"]: i for i in items}
    for item in items:
        assert item["created_at"].endswith("Z") and "T" in item["created_at"]
        del item["created_at"]
    expected = {
        "own": (alice, "TASK_COMPLETED", 10, "k-1", None, ids["void"], "user"),
        "server": (alice, "ACHIEVEMENT_UNLOCKED", 100, "srv-1", None, None, "apikey:backend"),
        "adjust": (alice, "ADJUSTMENT", -3, None, None, None, f"admin:{boss}"),
        "void": (alice, "TASK_COMPLETED", -10, None, ids["own"], None, f"admin:{boss}"),
        "by_key": (bob, "ADJUSTMENT", 5, None, None, None, "apikey:ops"),
        "bob": (bob, "TASK_COMPLETED", 10, None, None, None, "user"),
    }
    keys = ("user_id", "action_type", "points", "idempotency_key", "voids", "voided_by", "source")
    for name, values in expected.items():
        assert got[ids[name]] == {"event_id": ids[name], **dict(zip(keys, values, strict=True))}

    # The user's own view: their events only, the same items but for who wrote them, told as
    # `user`, `server` or `admin` (never which key or which admin). Also while quarantined.
    told = {"own": "user", "server": "server", "adjust": "admin", "void": "admin"}
    await api.services.moderation.act("test", "quarantine", alice, "looks odd")
    mine = await walk(api, MINE, alice_h, limit=2)
    assert [i["event_id"] for i in mine] == sorted((ids[n] for n in told), reverse=True)
    for item in mine:
        assert item["created_at"].endswith("Z")
        del item["created_at"]
        name = next(n for n in told if ids[n] == item["event_id"])
        assert item == got[ids[name]] | {"source": told[name]}
    theirs = await walk(api, MINE, bob_h)
    assert [(i["event_id"], i["source"]) for i in theirs] == [
        (ids["bob"], "user"),
        (ids["by_key"], "server"),
    ]


async def test_filters_each_and_combined(api: Api) -> None:
    alice, alice_h = await api.user()
    bob, bob_h = await api.user()
    for i in range(12):
        action = "ACHIEVEMENT_UNLOCKED" if i % 4 else "TASK_COMPLETED"
        r = await api.score(alice_h if i % 3 else bob_h, action)
        assert r.status_code == 201, r.text
    await api.score(alice_h, "TASK_COMPLETED")
    admin = await admin_key(api)
    everything = await logged(api)
    assert len(everything) == 13
    middle, late = everything[9].created_at, everything[2].created_at
    cases: list[tuple[dict[str, Any], Callable[[LoggedEvent], bool]]] = [
        ({}, lambda e: True),
        ({"user_id": alice}, lambda e: e.user_id == alice),
        ({"user_id": "nobody"}, lambda e: False),
        ({"action_type": "TASK_COMPLETED"}, lambda e: e.action_type == "TASK_COMPLETED"),
        ({"action_type": "NO_SUCH_TYPE"}, lambda e: False),
        ({"since": iso(middle)}, lambda e: e.created_at >= middle),
        ({"until": iso(middle)}, lambda e: e.created_at < middle),
        (
            {"since": iso(middle, 5), "until": iso(late, -7)},
            lambda e: middle <= e.created_at < late,
        ),
        ({"since": iso(late), "until": iso(late)}, lambda e: False),
        (
            {"user_id": alice, "action_type": "ACHIEVEMENT_UNLOCKED", "since": iso(middle)},
            lambda e: (
                e.user_id == alice
                and e.action_type == "ACHIEVEMENT_UNLOCKED"
                and e.created_at >= middle
            ),
        ),
        (
            {"user_id": bob, "until": iso(late)},
            lambda e: e.user_id == bob and e.created_at < late,
        ),
    ]
    for params, keep in cases:
        want = [e.event_id for e in everything if keep(e)]
        got = [i["event_id"] for i in await walk(api, EVENTS, admin, limit=2, **params)]
        assert got == want, params
        assert [i["event_id"] for i in await export(api, admin, **params)] == want, params
    # The filters narrow the sets the cases cover: not all equal, not all empty.
    assert 0 < len([e for e in everything if e.created_at >= middle]) < len(everything)


async def test_pages_cross_without_duplicates_or_gaps(api: Api) -> None:
    alice, _ = await api.user()
    bob, _ = await api.user()
    await bulk(api, [alice, bob], 23)
    admin = await admin_key(api)
    whole = await walk(api, EVENTS, admin, limit=100)
    assert len(whole) == 23
    for limit in (1, 5, 22, 23):
        assert await walk(api, EVENTS, admin, limit=limit) == whole, limit
    r = await api.client.get(EVENTS, params={"limit": 23}, headers=admin)
    assert r.json()["next_cursor"] is None
    # A cursor stays valid while events are appended: they show on a first page only.
    first = (await api.client.get(EVENTS, params={"limit": 10}, headers=admin)).json()
    await bulk(api, [alice], 4)
    rest = await walk(api, EVENTS, admin, limit=7, cursor=first["next_cursor"])
    assert first["items"] + rest == whole
    # The default page holds 50.
    await bulk(api, [bob], 40)
    r = await api.client.get(EVENTS, headers=admin)
    assert len(r.json()["items"]) == 50 and r.json()["next_cursor"] is not None


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_the_openapi_document_shows_both_media_types(api: Api) -> None:
    doc = (await api.client.get("/openapi.json")).json()
    ok = doc["paths"][EVENTS]["get"]["responses"]["200"]["content"]
    assert set(ok) == {"application/json", "application/x-ndjson"}
    assert ok["application/json"]["schema"] == {"$ref": "#/components/schemas/EventPageOut"}
    mine = doc["paths"][MINE]["get"]
    assert mine["security"] == [{"bearer": []}]
    assert set(mine["responses"]) == {"200", "400", "401", "403", "413", "503"}
