"""API keys of the site's backend: created, listed and revoked by `scoreboard apikey`, sent as
`Authorization: Bearer sbk_...`, and authenticated here.

A key is `sbk_` + 32 random bytes (`secrets.token_urlsafe(32)`, 43 characters). The store keeps
only its SHA-256: a plain, unsalted, fast hash is enough because the key is 256 bits of
randomness, not a password a person chose. Salts and slow hashes (Argon2) protect guessable
secrets against dictionary and precomputed attacks; against a uniformly random 256-bit key
there is nothing to precompute and nothing to guess, and a preimage of SHA-256 is out of reach.
A leaked table therefore yields no usable key, and the lookup is one indexed read by the hash
(no per-key salt to try in turn), as fast as the request path needs.

Authentication (`ApiKeys.authenticate`): a key of the wrong shape is refused without a read;
otherwise the key's record is looked up by hash and kept for `cache_seconds` (the account
cache's setting, `SCOREBOARD_ACCOUNT_CACHE_SECONDS`, 30 s by default). The bound, the same in
every process: a revoked key is refused within `cache_seconds` everywhere (at once by a process
that has not seen it recently). Unknown keys are not cached: each costs one read, never a
write. `last_used_at` is refreshed when a process reads an active key into its cache, so it is
exact to within `cache_seconds` and costs one small write per key, process and period.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from scoreboard.domain.errors import NotFound, Unauthenticated, ValidationFailed
from scoreboard.service.principal import API_KEY_PREFIX, Principal
from scoreboard.store.base import ApiKeyRecord, ApiKeyRole, Store

KEY_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
KEY_SHAPE = re.compile(re.escape(API_KEY_PREFIX) + r"[A-Za-z0-9_-]{43}")
KEY_ROLES: tuple[ApiKeyRole, ...] = ("scorer", "admin")


def new_key() -> str:
    """A fresh key: shown once, never stored."""
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    """What the store keeps of a key (hex SHA-256; see the module docstring for why)."""
    return hashlib.sha256(key.encode()).hexdigest()


def is_api_key(token: str) -> bool:
    """Whether a bearer token is meant as an API key (its prefix), well formed or not."""
    return token.startswith(API_KEY_PREFIX)


def check_key_name(name: str) -> str:
    if not KEY_NAME.fullmatch(name):
        raise ValidationFailed(
            "An API key's name is 1 to 64 of letters, digits, '_', '.' or '-'.",
            details={"field": "name"},
        )
    return name


def check_key_role(role: str) -> ApiKeyRole:
    for known in KEY_ROLES:
        if role == known:
            return known
    raise ValidationFailed(
        f"An API key's role is one of {', '.join(KEY_ROLES)}.", details={"field": "role"}
    )


class ApiKeys:
    """Creates, lists, revokes and authenticates API keys (see the module docstring).

    `users` authenticates a bearer token that is not a key (`IdentityService.authenticate`):
    `caller` takes either, for the routes that accept both (None: keys only, the CLI).
    """

    def __init__(
        self,
        store: Store,
        users: Callable[[str], Awaitable[Principal]] | None = None,
        *,
        cache_seconds: float = 30.0,
        max_entries: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._users = users
        self._seconds = cache_seconds
        self._max = max_entries
        self._clock = clock
        self._cache: OrderedDict[str, tuple[float, ApiKeyRecord]] = OrderedDict()

    async def create(self, name: str, role: str = "scorer") -> tuple[str, ApiKeyRecord]:
        """A new key and its record; the key is returned here once and never again.
        `NameTaken` when a key (even a revoked one) has that name."""
        key = new_key()
        record = await self._store.create_api_key(
            check_key_name(name), check_key_role(role), key_hash(key)
        )
        return key, record

    async def revoke(self, name: str) -> ApiKeyRecord:
        """Revoke the key (idempotent); `NotFound` when there is no key of that name."""
        record = await self._store.revoke_api_key(name)
        if record is None:
            raise NotFound(f"No API key named {name!r}.")
        self._cache.pop(record.key_hash, None)
        return record

    async def list(self) -> list[ApiKeyRecord]:
        return await self._store.api_keys()

    async def caller(self, token: str) -> Principal:
        """The caller behind a bearer token: an API key's principal, or a user's."""
        if is_api_key(token) or self._users is None:
            return await self.authenticate(token)
        return await self._users(token)

    async def authenticate(self, key: str) -> Principal:
        """The key's principal (`kind` "apikey", its role as its roles); `Unauthenticated`
        for an unknown, malformed or revoked key."""
        if not KEY_SHAPE.fullmatch(key):
            raise Unauthenticated("Malformed API key.")
        record = await self._record(key_hash(key))
        if record is None:
            raise Unauthenticated("Unknown API key.")
        if not record.active:
            raise Unauthenticated("This API key was revoked.")
        return Principal(
            user_id="",
            display_name=record.name,
            expires_at=math.inf,
            external=False,
            roles=frozenset({record.role}),
            kind="apikey",
            key_name=record.name,
        )

    async def _record(self, digest: str) -> ApiKeyRecord | None:
        entry = self._cache.get(digest)
        if entry is not None and entry[0] > self._clock():
            return entry[1]
        record = await self._store.api_key_by_hash(digest)
        if record is None:
            return None
        if record.active:
            await self._store.touch_api_key(record.name)
        if self._seconds > 0:
            self._cache[digest] = (self._clock() + self._seconds, record)
            self._cache.move_to_end(digest)
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)
        return record
