"""The steps of tests/api/test_moderation_fold.py and the test's own model of them: each step
is done over HTTP (scores with the user's token, moderation with an admin key) and its answer
checked against what the contract says it must be, given what the test did so far
(`Model`: every event it expects in the audit log, every user's status and region)."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
from hypothesis import event
from tests.api.clock import FakeClock
from tests.api.moderation_model import Logged

from scoreboard.container import Services


@dataclass(frozen=True)
class Score:
    user: int
    action: str
    minutes: int  # the clock moves on this much first
    region: str | None  # the user's region from this event on ("keep": unchanged)


@dataclass(frozen=True)
class Void:
    pick: int  # which event of the log so far (compensations included), modulo its length


@dataclass(frozen=True)
class Adjust:
    user: int
    points: int
    minutes: int


@dataclass(frozen=True)
class Moderate:
    user: int
    action: str  # ban | unban | quarantine | release


Step = Score | Void | Adjust | Moderate


STATUS_OF = {"ban": "banned", "quarantine": "quarantined", "unban": "active", "release": "active"}
UNDOES = {"unban": "banned", "release": "quarantined"}


@dataclass
class Model:
    """What the test did and was told: every event it expects in the log, and each status."""

    users: list[str]
    tokens: dict[str, dict[str, str]]
    regions: list[str | None]
    statuses: dict[str, str]
    events: list[Logged] = field(default_factory=list)


def reason() -> dict[str, str]:
    return {"reason": "property test"}


def code(r: httpx.Response) -> str:
    return str(r.json()["error"]["code"])


async def step(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    clock: FakeClock,
    services: Services,
    model: Model,
    s: Step,
) -> None:
    if isinstance(s, Score):
        clock.advance(s.minutes * 60)
        user = model.users[s.user]
        if s.region != "keep":
            model.regions[s.user] = s.region
            await services.store.update_profile(user, region=s.region or "")
        r = await client.post(
            "/api/v1/scores/events", json={"action_type": s.action}, headers=model.tokens[user]
        )
        if model.statuses[user] == "banned":
            assert (r.status_code, code(r)) == (403, "FORBIDDEN"), r.text
            return
        assert r.status_code == 201, r.text
        points = r.json()["awarded_points"]
        model.events.append(
            Logged(
                r.json()["event_id"], user, s.action, points, clock(), model.regions[s.user], None
            )
        )
    elif isinstance(s, Void):
        if not model.events:
            return
        target = model.events[s.pick % len(model.events)]
        r = await client.post(
            f"/api/v1/admin/events/{target.event_id}/void", json=reason(), headers=admin
        )
        event(f"void answered {r.status_code}")  # --hypothesis-show-statistics
        if target.voids is not None:
            assert (r.status_code, code(r)) == (400, "VALIDATION_FAILED"), r.text
        elif any(e.voids == target.event_id for e in model.events):
            assert (r.status_code, code(r)) == (409, "ALREADY_VOIDED"), r.text
        else:
            assert r.status_code == 200, r.text
            body = r.json()
            assert (body["voids"], body["awarded_points"]) == (target.event_id, -target.points)
            model.events.append(
                Logged(
                    body["event_id"],
                    target.user_id,
                    target.action_type,
                    -target.points,
                    target.at_us,
                    target.region,
                    target.event_id,
                )
            )
    elif isinstance(s, Adjust):
        clock.advance(s.minutes * 60)
        user = model.users[s.user]
        r = await client.post(
            f"/api/v1/admin/users/{user}/adjust",
            json={"points": s.points, **reason()},
            headers=admin,
        )
        if model.statuses[user] == "banned":
            assert (r.status_code, code(r)) == (409, "CONFLICT"), r.text
            return
        assert r.status_code == 201, r.text
        assert r.json()["awarded_points"] == s.points
        model.events.append(
            Logged(
                r.json()["event_id"],
                user,
                "ADJUSTMENT",
                s.points,
                clock(),
                model.regions[s.user],
                None,
            )
        )
    else:
        user = model.users[s.user]
        r = await client.post(
            f"/api/v1/admin/users/{user}/{s.action}", json=reason(), headers=admin
        )
        undone = UNDOES.get(s.action)
        if undone is not None and model.statuses[user] != undone:
            assert (r.status_code, code(r)) == (409, "CONFLICT"), r.text
            return
        assert r.status_code == 200, r.text
        model.statuses[user] = STATUS_OF[s.action]
        assert r.json()["status"] == model.statuses[user]
