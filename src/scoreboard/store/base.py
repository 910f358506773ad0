"""The Store protocol and the records it exchanges with the service.

Contract, for every implementation:
- Every method is a complete unit of work: it commits before returning, or raises and leaves
  nothing half-written.
- Connection-level failures (database down, timeout) raise `ServiceUnavailable`; nothing else
  about the database leaks out as an exception type.
- `record_events` commits all commands of a batch in ONE transaction (group commit) and answers
  each command individually; a command that cannot apply (conflict, user gone) does not fail the
  others.
- Idempotency keys are per user: (user_id, key) identifies a request; the same key with the same
  request hash replays the original event, with another hash it is a conflict. This holds when
  the two requests race in different processes (the database's unique constraint decides).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Literal, Protocol

from scoreboard.domain.boards import View
from scoreboard.domain.ranking import Standing
from scoreboard.store.event_log import EventQuery, LoggedEvent
from scoreboard.store.flags import FlagStore
from scoreboard.store.outbox import Attempt, DeliveryRecord, OutboxEntry

ActionStatus = Literal["started", "completed", "cancelled"]


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """A started action (compatibility lifecycle routes): started → completed | cancelled."""

    action_id: str
    user_id: str
    action_type: str
    status: ActionStatus
    started_at: datetime
    ended_at: datetime | None = None
    points: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    suspicious: bool = False

    @property
    def open(self) -> bool:
        return self.status == "started"


@dataclass(frozen=True, slots=True)
class UserRecord:
    user_id: str
    username: str
    display_name: str
    password_hash: str | None
    created_at: datetime
    deleted_at: datetime | None = None
    avatar_url: str | None = None
    region: str | None = None
    external_subject: str | None = None
    status: str = "active"  # active | banned | quarantined (moderation)
    roles: frozenset[str] = frozenset()  # "admin" (`scoreboard user promote`)

    @property
    def active(self) -> bool:
        return self.deleted_at is None


@dataclass(frozen=True, slots=True)
class ScoreCommand:
    """One score event to record. `points` was already decided by the catalogue."""

    user_id: str
    action_type: str
    points: int
    idempotency_key: str | None = None
    request_hash: str | None = None
    # The time the event happens, microseconds since the epoch; also the time the new score is
    # reached, which breaks ties in the ranking.
    at_us: int = 0
    # Lifecycle completions (issue: compatibility routes) mark an action row in the same
    # transaction; None for plain score events.
    action_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    # Who writes the event, kept on it: "user", "apikey:NAME" (a server write), "admin:USER".
    source: str = "user"


ApiKeyRole = Literal["scorer", "admin"]


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """An API key as stored: its name, role and the SHA-256 (hex) of the key, never the key."""

    name: str
    role: ApiKeyRole
    key_hash: str
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One admin action to append: who (`actor`: a user id or `apikey:NAME`), what, on what."""

    actor: str
    action: str
    target: str
    reason: str


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """An appended admin action: the entry, its id (ids only grow) and when."""

    audit_id: int
    actor: str
    action: str
    target: str
    reason: str
    created_at: datetime


class Outcome(Enum):
    RECORDED = "recorded"
    REPLAYED = "replayed"
    CONFLICT = "conflict"
    USER_GONE = "user_gone"
    BANNED = "banned"  # the user is banned: nothing written


@dataclass(frozen=True, slots=True)
class BoardStanding:
    """Where an event left its user on one view it counted on: the row's standing and version
    (the version moves only when the event changed the row: a `best` board's row stays as it
    was, version included, when the event did not beat it)."""

    view: View
    standing: Standing
    version: int


@dataclass(frozen=True, slots=True)
class EventRecord:
    """A committed score event and the score it produced.

    `region`: the user's region when the event was recorded. `boards`: one `BoardStanding`
    per view the event counted on, in catalogue order, the total board's included (its
    standing and version are `standing()` and `version`); empty on a replay. `hidden`: the
    user was off the public boards (quarantined, or banned for a void) when it was recorded,
    so its standings are for the rows only, never for a live index.
    """

    event_id: int
    user_id: str
    display_name: str
    action_type: str
    points: int
    new_score: int
    reached_at_us: int
    version: int
    created_at: datetime
    region: str | None = None
    boards: tuple[BoardStanding, ...] = ()
    hidden: bool = False

    def standing(self) -> Standing:
        return Standing(self.user_id, self.display_name, self.new_score, self.reached_at_us)


@dataclass(frozen=True, slots=True)
class ScoreOutcome:
    outcome: Outcome
    event: EventRecord | None = None


@dataclass(frozen=True, slots=True)
class Voided:
    """A void's outcome: the compensating event, the user's standing afterwards on each view
    the voided event counted on (`boards`), and the views they left (no event counts there)."""

    event: EventRecord
    boards: tuple[BoardStanding, ...]
    left: tuple[View, ...]


RotationOutcome = Literal["rotated", "reused", "refused"]


@dataclass(frozen=True, slots=True)
class Rotation:
    """What `Store.rotate_refresh_token` did: "rotated" (and whose token it was), "reused"
    (the token had been exchanged before: its family is now revoked) or "refused"."""

    outcome: RotationOutcome
    user: UserRecord | None = None


class Store(FlagStore, Protocol):
    """Durable users, scores, score events (append-only) and idempotency records."""

    async def create_user(
        self,
        username: str,
        password_hash: str | None,
        display_name: str,
        *,
        avatar_url: str | None = None,
        region: str | None = None,
        external_subject: str | None = None,
    ) -> UserRecord:
        """Insert a user with a fresh user id. Existing username → `UsernameTaken`."""
        ...

    async def get_user(self, user_id: str) -> UserRecord | None:
        """The user (deleted ones included, see `UserRecord.active`), or None."""
        ...

    async def get_users(self, user_ids: Sequence[str]) -> dict[str, UserRecord]:
        """The users among `user_ids` that exist (deleted ones included), in one query."""
        ...

    async def get_user_by_username(self, username: str) -> UserRecord | None:
        """Lookup by exact username, deleted ones included."""
        ...

    async def get_user_by_subject(self, external_subject: str) -> UserRecord | None:
        """Lookup by external identity (`iss|sub`)."""
        ...

    async def update_profile(
        self,
        user_id: str,
        *,
        display_name: str | None = None,
        avatar_url: str | None = None,
        region: str | None = None,
    ) -> UserRecord | None:
        """Change the given profile fields of an active user; None when no such user."""
        ...

    async def delete_user(self, user_id: str) -> bool:
        """Mark the user deleted and drop their score row; events stay. False if none/already."""
        ...

    async def record_events(self, commands: Sequence[ScoreCommand]) -> list[ScoreOutcome]:
        """Apply the commands in order, in one transaction; one outcome per command."""
        ...

    def iter_standings(self, page_size: int = 1000) -> AsyncIterator[list[Standing]]:
        """Every active user's standing, in rank order, in pages of at most `page_size`.

        All pages come from one consistent snapshot, each user at most once, and the walk is
        linear in the board's size (a rebuild of a 1M-user board reads it in seconds). A walk
        is not a request: waiting for each page is bounded by the store's stall bound (long
        enough for the first page of a big board's sort), not by its per-request timeout, and
        not the whole walk; a walk that stalls raises `ServiceUnavailable`.

        An async generator: declared without `async` so that calling it gives the iterator
        (an `async def` stub would type as a coroutine returning one).
        """
        ...

    async def standings_page(self, limit: int, offset: int) -> tuple[list[Standing], int]:
        """One page of the board in rank order computed by SQL, and the total count."""
        ...

    async def standing_of(self, user_id: str) -> tuple[Standing, int] | None:
        """The user's standing and 1-based rank computed by SQL; None if they never scored."""
        ...

    # -- boards (`domain.boards`): every read works on the total board's view too -------------
    async def view_page(self, view: View, limit: int, offset: int) -> tuple[list[Standing], int]:
        """One page of the view in rank order computed by SQL, and the view's count, from one
        snapshot; active users only. A view nobody scored on: `([], 0)`."""
        ...

    async def view_standing_of(
        self, view: View, user_id: str, *, hidden: bool = False
    ) -> tuple[Standing, int] | None:
        """The user's standing on the view and 1-based rank among the visible users (not
        deleted, status active); None if they have no visible row there. `hidden`: also a
        quarantined user's own row, ranked as if they were visible."""
        ...

    def iter_view_standings(
        self, view: View, page_size: int = 1000
    ) -> AsyncIterator[list[Standing]]:
        """Every active user's standing on the view, in rank order, in pages: the contract of
        `iter_standings` (one snapshot, linear, bounded by the stall bound), for one view."""
        ...

    async def view_ranks_of(self, view: View, user_ids: Sequence[str]) -> dict[str, int]:
        """The 1-based rank on the view of each of `user_ids` who is visible there (as
        `view_standing_of` ranks one), from one snapshot; the others are left out. What the
        answers of a committed batch carry while the view's rank index cannot tell."""
        ...

    async def view_standings_of(self, view: View, user_ids: Sequence[str]) -> list[Standing]:
        """The standings of those of `user_ids` who are active and have a row on the view, in
        rank order (a friends board: rank them 1..n). Unknown ids are left out."""
        ...

    async def views_counted(self, user_id: str) -> list[View]:
        """Every view the user's events ever counted on, from the event log (so also after the
        user was deleted: what to take them off)."""
        ...

    async def views_of_user(self, user_id: str) -> list[View]:
        """Every view of the catalogue's boards the user has a row on: the total board's view
        first when they have a score, then the others in catalogue order, by period and
        region within a board. [] for a deleted or unknown user."""
        ...

    async def rebuild_board(self, board_id: str) -> int:
        """Recompute every period and region of a board that is not the total from the event
        log (events of active users, `domain.boards.fold` in event order), replacing its rows
        and recording its fingerprint, in one transaction that live batches cannot interleave
        with. The number of rows written. `InvalidScope` for a board not in the catalogue;
        0 for the total board (it is `user_scores`, kept by every batch)."""
        ...

    async def backfill_boards(self) -> list[str]:
        """Rebuild every board whose rows were computed with another definition or none (a
        board added to the catalogue, or changed): the ids rebuilt, in catalogue order. Safe
        from several processes at once: a board is rebuilt by one, the others skip it."""
        ...

    async def count_events(self) -> int: ...

    async def sum_event_points(self) -> int: ...

    async def ping(self) -> None:
        """Round trip to the database; `ServiceUnavailable` when it cannot be reached."""
        ...

    async def close(self) -> None: ...

    # -- actions (lifecycle compatibility routes) ------------------------------------------------
    async def start_action(
        self,
        user_id: str,
        action_type: str,
        metadata: Mapping[str, Any] | None = None,
        at: datetime | None = None,
        *,
        supersede: bool = False,
    ) -> ActionRecord:
        """Start an action ('started') for an active user; `NotFound` when there is none.
        `at` None means now. It is completed by `record_events` (`ScoreCommand.action_id`).
        `supersede`: in the same transaction, cancel the user's open actions of the same type
        (at `at`), so that of any number of starts, even concurrent ones, exactly one stays
        open: the last committed."""
        ...

    async def get_action(self, action_id: str) -> ActionRecord | None: ...

    async def cancel_action(
        self, action_id: str, at: datetime | None = None
    ) -> ActionRecord | None:
        """Cancel a 'started' action; None when it does not exist or is no longer open."""
        ...

    async def mark_suspicious(self, action_id: str) -> bool:
        """Flag an action for review (e.g. completed too fast); False when there is none."""
        ...

    # -- friends (API.md section 5) --------------------------------------------------------------
    async def add_friend(self, user_id: str, friend_id: str, most: int) -> bool:
        """Add `friend_id` to `user_id`'s list (idempotent; both must exist: the caller
        checks). False, and nothing added, when the list already holds `most` users."""
        ...

    async def remove_friend(self, user_id: str, friend_id: str) -> None:
        """Remove `friend_id` from the list (idempotent)."""
        ...

    async def friends_of(self, user_id: str) -> list[UserRecord]:
        """The users on `user_id`'s list who still have an account, by user id."""
        ...

    # -- retention (API.md section 5, docs/BOARDS.md "Retention") ------------------------------
    async def prune_periods(self, board_id: str, before: str, batch: int = 1000) -> int:
        """Delete the board rows of `board_id`'s periods whose id sorts before `before`, in
        transactions of at most `batch` rows (never a long lock); how many were deleted."""
        ...

    # -- history (docs/OPERATIONS.md "History and retention") ---------------------------------
    async def ensure_partitions(self, ahead: int = 3, *, now: datetime | None = None) -> list[str]:
        """Where events are partitioned by month (PostgreSQL): the partitions of `now`'s month
        (default: the current one) and the `ahead` months after it exist afterwards; the names
        of those this call created. Safe from several processes at once. A write never needs
        it (one of a month without a partition creates it first): it keeps that off writes."""
        ...

    async def expire_idempotency_keys(
        self, before: datetime, batch: int = 1000, pause: float = 0.05
    ) -> int:
        """Delete the idempotency keys recorded before `before`, oldest first, in transactions
        of at most `batch` keys with `pause` seconds between them (never a long lock); how many
        were deleted. Their events stay; a key deleted is free: a request sent with it again
        is recorded as a new event."""
        ...

    # -- moderation (API.md section 6) -----------------------------------------------------------
    async def set_status(
        self,
        user_id: str,
        status: str,
        *,
        audit: AuditEntry | None = None,
        webhook: tuple[str, Mapping[str, Any]] | None = None,
        expect: str | None = None,
    ) -> UserRecord | None:
        """Set a user's status (active | banned | quarantined); None when there is no such
        (not deleted) user, or (`expect` given) their status is not `expect`. Only active
        users are on the public boards; a banned user's events are refused in the batch that
        would record them (`Outcome.BANNED`). `audit` and `webhook` (type, data) are written
        in the same transaction; so is, for a ban, the revocation of every refresh token of
        the user (none rotates while they are banned)."""
        ...

    async def view_row(self, view: View, user_id: str, total: bool) -> tuple[Standing, int] | None:
        """The user's row on `view` with its version, whatever their status (`total`: the
        total board's row); None when they have none."""
        ...

    async def void_event(self, event_id: int, source: str) -> Voided:
        """Void an event: a compensating event (`points` negated, `voids` = `event_id`,
        `source`) appended and the user's rows on every view the event counted on, and their
        total, recomputed without it, in one transaction. `NotFound`, `AlreadyVoided` (also
        when a concurrent void won), `ValidationFailed` for a compensating event."""
        ...

    # -- webhook outbox (API.md section 6; the SQL: `store/sql_outbox.py`) ---------------------
    async def enqueue_webhook(
        self, type: str, data: Mapping[str, Any], dedupe_key: str | None = None
    ) -> str | None:
        """Append a webhook to the outbox in a transaction of its own, due at once: its id,
        or None when a webhook with `dedupe_key` already exists (then nothing is written).
        Inside another store transaction, use `store.sql_outbox.enqueue` instead."""
        ...

    async def claim_webhooks(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[OutboxEntry]:
        """Up to `limit` pending webhooks due at `now`, soonest first, each leased until
        `lease_until` (its attempt counted): no other claimer, in any process, gets it
        before the lease ends (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so claimers never wait
        for each other). A lease that ends unsettled (a crash) makes the webhook due again."""
        ...

    async def settle_webhook(self, attempt: Attempt) -> None:
        """Log the attempt and record its outcome, in one transaction. The outcome is
        ignored when the webhook was claimed again since (its lease ended first)."""
        ...

    async def webhook_deliveries(
        self, limit: int, before: int | None = None
    ) -> list[DeliveryRecord]:
        """The delivery log, newest first: at most `limit` attempts with an id below
        `before` (None: from the newest)."""

    # -- API keys, roles, the admin audit log (API.md section 6; store/sql_admin.py) ----------
    async def create_api_key(self, name: str, role: ApiKeyRole, key_hash: str) -> ApiKeyRecord:
        """Store a new key. A name in use (revoked keys included) → `NameTaken`."""
        ...

    async def revoke_api_key(self, name: str) -> ApiKeyRecord | None:
        """Mark the key revoked (idempotent: an already revoked key keeps its first time);
        None when there is no key of that name."""
        ...

    async def api_keys(self) -> list[ApiKeyRecord]:
        """Every key, revoked ones included, by name."""
        ...

    async def api_key_by_hash(self, key_hash: str) -> ApiKeyRecord | None:
        """The key with this hash (revoked included, see `ApiKeyRecord.active`), or None.
        A read: a flood of unknown keys never takes the write lock."""
        ...

    async def touch_api_key(self, name: str) -> None:
        """Set the key's `last_used_at` to now."""
        ...

    async def set_role(
        self, user_id: str, role: str, granted: bool, audit: AuditEntry
    ) -> UserRecord | None:
        """Grant (or withdraw) `role` to the active user `user_id` and append `audit`, in
        one transaction; the user as it now is, or None (nothing written) when there is no
        such active user. Granting a role held already writes the audit entry all the same:
        the log records what was asked."""
        ...

    async def append_audit(self, entry: AuditEntry) -> AuditRecord:
        """Append one admin action (its own transaction; inside another store transaction
        use `store.sql_admin.append_audit(conn, ...)`)."""
        ...

    async def audit_page(self, limit: int, before: int | None = None) -> list[AuditRecord]:
        """At most `limit` audit records, newest first, with `audit_id` < `before` if given."""

    # -- the event-log query (API.md section 6; store/sql_event_log.py) ------------------------
    async def event_log(
        self, query: EventQuery, limit: int, before: int | None = None
    ) -> list[LoggedEvent]:
        """At most `limit` events matching `query`, newest (highest id) first, with an id below
        `before` if given: one short read, so a walk of the whole log is a series of these
        and holds no connection between them."""
        ...

    # -- sessions (API.md section 6, "Sessions"; store/sql_sessions.py) ------------------------
    async def add_refresh_token(
        self,
        token_hash: str,
        *,
        family_id: str,
        user_id: str,
        created_at: datetime,
        expires_at: datetime,
    ) -> None:
        """Store a new refresh token (by its hash) opening or continuing `family_id`."""
        ...

    async def rotate_refresh_token(
        self, token_hash: str, new_hash: str, *, now: datetime, expires_at: datetime
    ) -> Rotation:
        """Exchange a live token for `new_hash` (same family), in one transaction: "rotated"
        when it was unused, not revoked, not expired at `now`, its user there (not deleted,
        not banned) and no token
        of its family revoked; of concurrent exchanges of one token exactly one rotates.
        An already used token: its whole family revoked, "reused". Otherwise "refused"."""
        ...

    async def revoke_refresh_family(self, token_hash: str, *, now: datetime) -> bool:
        """Revoke every token of the family of `token_hash`; False when no such token. A
        rotation committed concurrently cannot escape it: rotating checks the family."""
        ...
