"""`scoreboard demo`: drive realistic activity against a running service so the page moves.

Demo users `demo-1` … `demo-N` (one fixed password, friendly display names) are registered
when they do not exist yet and logged in (a later run logs in without registering again: a
first login of `demo-1` tells which, so the per-address sign-up and login allowances are left
to a browser opened beside the demo); then score events with actions from the service's own
catalogue are posted at about `rate` events per second in total, for `duration` seconds.

Everything goes through the public HTTP API, exactly like a real website would, so every rule
of the service applies to the demo too:
- logins are rate limited per client address (default 10/minute): users whose login is refused
  wait for `Retry-After` and join the activity as soon as they are let in;
- score events are rate limited per user (default 60/minute): a user who gets 429 pauses for
  `Retry-After` while the others carry on;
- points come from the catalogue; the demo never decides a score.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

DEMO_PASSWORD = "demo-password"
DEMO_NAMES = (
    "Ada",
    "Grace",
    "Alan",
    "Katherine",
    "Linus",
    "Margaret",
    "Dennis",
    "Barbara",
    "Ken",
    "Frances",
    "Edsger",
    "Radia",
    "Tim",
    "Hedy",
    "Donald",
    "Sophie",
    "Guido",
    "Annie",
    "Bjarne",
    "Mary",
)
# The usual thing a user does; other catalogue actions are rarer the more they are worth.
COMMON_ACTION = "TASK_COMPLETED"
# Once per user and run, as the first event, when the catalogue has it.
FIRST_ACTION = "DAILY_LOGIN"


class DemoError(Exception):
    """The demo cannot run (service unreachable, bad answer)."""


@dataclass
class DemoUser:
    username: str
    display_name: str
    activity: float  # relative share of the events this user produces
    token: str | None = None
    user_id: str | None = None
    paused_until: float = 0.0
    joining: bool = False
    failed: str | None = None
    joined: bool = False
    register_limited: bool = False
    first_done: bool = False
    events: int = 0
    points: int = 0


@dataclass
class DemoSummary:
    """What one run did."""

    users: int = 0  # users that took part (were logged in at some point)
    sent: int = 0
    accepted: int = 0
    rate_limited: int = 0
    failed: int = 0
    points: int = 0
    elapsed: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, text: str) -> None:
        self.errors[text] = self.errors.get(text, 0) + 1

    @property
    def events_per_second(self) -> float:
        return self.accepted / self.elapsed if self.elapsed > 0 else 0.0


def demo_display_name(n: int) -> str:
    name = DEMO_NAMES[(n - 1) % len(DEMO_NAMES)]
    rounds = (n - 1) // len(DEMO_NAMES)
    return name if rounds == 0 else f"{name} {rounds + 1}"


def _retry_after(response: httpx.Response, default: float = 1.0) -> float:
    try:
        return max(0.0, float(response.headers.get("retry-after", default)))
    except ValueError:
        return default


def _error_message(response: httpx.Response) -> str:
    try:
        body: Any = response.json()
        message = body["error"]["message"]
        code = body["error"]["code"]
        return f"{response.status_code} {code}: {message}"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"


class _Demo:
    def __init__(
        self,
        http: httpx.AsyncClient,
        users: list[DemoUser],
        actions: dict[str, int],
        *,
        password: str,
        rate: float,
        duration: float,
        rng: random.Random,
        concurrency: int,
    ) -> None:
        self.http = http
        self.users = users
        self.actions = actions
        self.password = password
        self.rate = rate
        self.duration = duration
        self.rng = rng
        self.summary = DemoSummary()
        self.slots = asyncio.Semaphore(concurrency)
        self.tasks: set[asyncio.Task[None]] = set()  # score events in flight
        self.joins: set[asyncio.Task[None]] = set()  # users registering / logging in
        self.deadline = 0.0
        self.login_limited = False
        self.existing = False  # the demo users exist from an earlier run: log in first
        pool = [a for a in actions if a != FIRST_ACTION] or list(actions)
        self.pool = pool
        self.weights = [(6.0 if a == COMMON_ACTION else 1.0) / max(1, actions[a]) for a in pool]

    # --- joining: register (when new) and log in -----------------------------------------

    def start_join(self, user: DemoUser) -> None:
        user.joining = True
        task = asyncio.create_task(self.join(user))
        self.joins.add(task)
        task.add_done_callback(self.joins.discard)

    async def join(self, user: DemoUser) -> None:
        try:
            registered = False
            if not self.existing:
                await self._register(user)
                registered = True
            while time.monotonic() < self.deadline:
                r = await self.http.post(
                    "/api/v1/auth/login",
                    json={"username": user.username, "password": self.password},
                )
                if r.status_code == 200:
                    user.token = str(r.json()["access_token"])
                    if user.user_id is None:
                        await self._who_am_i(user)
                    user.joined = True
                    self.login_limited = False
                    self.summary.users = sum(1 for u in self.users if u.joined)
                    return
                if r.status_code in (429, 503):
                    self.login_limited = r.status_code == 429
                    await asyncio.sleep(min(_retry_after(r), self._left()) + 0.05)
                    continue
                if r.status_code == 401 and not registered:  # new after all: register it
                    await self._register(user)
                    registered = True
                    continue
                if r.status_code == 401 and user.register_limited:
                    user.failed = (
                        "new users cannot register now: registrations are rate limited "
                        "per address (SCOREBOARD_RATE_LIMIT_REGISTER)"
                    )
                else:
                    user.failed = f"login: {_error_message(r)}"
                self.summary.error(user.failed)
                return
        except httpx.HTTPError as exc:
            user.failed = f"login: {type(exc).__name__}"
            self.summary.error(user.failed)
        finally:
            user.joining = False

    async def _register(self, user: DemoUser) -> None:
        r = await self.http.post(
            "/api/v1/auth/register",
            json={
                "username": user.username,
                "password": self.password,
                "display_name": user.display_name,
            },
        )
        if r.status_code == 201:
            user.user_id = str(r.json()["user_id"])
        user.register_limited = r.status_code == 429
        # 409: the user exists from an earlier run. 429: registrations are rate limited per
        # address; an existing user can still log in, a new one will say so at login.

    async def _who_am_i(self, user: DemoUser) -> None:
        r = await self.http.get("/api/v1/leaderboard/me", headers=self._auth(user))
        if r.status_code == 200:
            user.user_id = str(r.json()["user_id"])
        else:
            user.user_id = user.username

    def _auth(self, user: DemoUser) -> dict[str, str]:
        return {"Authorization": f"Bearer {user.token}"}

    def _left(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    # --- activity --------------------------------------------------------------------------

    def pick_user(self, now: float) -> DemoUser | None:
        ready = [u for u in self.users if u.token and u.paused_until <= now]
        if not ready:
            return None
        return self.rng.choices(ready, weights=[u.activity for u in ready])[0]

    def pick_action(self, user: DemoUser) -> str:
        if not user.first_done:
            user.first_done = True
            if FIRST_ACTION in self.actions:
                return FIRST_ACTION
        return self.rng.choices(self.pool, weights=self.weights)[0]

    async def post_event(self, user: DemoUser, action: str) -> None:
        try:
            self.summary.sent += 1
            r = await self.http.post(
                "/api/v1/scores/events",
                json={"action_type": action},
                headers={**self._auth(user), "Idempotency-Key": uuid.uuid4().hex},
            )
            if r.status_code in (200, 201):
                body = r.json()
                self.summary.accepted += 1
                self.summary.points += int(body["awarded_points"])
                user.events += 1
                user.points += int(body["awarded_points"])
            elif r.status_code == 429:
                self.summary.rate_limited += 1
                user.paused_until = time.monotonic() + _retry_after(r)
            elif r.status_code == 401:  # token expired: log in again
                self.summary.failed += 1
                user.token = None
                if not user.joining:
                    self.start_join(user)
            else:
                self.summary.failed += 1
                self.summary.error(_error_message(r))
                if r.status_code == 503:
                    user.paused_until = time.monotonic() + _retry_after(r)
        except httpx.HTTPError as exc:
            self.summary.failed += 1
            self.summary.error(type(exc).__name__)
        finally:
            self.slots.release()

    def spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def probe(self) -> None:
        """Do the demo users exist already? One login of the first tells (and lets it in)."""
        first = self.users[0]
        with contextlib.suppress(httpx.HTTPError):
            r = await self.http.post(
                "/api/v1/auth/login",
                json={"username": first.username, "password": self.password},
            )
            self.existing = r.status_code != 401  # 200, or limited: they may well exist
            if r.status_code == 200:
                first.token = str(r.json()["access_token"])
                await self._who_am_i(first)
                first.joined = True
                self.summary.users = 1

    async def drive(self, on_tick: Any) -> None:
        self.deadline = math.inf
        await self.probe()
        for each in self.users:
            if each.joined:
                continue
            self.start_join(each)
        try:
            # The clock starts with the first user in: registering and logging in are slow on
            # purpose (password hashing), and logins may have to wait for the rate limit.
            while not any(u.token for u in self.users):
                if not any(u.joining for u in self.users):
                    raise DemoError("no demo user could log in: " + self._why())
                on_tick()
                await asyncio.sleep(0.05)
        except BaseException:
            await self._finish()
            raise
        start = time.monotonic()
        self.deadline = start + self.duration
        next_at = start
        try:
            while True:
                now = time.monotonic()
                self.summary.elapsed = now - start
                on_tick()
                if now >= self.deadline:
                    break
                if now < next_at:
                    await asyncio.sleep(min(next_at, self.deadline, now + 0.1) - now)
                    continue
                next_at = max(next_at, now - 1.0)  # a stall must not cause a burst after it
                next_at += self.rng.expovariate(self.rate)  # Poisson arrivals
                user = self.pick_user(now)
                if user is None:
                    if not any(u.token or u.joining for u in self.users):
                        raise DemoError("no demo user could log in: " + self._why())
                    continue
                await self.slots.acquire()
                self.spawn(self.post_event(user, self.pick_action(user)))
        finally:
            self.summary.elapsed = time.monotonic() - start
            await self._finish()

    async def _finish(self) -> None:
        """Stop joining at once; give the score events in flight up to 10 s to answer."""
        late = set(self.joins)
        if self.tasks:
            _, unanswered = await asyncio.wait(set(self.tasks), timeout=10)
            late |= unanswered
        for task in late:
            task.cancel()
        for task in late:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _why(self) -> str:
        reasons = sorted({u.failed for u in self.users if u.failed})
        return "; ".join(reasons) or "unknown reason"


def _stats(demo: _Demo) -> str:
    s = demo.summary
    active = sum(1 for u in demo.users if u.token)
    paused = sum(1 for u in demo.users if u.token and u.paused_until > time.monotonic())
    parts = [
        f"users {active}/{len(demo.users)}",
        f"events {s.accepted}",
        f"{s.events_per_second:.1f}/s",
        f"points {s.points}",
    ]
    joining = sum(1 for u in demo.users if u.joining)
    if joining:
        parts.append(f"[yellow]logging in {joining}[/]")
    if demo.login_limited:
        parts.append("[yellow](logins rate limited)[/]")
    if s.rate_limited:
        parts.append(f"[yellow]429 {s.rate_limited}[/]")
    if paused:
        parts.append(f"[yellow]paused {paused}[/]")
    if s.failed:
        parts.append(f"[red]errors {s.failed}[/]")
    return " · ".join(parts)


async def _catalogue(http: httpx.AsyncClient, base_url: str) -> dict[str, int]:
    try:
        r = await http.get("/api/v1/actions")
    except httpx.HTTPError as exc:
        raise DemoError(
            f"cannot reach the service at {base_url} ({type(exc).__name__}); "
            "is `scoreboard serve` running?"
        ) from exc
    if r.status_code != 200:
        raise DemoError(f"GET /api/v1/actions answered {_error_message(r)}")
    try:
        # Actions with a minimum duration score only through their lifecycle; the demo
        # posts direct score events, so it leaves them out.
        return {
            str(a["action_type"]): int(a["points"])
            for a in r.json()
            if not a.get("min_duration_seconds")
        }
    except (ValueError, KeyError, TypeError) as exc:
        raise DemoError(f"{base_url} does not look like a scoreboard service") from exc


async def _print_summary(
    console: Console, http: httpx.AsyncClient, users: Sequence[DemoUser], s: DemoSummary
) -> None:
    console.print(
        f"[bold]demo finished[/] in {s.elapsed:.1f} s: {s.accepted} events accepted "
        f"({s.events_per_second:.1f}/s) for {s.points} points by {s.users} users; "
        f"{s.rate_limited} rate limited, {s.failed} failed."
    )
    for text, count in sorted(s.errors.items(), key=lambda kv: -kv[1])[:5]:
        console.print(f"  [red]{count}×[/] {text}")
    try:
        r = await http.get("/api/v1/leaderboard", params={"limit": 10})
        board = r.json()["items"] if r.status_code == 200 else []
    except (httpx.HTTPError, ValueError, KeyError):
        board = []
    if not board:
        return
    ours = {u.user_id: u for u in users if u.user_id}
    table = Table(title="top 10 now", title_justify="left")
    table.add_column("rank", justify="right")
    table.add_column("name")
    table.add_column("score", justify="right")
    table.add_column("this run", justify="right")
    for item in board:
        mine = ours.get(item["user_id"])
        table.add_row(
            str(item["rank"]),
            str(item["display_name"]),
            str(item["score"]),
            f"+{mine.points}" if mine else "",
        )
    console.print(table)


async def run_demo(
    base_url: str,
    users: int,
    rate: float,
    duration: float,
    *,
    password: str = DEMO_PASSWORD,
    seed: int | None = None,
    concurrency: int = 16,
    console: Console | None = None,
) -> DemoSummary:
    """Drive ~`rate` score events per second in total from `users` demo users for `duration`
    seconds against the service at `base_url`; show progress on `console`; return a summary.

    Raises DemoError when the service cannot be reached or no demo user can log in.
    """
    if users < 1:
        raise ValueError("users must be at least 1")
    if not (rate > 0 and math.isfinite(rate)):
        raise ValueError("rate must be a positive number")
    if not (duration > 0 and math.isfinite(duration)):
        raise ValueError("duration must be a positive number")
    console = console or Console()
    rng = random.Random(seed)
    demo_users = [
        DemoUser(f"demo-{n}", demo_display_name(n), rng.lognormvariate(0.0, 0.7))
        for n in range(1, users + 1)
    ]
    limits = httpx.Limits(max_connections=concurrency + 4)
    async with httpx.AsyncClient(
        base_url=base_url.rstrip("/"), timeout=10.0, limits=limits
    ) as http:
        actions = await _catalogue(http, base_url)
        demo = _Demo(
            http,
            demo_users,
            actions,
            password=password,
            rate=rate,
            duration=duration,
            rng=rng,
            concurrency=concurrency,
        )
        console.print(
            f"[bold]scoreboard demo[/] → {base_url}: {users} users, ~{rate:g} events/s "
            f"for {duration:g} s (password {password!r}). Open {base_url.rstrip('/')}/ to watch."
        )
        with Progress(
            TextColumn("[bold]demo[/]"),
            BarColumn(),
            TimeRemainingColumn(compact=True),
            TextColumn("{task.fields[stats]}"),
            console=console,
            transient=False,
        ) as progress:
            task = progress.add_task("demo", total=duration, stats="")

            def tick() -> None:
                progress.update(
                    task, completed=min(duration, demo.summary.elapsed), stats=_stats(demo)
                )

            await demo.drive(tick)
            tick()
        await _print_summary(console, http, demo_users, demo.summary)
        return demo.summary
