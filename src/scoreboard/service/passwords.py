"""Password hashing with Argon2 on a small, bounded pool, so a sign-in storm costs sign-ins and
not the rest of the service.

Each Argon2 hash costs tens of milliseconds of CPU and 64 MiB of memory. Run inline it would
stall every request on the event loop; run unbounded, a storm of logins takes every core (and
the database's read connections, for the account lookups) from score writes. So:

- Hashes run on `threads` dedicated threads (default: cores - 1, at least 1, at most 4), and new
  hashes use one Argon2 lane (`parallelism=1`): one hash is one thread on one core. The cost to
  an attacker is unchanged (Argon2's work is memory x passes, whatever the lanes); an existing
  hash keeps the parameters it was made with.
- At most `threads + queue` sign-ins are admitted at once (hashing, or waiting for a thread). A
  sign-in that finds no place within `wait_seconds` is refused with `ServiceUnavailable`
  (503 with Retry-After) before it has cost anything: no account lookup, no hash.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from pwdlib import PasswordHash
from pwdlib.exceptions import UnknownHashError
from pwdlib.hashers.argon2 import Argon2Hasher

from scoreboard.deadline import not_database_time
from scoreboard.domain.errors import ServiceUnavailable

T = TypeVar("T")
BUSY = "Too many sign-ins at once; retry in a moment."


def default_threads() -> int:
    """One core stays free for the event loop: cores - 1, at least 1, at most 4."""
    return max(1, min(4, (os.cpu_count() or 2) - 1))


class PasswordHasher:
    """Async Argon2 on `threads` threads; at most `threads + queue` sign-ins admitted at once.

    Contract: `hash` and `check` either finish or raise `ServiceUnavailable` after at most
    `wait_seconds` of waiting for admission; `check` spends one verification whether or not
    the account exists, so timing does not tell which usernames exist.
    """

    def __init__(
        self,
        threads: int = 0,
        *,
        queue: int = 16,
        wait_seconds: float = 1.0,
        password_hash: PasswordHash | None = None,
    ) -> None:
        threads = threads or default_threads()
        if threads < 1 or queue < 0 or wait_seconds < 0:
            raise ValueError("threads >= 1, queue >= 0 and wait_seconds >= 0 are required")
        self._hash = password_hash or PasswordHash((Argon2Hasher(parallelism=1),))
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="argon2")
        self._admitted = asyncio.Semaphore(threads + queue)
        self._wait = wait_seconds
        # A real hash of a random password, made on first need: verifying against it costs the
        # same as verifying a real user's password, so unknown usernames are not faster.
        self._dummy: str | None = None

    async def hash(self, password: str) -> str:
        """The encoded hash (algorithm, parameters and salt included) to store."""
        async with self._admission():
            return await self._run(self._hash.hash, password)

    async def check(self, password: str, stored: Callable[[], Awaitable[str | None]]) -> bool:
        """One sign-in: `stored()` looks up the account's hash (None: no usable account, a
        dummy verification is spent instead), then `password` is verified, all within one
        admission, so refused sign-ins do not even reach the database."""
        async with self._admission():
            encoded = await stored()
            # Waiting for a thread and hashing are not the request's database time: a login
            # writes its session after this (`deadline.py`).
            with not_database_time():
                if encoded is None:
                    await self._verify_dummy()
                    return False
                return await self._run(self._verify_sync, password, encoded)

    async def verify(self, password: str, hash: str) -> bool:
        """True when `password` matches `hash`. An unrecognised hash never matches."""
        async with self._admission():
            return await self._run(self._verify_sync, password, hash)

    async def verify_dummy(self) -> None:
        """Spend the time of one verification, for a sign-in without a usable account.

        Without it, "no such user" would answer in microseconds and "wrong password" in tens of
        milliseconds: a timing oracle that tells an attacker which usernames exist.
        """
        async with self._admission():
            await self._verify_dummy()

    def close(self) -> None:
        """Let the threads end once their current hash is done."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    @contextlib.asynccontextmanager
    async def _admission(self) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(self._wait):
                await self._admitted.acquire()
        except TimeoutError:
            raise ServiceUnavailable(BUSY, retry_after=1) from None
        try:
            yield
        finally:
            self._admitted.release()

    async def _verify_dummy(self) -> None:
        if self._dummy is None:
            self._dummy = await self._run(self._hash.hash, secrets.token_urlsafe(16))
        await self._run(self._verify_sync, secrets.token_urlsafe(16), self._dummy)

    async def _run(self, fn: Callable[..., T], *args: str) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _verify_sync(self, password: str, hash: str) -> bool:
        # A corrupt or foreign hash in the database means "cannot log in with a password",
        # not a server error on every attempt.
        try:
            return self._hash.verify(password, hash)
        except UnknownHashError:
            return False
