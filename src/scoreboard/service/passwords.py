"""Password hashing with Argon2, kept off the event loop and capped in concurrency.

Each Argon2 hash costs tens of milliseconds of CPU and 64 MiB of memory. Run inline it would
stall every other request on the loop; run unbounded, a burst of logins could exhaust memory.
So every hash and verify runs in a worker thread behind a semaphore.
"""

from __future__ import annotations

import asyncio
import secrets

from pwdlib import PasswordHash
from pwdlib.exceptions import UnknownHashError


class PasswordHasher:
    """Async Argon2 hashing; at most `concurrency` hashes run at once per process."""

    def __init__(self, concurrency: int = 4, *, password_hash: PasswordHash | None = None) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._hash = password_hash or PasswordHash.recommended()
        self._slots = asyncio.Semaphore(concurrency)
        # A real hash of a random password, made on first need: verifying against it costs the
        # same as verifying a real user's password, so unknown usernames are not faster.
        self._dummy: str | None = None

    async def hash(self, password: str) -> str:
        """The encoded hash (algorithm, parameters and salt included) to store."""
        async with self._slots:
            return await asyncio.to_thread(self._hash.hash, password)

    async def verify(self, password: str, hash: str) -> bool:
        """True when `password` matches `hash`. An unrecognised hash never matches."""
        async with self._slots:
            return await asyncio.to_thread(self._verify_sync, password, hash)

    async def verify_dummy(self) -> None:
        """Spend the time of one verification, for a login whose username does not exist.

        Without it, "no such user" would answer in microseconds and "wrong password" in tens of
        milliseconds: a timing oracle that tells an attacker which usernames exist.
        """
        if self._dummy is None:
            self._dummy = await self.hash(secrets.token_urlsafe(16))
        await self.verify(secrets.token_urlsafe(16), self._dummy)

    def _verify_sync(self, password: str, hash: str) -> bool:
        # A corrupt or foreign hash in the database means "cannot log in with a password",
        # not a server error on every attempt.
        try:
            return self._hash.verify(password, hash)
        except UnknownHashError:
            return False
