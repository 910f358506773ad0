"""Anomaly rules and flags (API.md section 6, docs/RULES.md), through the app on every
backend: each rule trips, once per (user, rule, window); writes never wait for (nor fail
with) the evaluation; resolving a flag (dismiss, ban, quarantine) and its refusals; the
`user.flagged` webhook; auto-quarantine; `open_flags`; the rules file at start-up."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from tests.api.clock import FakeClock
from tests.api.conftest import Api
from tests.ops.test_metrics import samples, value
from tests.service.webhook_receiver import receiving

from scoreboard.store.schema_rules import rule_addresses

BASE = "/api/v1/admin"
SECRET = "whsec-flags"
START = datetime(2026, 12, 2, 12, 0, 5, tzinfo=UTC)


def rules_file(tmp_path: Path, **rules: Any) -> Path:
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(rules))
    return path


async def admin_headers(api: Api) -> dict[str, str]:
    key, _ = await api.services.apikeys.create("moderator", role="admin")
    return {"Authorization": f"Bearer {key}"}


async def settled(api: Api) -> None:
    """Until the rules evaluated everything offered so far (a deadline, not a timing)."""
    for _ in range(1000):
        if api.services.rules.pending == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the rules did not evaluate what was queued")


async def flags(api: Api, admin: dict[str, str], status: str = "open") -> list[dict[str, Any]]:
    await settled(api)
    r = await api.client.get(f"{BASE}/flags", params={"status": status}, headers=admin)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def metric(api: Api, name: str, **labels: str) -> float:
    r = await api.client.get("/metrics")
    return value(samples(r.text), name, **labels)


async def scores(api: Api, headers: dict[str, str], n: int) -> None:
    """`n` events of 10 points (TASK_COMPLETED), each evaluated before the next is sent (so
    each is tallied on its own and the counts in a flag's detail are exact)."""
    for _ in range(n):
        r = await api.score(headers)
        assert r.status_code == 201, r.text
        await settled(api)


@asynccontextmanager
async def from_address(api: Api, address: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose requests come from `address` (the ASGI scope's client)."""
    transport = httpx.ASGITransport(app=api.app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def test_points_per_minute_trips_once_per_window(
    database_url: str, api_factory: Callable[..., Any], tmp_path: Path
) -> None:
    clock = FakeClock(START)
    path = rules_file(tmp_path, max_points_per_minute=25)
    async with api_factory(database_url, clock=clock, rules_file=path) as api:
        admin = await admin_headers(api)
        cheater, cheater_h = await api.user()
        honest, honest_h = await api.user()
        await scores(api, honest_h, 2)  # 20 points: within the limit
        await scores(api, cheater_h, 2)
        assert await flags(api, admin) == []
        await scores(api, cheater_h, 4)  # 30 points in the minute, then 40, 50, 60
        (flag,) = await flags(api, admin)
        assert flag["user_id"] == cheater and flag["rule"] == "max_points_per_minute"
        assert flag["detail"] == {"points": 30, "limit": 25, "window_seconds": 60}
        assert flag["status"] == "open" and flag["resolution"] is None
        assert flag["created_at"].endswith("Z")
        clock.advance(61)  # a new minute: the sliding minute holds nothing yet
        await scores(api, cheater_h, 2)
        assert len(await flags(api, admin)) == 1
        await scores(api, cheater_h, 1)
        newer, older = await flags(api, admin)  # newest first
        assert older == flag and newer["flag_id"] > flag["flag_id"]
        assert newer["detail"]["points"] == 30
        assert await metric(api, "scoreboard_flags_total", rule="max_points_per_minute") == 2
        r = await api.client.get(f"{BASE}/users/{cheater}", headers=admin)
        assert r.json()["open_flags"] == 2
        r = await api.client.get(f"{BASE}/users/{honest}", headers=admin)
        assert r.json()["open_flags"] == 0


async def test_accounts_per_address_trips_and_never_stores_the_address(
    database_url: str, api_factory: Callable[..., Any], tmp_path: Path
) -> None:
    path = rules_file(tmp_path, max_accounts_per_address_per_hour=2)
    farm = "203.0.113.77"
    async with api_factory(database_url, clock=FakeClock(START), rules_file=path) as api:
        admin = await admin_headers(api)
        users = [await api.user() for _ in range(4)]
        async with from_address(api, farm) as bots, from_address(api, "198.51.100.1") as home:
            event = {"action_type": "TASK_COMPLETED"}
            for _, headers in users[:2]:
                r = await bots.post("/api/v1/scores/events", json=event, headers=headers)
                assert r.status_code == 201
                await settled(api)
            assert await flags(api, admin) == []
            r = await home.post("/api/v1/scores/events", json=event, headers=users[3][1])
            assert r.status_code == 201
            r = await bots.post("/api/v1/scores/events", json=event, headers=users[2][1])
            assert r.status_code == 201
            (flag,) = await flags(api, admin)
            assert flag["user_id"] == users[2][0]
            assert flag["rule"] == "max_accounts_per_address_per_hour"
            detail = flag["detail"]
            assert {k: detail[k] for k in ("accounts", "limit", "window_seconds")} == {
                "accounts": 3,
                "limit": 2,
                "window_seconds": 3600,
            }
            address_id = detail["address_id"]
            assert len(address_id) == 12 and int(address_id, 16) >= 0
            # The first account scoring again from there is flagged too; once per hour.
            for _ in range(2):
                r = await bots.post("/api/v1/scores/events", json=event, headers=users[0][1])
                assert r.status_code == 201
                await settled(api)
            newer, _ = await flags(api, admin)
            assert newer["user_id"] == users[0][0]
            assert newer["detail"]["address_id"] == address_id
        store: Any = api.services.store
        async with store._engines.read.connect() as conn:
            rows = list(await conn.execute(sa.select(rule_addresses)))
        assert len(rows) == 4
        assert all(len(row.address_hash) == 64 and farm not in str(tuple(row)) for row in rows)
        assert sum(row.address_hash.startswith(address_id) for row in rows) == 3


async def test_a_too_fast_completion_is_flagged(
    database_url: str, api_factory: Callable[..., Any]
) -> None:
    async with api_factory(database_url) as api:
        admin = await admin_headers(api)
        user, headers = await api.user()
        base = f"/users/{user}/actions"
        for _ in range(2):
            r = await api.client.post(
                base, json={"status": "started", "type": "QUIZ_PASSED"}, headers=headers
            )
            assert r.status_code == 201, r.text
            action = r.json()["actionId"]
            r = await api.client.put(
                f"{base}/{action}", json={"status": "completed"}, headers=headers
            )
            assert r.status_code == 400, r.text
        (flag,) = await flags(api, admin)  # one per user and hour
        assert flag["user_id"] == user and flag["rule"] == "min_action_duration"
        detail = flag["detail"]
        assert detail["action_type"] == "QUIZ_PASSED" and detail["min_duration_seconds"] == 5.0
        assert 0 <= detail["elapsed_seconds"] < 5.0 and detail["action_id"]


async def test_the_duration_rule_off_flags_nothing(
    database_url: str, api_factory: Callable[..., Any], tmp_path: Path
) -> None:
    path = rules_file(tmp_path, min_action_duration=False)
    async with api_factory(database_url, rules_file=path) as api:
        admin = await admin_headers(api)
        user, headers = await api.user()
        base = f"/users/{user}/actions"
        r = await api.client.post(base, json={"type": "QUIZ_PASSED"}, headers=headers)
        assert r.status_code == 201, r.text
        r = await api.client.put(
            f"{base}/{r.json()['actionId']}", json={"status": "completed"}, headers=headers
        )
        assert r.status_code == 400
        assert await flags(api, admin) == []


async def test_writes_never_wait_for_the_rules(
    database_url: str, api_factory: Callable[..., Any], tmp_path: Path
) -> None:
    """A stopped evaluator (as good as a stuck one) and a queue of one: a burst is all
    201, the queue keeps one event and every other one is dropped and counted."""
    path = rules_file(tmp_path, max_points_per_minute=5)
    async with api_factory(
        database_url, clock=FakeClock(START), rules_file=path, rules_queue_size=1
    ) as api:
        admin = await admin_headers(api)
        await api.services.rules.close()
        user, headers = await api.user()
        replies = await asyncio.gather(*(api.score(headers) for _ in range(20)))
        assert [r.status_code for r in replies] == [201] * 20
        assert api.services.rules.pending == 1
        assert await metric(api, "scoreboard_rules_dropped_total") == 19
        api.services.rules.start()
        # The kept event trips the rule; the dropped ones were never counted.
        (flag,) = await flags(api, admin)
        assert flag["user_id"] == user and flag["detail"]["points"] == 10


async def test_writes_never_fail_with_the_rules(
    database_url: str, api_factory: Callable[..., Any]
) -> None:
    """The rules' table gone (as a broken database would be): writes are 201 all the same,
    and the events the rules could not evaluate are counted."""
    async with api_factory(database_url) as api:
        _, headers = await api.user()
        store: Any = api.services.store
        async with store._engines.write.begin() as conn:
            await conn.execute(sa.text("DROP TABLE rule_points"))
        await scores(api, headers, 3)
        await settled(api)
        assert await metric(api, "scoreboard_rules_failed_total") >= 1
        assert (await api.score(headers)).status_code == 201


async def test_resolving_flags(
    database_url: str, api_factory: Callable[..., Any], tmp_path: Path
) -> None:
    path = rules_file(tmp_path, max_points_per_minute=15)
    async with api_factory(database_url, clock=FakeClock(START), rules_file=path) as api:
        admin = await admin_headers(api)
        users = [await api.user() for _ in range(3)]
        for _, headers in users:
            await scores(api, headers, 2)
        flagged = {f["user_id"]: f["flag_id"] for f in await flags(api, admin)}
        (dismissed, d_h), (banned, b_h), (hidden, _) = users
        assert set(flagged) == {dismissed, banned, hidden}

        def resolve(user_id: str, action: str, reason: str = "looked at it") -> Any:
            return api.client.post(
                f"{BASE}/flags/{flagged[user_id]}/resolve",
                json={"action": action, "reason": reason},
                headers=admin,
            )

        r = await resolve(dismissed, "dismiss", "a fast player")
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["status"], body["resolution"]) == ("resolved", "dismissed")
        assert body["resolved_by"] == "apikey:moderator" and body["reason"] == "a fast player"
        assert body["resolved_at"].endswith("Z") and body["flag_id"] == flagged[dismissed]
        r = await resolve(banned, "ban")
        assert r.status_code == 200 and r.json()["resolution"] == "banned"
        r = await resolve(hidden, "quarantine")
        assert r.status_code == 200 and r.json()["resolution"] == "quarantined"

        board = await api.client.get("/api/v1/leaderboard", params={"limit": 10})
        assert [i["user_id"] for i in board.json()["items"]] == [dismissed]
        assert (await api.score(b_h)).status_code == 403  # banned: writes refused
        assert (await api.score(d_h)).status_code == 201
        for user_id, status in ((banned, "banned"), (hidden, "quarantined")):
            view = (await api.client.get(f"{BASE}/users/{user_id}", headers=admin)).json()
            assert (view["status"], view["open_flags"]) == (status, 0)
        audit = (await api.client.get(f"{BASE}/audit", headers=admin)).json()["items"]
        assert [(i["action"], i["target"]) for i in audit] == [
            ("resolve_flag", str(flagged[hidden])),
            ("quarantine", hidden),
            ("resolve_flag", str(flagged[banned])),
            ("ban", banned),
            ("resolve_flag", str(flagged[dismissed])),
        ]
        assert await flags(api, admin) == []
        assert len(await flags(api, admin, "resolved")) == 3
        assert len(await flags(api, admin, "all")) == 3

        r = await resolve(dismissed, "ban")
        assert r.status_code == 409 and r.json()["error"]["code"] == "ALREADY_RESOLVED"
        r = await api.client.post(
            f"{BASE}/flags/999999/resolve", json={"action": "dismiss", "reason": "x"}, headers=admin
        )
        assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND"
        for bad in (
            {"action": "delete", "reason": "x"},
            {"action": "dismiss"},
            {"action": "dismiss", "reason": ""},
            {"action": "dismiss", "reason": "x", "extra": 1},
        ):
            r = await api.client.post(f"{BASE}/flags/1/resolve", json=bad, headers=admin)
            assert r.status_code == 400 and r.json()["error"]["code"] == "VALIDATION_FAILED", bad
        for url, params in (
            (f"{BASE}/flags/abc/resolve", None),
            (f"{BASE}/flags", {"status": "closed"}),
            (f"{BASE}/flags", {"limit": 0}),
            (f"{BASE}/flags", {"cursor": "nonsense"}),
        ):
            method = "POST" if url.endswith("resolve") else "GET"
            body = {"action": "dismiss", "reason": "x"} if method == "POST" else None
            r = await api.client.request(method, url, params=params, json=body, headers=admin)
            assert r.status_code == 400, (url, params, r.text)
        flag_url = f"{BASE}/flags/{flagged[dismissed]}/resolve"
        for headers, status in (({}, 401), (d_h, 403)):
            r = await api.client.get(f"{BASE}/flags", headers=headers)
            assert r.status_code == status and "error" in r.json()
            r = await api.client.post(
                flag_url, json={"action": "dismiss", "reason": "x"}, headers=headers
            )
            assert r.status_code == status


async def test_the_flag_list_pages(
    database_url: str, api_factory: Callable[..., Any], tmp_path: Path
) -> None:
    path = rules_file(tmp_path, max_points_per_minute=5)
    async with api_factory(database_url, clock=FakeClock(START), rules_file=path) as api:
        admin = await admin_headers(api)
        for _ in range(3):
            _, headers = await api.user()
            await scores(api, headers, 1)
        everything = await flags(api, admin)
        seen: list[int] = []
        cursor = None
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            r = await api.client.get(f"{BASE}/flags", params=params, headers=admin)
            page = r.json()
            seen += [f["flag_id"] for f in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == [f["flag_id"] for f in everything] and len(seen) == 3


@pytest.mark.parametrize("backend", ["sqlite", "redis"], indirect=True)
async def test_the_webhook_and_auto_quarantine(
    database_url: str, api_factory: Callable[..., Any], tmp_path: Path
) -> None:
    clock = FakeClock(START)
    path = rules_file(tmp_path, max_points_per_minute=15, auto_quarantine=True)
    with receiving(SECRET) as receiver:
        hooks = {"webhook_url": receiver.url, "webhook_secret": SECRET}
        async with api_factory(database_url, clock=clock, rules_file=path, **hooks) as api:
            admin = await admin_headers(api)
            suspect, suspect_h = await api.user()
            banned, banned_h = await api.user()
            other, other_h = await api.user()
            await scores(api, other_h, 1)
            await scores(api, suspect_h, 2)
            (flag,) = await flags(api, admin)
            await receiver.wait_for(lambda: len(receiver.of_type("user.flagged")) == 1)
            (hook,) = receiver.of_type("user.flagged")
            assert hook["data"] == {
                "flag_id": flag["flag_id"],
                "user_id": suspect,
                "rule": "max_points_per_minute",
                "detail": flag["detail"],
                "created_at": flag["created_at"],
            }
            view = (await api.client.get(f"{BASE}/users/{suspect}", headers=admin)).json()
            assert (view["status"], view["open_flags"]) == ("quarantined", 1)
            board = await api.client.get("/api/v1/leaderboard", params={"limit": 10})
            assert [i["user_id"] for i in board.json()["items"]] == [other]
            # Quarantined already: a later flag does not quarantine again.
            clock.advance(61)
            await scores(api, suspect_h, 2)
            assert len(await flags(api, admin)) == 2
            # Banned: the flag stays a flag, the ban stays a ban.
            await scores(api, banned_h, 1)
            r = await api.client.post(
                f"{BASE}/users/{banned}/ban", json={"reason": "known"}, headers=admin
            )
            assert r.status_code == 200
            r = await api.client.post(
                f"/users/{banned}/actions", json={"type": "QUIZ_PASSED"}, headers=banned_h
            )
            action = r.json()["actionId"]
            r = await api.client.put(
                f"/users/{banned}/actions/{action}", json={"status": "completed"}, headers=banned_h
            )
            assert r.status_code == 400
            assert len(await flags(api, admin)) == 3
            view = (await api.client.get(f"{BASE}/users/{banned}", headers=admin)).json()
            assert view["status"] == "banned"
            audit = (await api.client.get(f"{BASE}/audit", headers=admin)).json()["items"]
            assert [(i["actor"], i["action"], i["target"]) for i in audit] == [
                ("apikey:moderator", "ban", banned),
                ("rules", "quarantine", suspect),
            ]
            assert audit[1]["reason"] == f"flag {flag['flag_id']}: max_points_per_minute"
            await receiver.wait_for(lambda: len(receiver.of_type("user.flagged")) == 3)


async def test_a_bad_rules_file_stops_start_up(tmp_path: Path) -> None:
    from scoreboard.config import Settings

    path = rules_file(tmp_path, max_points_per_minute="lots")
    with pytest.raises(ValueError, match=f"rules file {path}: field 'max_points_per_minute'"):
        Settings(_env_file=None, rules_file=path)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match=r"rules file .*nowhere\.json: cannot be read"):
        Settings(_env_file=None, rules_file=tmp_path / "nowhere.json")  # type: ignore[call-arg]
