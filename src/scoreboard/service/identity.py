"""Accounts and sign-in: register, log in, authenticate a bearer token, delete oneself.

Rate limits are checked before any password hashing, so a flood of attempts costs the server
a counter increment, not an Argon2 computation; past the limits, the hashing pool admits only
so many sign-ins at once (`service.passwords`), so a storm costs sign-ins, not score writes.

Login limits (docs/SECURITY.md, "Login limits"): per client address (one address spraying
many accounts) and per (username, address) pair (one address guessing one account). There
is deliberately no counter per username alone: strangers could fill it and lock the real user
out from anywhere. Guessing one account from many addresses is slowed by Argon2 and the
bounded pool instead.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from scoreboard.domain.errors import (
    Forbidden,
    InvalidCredentials,
    NotFound,
    Unauthenticated,
    UsernameTaken,
    ValidationFailed,
)
from scoreboard.realtime.base import RateLimiter
from scoreboard.service.limits import enforce
from scoreboard.service.passwords import PasswordHasher
from scoreboard.service.principal import Principal as Principal
from scoreboard.service.roles import granted_roles
from scoreboard.service.tokens import Claims, TokenIssuer, TokenVerifier
from scoreboard.store.base import Store, UserRecord

USERNAME = re.compile(r"[A-Za-z0-9_.-]{3,32}")
USERNAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]")
PASSWORD_MIN, PASSWORD_MAX = 8, 128
DISPLAY_NAME_MAX = 64
PROVISION_ATTEMPTS = 5
# Accounts of external identities are cached by subject (`<issuer>|<sub>`) under this prefix;
# user ids never contain '|'.
EXTERNAL_KEY = "ext|"


def check_username(username: str) -> str:
    if not isinstance(username, str) or not USERNAME.fullmatch(username):
        raise ValidationFailed(
            "username must be 3 to 32 characters of letters, digits, '_', '.' or '-'.",
            details={"field": "username"},
        )
    return username


def check_password(password: str) -> str:
    if not isinstance(password, str) or not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise ValidationFailed(
            f"password must be {PASSWORD_MIN} to {PASSWORD_MAX} characters.",
            details={"field": "password"},
        )
    return password


def check_display_name(display_name: str | None, default: str) -> str:
    """Surrounding whitespace is dropped; what remains must be 1 to 64 printable characters."""
    if display_name is None:
        return default
    name = display_name.strip() if isinstance(display_name, str) else ""
    if not 1 <= len(name) <= DISPLAY_NAME_MAX or not name.isprintable():
        raise ValidationFailed(
            f"display_name must be 1 to {DISPLAY_NAME_MAX} printable characters.",
            details={"field": "display_name"},
        )
    return name


class AccountCache:
    """Recently seen accounts by user id (external ones by subject), so requests do not cost a
    database read each just to authenticate: concurrent lookups of one account share one read,
    and the answer is kept for at most `seconds` (docs/SECURITY.md, "Tokens and accounts").

    The bound, the same in every process: a deletion in this process forgets at once; in
    another process a deleted account may still authenticate for up to `seconds`, on reads
    only, because every write (score events, actions, profiles) checks the account inside its
    own transaction. Each entry lives a random 75-100% of `seconds`, so accounts first seen
    together (a start-up, a reconnect storm) are not all read again in the same second.
    """

    def __init__(
        self,
        seconds: float,
        max_entries: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._seconds = seconds
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, UserRecord]] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[UserRecord | None]] = {}

    async def get(
        self, user_id: str, load: Callable[[str], Awaitable[UserRecord | None]]
    ) -> UserRecord | None:
        entry = self._entries.get(user_id)
        if entry is not None and entry[0] > self._clock():
            return entry[1]
        pending = self._inflight.get(user_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[UserRecord | None] = asyncio.get_running_loop().create_future()
        self._inflight[user_id] = future
        try:
            user = await load(user_id)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else must
            raise
        else:
            future.set_result(user)
            self._put(user_id, user)
            return user
        finally:
            del self._inflight[user_id]

    def _put(self, user_id: str, user: UserRecord | None) -> None:
        if self._seconds <= 0 or user is None:
            return
        lifetime = self._seconds * (1.0 - random.random() / 4)  # spread, not a secret
        self._entries[user_id] = (self._clock() + lifetime, user)
        self._entries.move_to_end(user_id)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def forget(self, user_id: str) -> None:
        self._entries.pop(user_id, None)


class IdentityService:
    """Owns the account rules; routes only parse input and map the errors this raises.

    `on_deleted`, when given, runs after a deletion is committed (for instance
    `LeaderboardService.removed`, which takes the user off every board and tells live clients).
    """

    def __init__(
        self,
        store: Store,
        hasher: PasswordHasher,
        issuer: TokenIssuer,
        verifier: TokenVerifier,
        limiter: RateLimiter,
        login_limit: str,
        register_limit: str,
        *,
        on_deleted: Callable[[str], Awaitable[None]] | None = None,
        account_cache_seconds: float = 30.0,
        login_address_limit: str | None = None,
    ) -> None:
        self._store = store
        self._accounts = AccountCache(account_cache_seconds)
        self._hasher = hasher
        self._issuer = issuer
        self._verifier = verifier
        self._limiter = limiter
        self._login_limit = login_limit  # per (username, address)
        self._login_address_limit = login_address_limit or login_limit
        self._register_limit = register_limit
        self._on_deleted = on_deleted

    async def register(
        self, username: str, password: str, display_name: str | None = None, *, client: str
    ) -> UserRecord:
        """Create a password account. Input is checked before the rate limit counts the
        attempt, so a typo does not use up a client's allowance; `UsernameTaken` does."""
        check_username(username)
        check_password(password)
        name = check_display_name(display_name, username)
        await enforce(self._limiter, self._register_limit, "register-ip", client)
        password_hash = await self._hasher.hash(password)
        return await self._store.create_user(username, password_hash, name)

    async def login(self, username: str, password: str, *, client: str) -> tuple[str, int]:
        """A fresh access token for `sign_in`'s account and its lifetime in seconds."""
        return self.issue(await self.sign_in(username, password, client=client))

    def issue(self, user: UserRecord) -> tuple[str, int]:
        """An access token for `user` and its lifetime: the one place tokens are minted."""
        return self._issuer.issue(user.user_id, user.roles)

    async def sign_in(self, username: str, password: str, *, client: str) -> UserRecord:
        """The account whose password this is.

        Limited per client address and per (username, address) pair, never per username alone
        (see the module docstring). Every refusal is the same `InvalidCredentials`, and an
        unknown user costs the same hashing time as a wrong password. `ServiceUnavailable`
        when the hashing pool is full.
        """
        await enforce(self._limiter, self._login_address_limit, "login-ip", client)
        # Truncated: a valid username has at most 32 characters; a huge one must not make a
        # huge limiter key.
        name = str(username).lower()[:64]
        await enforce(self._limiter, self._login_limit, "login-user-ip", name, client)
        user: UserRecord | None = None

        async def stored_hash() -> str | None:
            nonlocal user
            if isinstance(username, str) and USERNAME.fullmatch(username):
                user = await self._store.get_user_by_username(username)
            if user is None or not user.active or not isinstance(password, str):
                return None
            return None if len(password) > PASSWORD_MAX else user.password_hash

        secret = password if isinstance(password, str) else ""
        if not await self._hasher.check(secret, stored_hash) or user is None:
            raise InvalidCredentials()
        return user

    async def authenticate(self, token: str) -> Principal:
        """The caller behind a bearer token; `Unauthenticated` when it is not a live account,
        `Forbidden` when the account is banned (a ban ends its sessions: its tokens are refused
        everywhere within the account cache's bound, its writes at once by the batch).

        A first token from the external identity provider creates the account it names.
        """
        claims = await self._verifier.verify(token)
        user: UserRecord | None
        if claims.external:
            subject = f"{claims.issuer}|{claims.subject}"
            user = await self._accounts.get(
                EXTERNAL_KEY + subject, lambda _: self._external_user(claims, subject)
            )
        else:
            user = await self._accounts.get(claims.subject, self._store.get_user)
        if user is None or not user.active:
            raise Unauthenticated("The account behind this token no longer exists.")
        if user.status == "banned":
            raise Forbidden("This account is banned.")
        roles = granted_roles(claims, user)
        return Principal(user.user_id, user.display_name, claims.expires_at, claims.external, roles)

    async def delete_me(self, user_id: str) -> None:
        """Delete the account; its score events stay in the audit log."""
        user = await self._store.get_user(user_id)
        keys = [user_id]
        if user is not None and user.external_subject is not None:
            keys.append(EXTERNAL_KEY + user.external_subject)
        for key in keys:
            self._accounts.forget(key)
        if not await self._store.delete_user(user_id):
            raise NotFound("No such user.")
        for key in keys:
            self._accounts.forget(key)
        if self._on_deleted is not None:
            await self._on_deleted(user_id)

    async def _external_user(self, claims: Claims, subject: str) -> UserRecord:
        """The account of an external identity, created on first sight.

        A deleted account is returned as is (and refused by the caller), never re-created:
        deleting oneself must stick. Two first requests racing both try to create; the loser
        sees `UsernameTaken` and finds the winner's account by subject.
        """
        user = await self._store.get_user_by_subject(subject)
        if user is not None:
            return user
        display = _external_display_name(claims)
        for username in _username_candidates(claims, subject):
            try:
                return await self._store.create_user(
                    username, None, display or username, external_subject=subject
                )
            except UsernameTaken:
                user = await self._store.get_user_by_subject(subject)
                if user is not None:
                    return user
        raise Unauthenticated("No account could be created for this identity.")


def _username_candidates(claims: Claims, subject: str) -> list[str]:
    """The preferred username when usable, else `ext-<hash>`; then variants with a suffix."""
    digest = hashlib.sha256(subject.encode()).hexdigest()
    base = USERNAME_CHARS.sub("", claims.preferred_username or "")[:32]
    if len(base) < 3:
        base = f"ext-{digest[:12]}"
    candidates = [base, f"{base[:25]}-{digest[:6]}"]
    while len(candidates) < PROVISION_ATTEMPTS:
        candidates.append(f"{base[:25]}-{secrets.token_hex(3)}")
    return candidates


def _external_display_name(claims: Claims) -> str:
    for value in (claims.name, claims.preferred_username, claims.subject):
        name = "".join(ch for ch in (value or "") if ch.isprintable()).strip()[:DISPLAY_NAME_MAX]
        if name:
            return name
    return ""
