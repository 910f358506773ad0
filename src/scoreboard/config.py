"""Settings, from environment variables `SCOREBOARD_*` (and an optional `.env` file)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

if TYPE_CHECKING:
    from scoreboard.domain.boards import BoardCatalogue
    from scoreboard.domain.rules import Rules


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SCOREBOARD_", env_file=".env", extra="ignore")

    # Backends, chosen once from URLs when the app is created.
    database_url: str = ""  # empty: sqlite file under data_dir
    redis_url: str = ""  # empty: everything in-process (single process only)
    redis_prefix: str = "scoreboard:"
    data_dir: Path = Path("./scoreboard-data")

    # Identity.
    jwt_secret: str = ""  # empty: generated once, kept beside the SQLite file
    jwt_issuer: str = "scoreboard"
    token_ttl_seconds: int = Field(3600, ge=1, le=30 * 24 * 3600)
    jwks_url: str = ""  # external identity provider (RS256/ES256)
    external_issuer: str = ""
    external_audience: str = ""
    external_algorithms: list[str] = ["RS256", "ES256"]
    # The external token's claim that makes its holder an admin when it holds
    # `scoreboard:admin` (a list, or space-separated values). service/roles.py.
    external_admin_claim: str = Field("roles", min_length=1, max_length=128)
    # How long a process may go on authenticating an account deleted by another process (on
    # reads only: writes check the account in their transaction), a demoted admin's token, or
    # a revoked API key (service/roles.py, service/apikeys.py). docs/SECURITY.md.
    account_cache_seconds: float = Field(30.0, ge=0, le=300)
    # Sign-in capacity (service/passwords.py): hashing threads (0: cores - 1, 1 to 4), how
    # many more sign-ins may wait for one, and how long a sign-in waits before a 503.
    password_hash_threads: int = Field(0, ge=0, le=64)
    password_hash_queue: int = Field(16, ge=0, le=10_000)
    password_hash_wait_seconds: float = Field(1.0, ge=0, le=60)
    # Sessions (service/sessions.py): each refresh token lives this long from its issue (a
    # refresh issues the next one, so a session ends after this long unused).
    refresh_ttl_seconds: int = Field(30 * 24 * 3600, ge=1, le=400 * 24 * 3600)

    # Rules and limits.
    actions_file: Path | None = None  # JSON action catalogue; default catalogue when unset
    # JSON board catalogue (domain/boards.py); unset: global, daily, weekly, monthly in UTC.
    boards_file: Path | None = None
    # JSON anomaly rules (domain/rules.py, docs/RULES.md); unset: the defaults. Evaluated off
    # the write path from a queue of at most `rules_queue_size` events (beyond: dropped).
    rules_file: Path | None = None
    rules_queue_size: int = Field(10_000, ge=1, le=1_000_000)
    # Past periods stay readable this long after they end; then their rows are deleted.
    period_retention_days: int = Field(400, ge=1, le=100_000)
    # Idempotency keys are kept this long, then deleted (hourly, in small batches): a request
    # replayed with an expired key is recorded as a new event. 0: kept forever.
    idempotency_retention_days: int = Field(0, ge=0, le=100_000)
    rate_limit_score: str = "60/minute"
    rate_limit_login: str = "10/minute"  # per (username, client address) pair
    rate_limit_login_address: str = "30/minute"  # per client address, any usernames
    rate_limit_register: str = "20/hour"
    rate_limit_refresh: str = "30/minute"  # per client address: refreshes and logouts together
    # Points a user may gain per window on every scoring route together; empty: derived from
    # rate_limit_score x the catalogue's highest points (60/minute x 100 = 6000/minute).
    rate_limit_points: str = ""
    max_body_bytes: int = Field(16 * 1024, ge=256)

    # Writes: group commit takes up to this many events per batch, and during a burst waits at
    # most this long for more (a lone event is committed at once; see service/committer.py).
    commit_window_ms: float = Field(2.0, ge=0, le=100)
    commit_max_batch: int = Field(256, ge=1, le=10_000)
    db_timeout_seconds: float = Field(2.0, gt=0, le=60)

    # The event-log export (`GET /api/v1/admin/events` as NDJSON, service/event_log.py):
    # events per database read; each read is short and its own, whatever the export's size.
    export_chunk_size: int = Field(1000, ge=1, le=10_000)

    # Live updates.
    ws_require_auth: bool = True
    ws_ping_seconds: float = Field(25.0, gt=0)
    ws_tick_ms: float = Field(50.0, ge=0, le=5000)
    # A client whose socket takes nothing for this long is closed 1013 (too slow).
    ws_send_timeout_seconds: float = Field(5.0, gt=0, le=300)
    # Kernel send buffer of each live socket (0: the kernel's autotuning, up to megabytes):
    # bounds what a client that stops reading holds before it is noticed.
    ws_socket_send_buffer_bytes: int = Field(64 * 1024, ge=0, le=16 * 1024 * 1024)
    ws_max_message_bytes: int = 64 * 1024

    # Rank index upkeep. Every `reconcile_seconds` (0: never) the index is compared with the
    # database (count and top 100) and rebuilt when they disagree. With Redis, every process
    # checks the shared index every `index_check_seconds` (lost? rebuilt by another process?).
    reconcile_seconds: float = Field(60.0, ge=0)
    index_check_seconds: float = Field(0.5, gt=0, le=10)

    # Scaled mode (Redis): bound of one Redis call; what rate limits do while Redis is down
    # (true: let requests through, logged; false: refuse them with 503).
    redis_timeout_seconds: float = Field(1.0, gt=0, le=30)
    rate_limit_fail_open: bool = True

    # Transport limits, enforced by `scoreboard serve`'s HTTP protocol before the app sees a
    # request (scoreboard.transport; docs/SECURITY.md). Sizes in bytes, times in seconds; a
    # per-address cap of 0 turns that cap off (behind a proxy every client has its address).
    max_url_bytes: int = Field(8 * 1024, ge=256, le=1024 * 1024)
    max_header_bytes: int = Field(16 * 1024, ge=1024, le=1024 * 1024)
    max_headers: int = Field(100, ge=8, le=10_000)
    request_read_timeout_seconds: float = Field(10.0, gt=0, le=3600)
    idle_timeout_seconds: float = Field(5.0, gt=0, le=3600)
    max_connections_per_address: int = Field(256, ge=0)
    max_websockets_per_address: int = Field(128, ge=0)

    # Browsers on these origins may call the HTTP API (api/cors.py): comma-separated, each
    # `scheme://host[:port]` as a browser sends it in `Origin`; empty: no CORS at all.
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()

    # On SIGTERM, `/readyz` answers 503 this long before the server stops (scoreboard.drain).
    drain_seconds: float = Field(5.0, ge=0, le=600)

    # Logs: readable text, or one JSON object per line (scoreboard.logs).
    log_format: str = Field("text", pattern="^(text|json)$")

    # The cached top-N (pre-encoded) answers reads for at most this long between changes.
    top_cache_seconds: float = Field(2.0, ge=0, le=60)

    # Signed webhooks (docs/WEBHOOKS.md): where the service POSTs `period.closed`,
    # `user.flagged` and `user.banned`, and the HMAC-SHA256 key that signs them. Both or
    # neither; unset, no webhook is sent.
    webhook_url: str = ""
    webhook_secret: str = ""

    @field_validator(
        "rate_limit_score",
        "rate_limit_login",
        "rate_limit_login_address",
        "rate_limit_register",
        "rate_limit_refresh",
        "rate_limit_points",
    )
    @classmethod
    def _valid_limit(cls, value: str, info: ValidationInfo) -> str:
        from limits import parse_many

        if value or info.field_name != "rate_limit_points":  # only the budget may be empty
            parse_many(value)
        return value

    @field_validator("webhook_url")
    @classmethod
    def _valid_webhook_url(cls, value: str) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(value)
        if value and (parts.scheme not in ("http", "https") or not parts.hostname):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _webhooks_paired(self) -> Settings:
        if bool(self.webhook_url) != bool(self.webhook_secret):
            raise ValueError(
                "SCOREBOARD_WEBHOOK_URL and SCOREBOARD_WEBHOOK_SECRET: set both or neither"
            )
        return self

    @property
    def webhooks_enabled(self) -> bool:
        return bool(self.webhook_url)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _valid_origins(cls, value: Any) -> tuple[str, ...]:
        """Each origin in the form browsers send (lowercase, no default port), or one line
        saying which entry is wrong and why."""
        entries = value.split(",") if isinstance(value, str) else list(value)
        origins = [_origin(str(entry).strip()) for entry in entries if str(entry).strip()]
        return tuple(dict.fromkeys(origins))

    @field_validator("boards_file")
    @classmethod
    def _valid_boards(cls, value: Path | None) -> Path | None:
        """A bad boards file stops start-up here, naming the board and the field."""
        if value is not None:
            from scoreboard.domain.boards import BoardCatalogue

            BoardCatalogue.from_file(value)
        return value

    @field_validator("rules_file")
    @classmethod
    def _valid_rules(cls, value: Path | None) -> Path | None:
        """A bad rules file stops start-up here, naming the file and the field."""
        if value is not None:
            from scoreboard.domain.rules import Rules

            Rules.from_file(value)
        return value

    def rules(self) -> Rules:
        from scoreboard.domain.rules import Rules

        return Rules() if self.rules_file is None else Rules.from_file(self.rules_file)

    def board_catalogue(self) -> BoardCatalogue:
        from scoreboard.domain.boards import BoardCatalogue

        if self.boards_file is None:
            return BoardCatalogue.default()
        return BoardCatalogue.from_file(self.boards_file)

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'scoreboard.db').resolve()}"


DEFAULT_PORTS = {"http": 80, "https": 443}
HOST = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")


def _origin(text: str) -> str:
    """`text` as the `Origin` header a browser would send for it; ValueError naming what is
    wrong. No wildcard and no `null`: a browser's origin is matched exactly."""

    def refuse(why: str) -> ValueError:
        return ValueError(f"{text!r} is not an origin: {why} (write scheme://host[:port])")

    if "*" in text:
        raise refuse("no wildcards, list every origin")
    parts = urlsplit(text.lower())
    if parts.scheme not in DEFAULT_PORTS or not parts.netloc:
        raise refuse("the scheme must be http or https")
    if parts.path or parts.query or parts.fragment or "?" in text or "#" in text:
        raise refuse("no path (not even '/'), query or fragment")
    if parts.username is not None or parts.password is not None:
        raise refuse("no user name or password")
    try:
        port = parts.port
    except ValueError:
        raise refuse("the port must be a number from 1 to 65535") from None
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address: the brackets were taken off
        host = f"[{host}]"
    elif not HOST.fullmatch(host):
        raise refuse(f"{host!r} is not a host name")
    if port == 0:
        raise refuse("the port must be a number from 1 to 65535")
    if port is None or port == DEFAULT_PORTS[parts.scheme]:
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"
