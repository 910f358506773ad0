"""PasswordHasher: real Argon2 hashes, off the event loop, bounded in concurrency."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from scoreboard.domain.errors import ServiceUnavailable
from scoreboard.service.passwords import PasswordHasher


class CountingHash(PasswordHash):
    """The real Argon2 hasher, recording how many hashes ran at the same moment."""

    def __init__(self) -> None:
        super().__init__((Argon2Hasher(),))
        self._lock = threading.Lock()
        self.running = 0
        self.peak = 0

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        with self._lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            return super().hash(password, salt=salt)
        finally:
            with self._lock:
                self.running -= 1


async def test_hash_then_verify() -> None:
    hasher = PasswordHasher(2)
    encoded = await hasher.hash("correct horse battery")
    assert encoded.startswith("$argon2id$")
    assert "correct horse" not in encoded
    assert await hasher.verify("correct horse battery", encoded)
    assert not await hasher.verify("correct horse battery!", encoded)
    assert not await hasher.verify("", encoded)


async def test_same_password_gets_a_fresh_salt() -> None:
    hasher = PasswordHasher(2)
    first, second = await asyncio.gather(hasher.hash("same-password"), hasher.hash("same-password"))
    assert first != second
    assert await hasher.verify("same-password", first)
    assert await hasher.verify("same-password", second)


async def test_unrecognised_hash_never_matches() -> None:
    hasher = PasswordHasher(1)
    assert not await hasher.verify("password1", "not-a-hash")
    assert not await hasher.verify(
        "password1", "$2b$12$abcdefghijklmnopqrstuuvwxyzABCDEFGHIJKLMNOPQRSTUVW"
    )
    assert not await hasher.verify("password1", "")


async def test_unicode_passwords() -> None:
    hasher = PasswordHasher(1)
    encoded = await hasher.hash("pässwörd-🔑")
    assert await hasher.verify("pässwörd-🔑", encoded)
    assert not await hasher.verify("passwörd-🔑", encoded)


async def test_concurrency_is_capped() -> None:
    counting = CountingHash()
    hasher = PasswordHasher(2, password_hash=counting)
    hashes = await asyncio.gather(*(hasher.hash(f"password-{i}") for i in range(8)))
    assert len(set(hashes)) == 8
    assert counting.peak <= 2


async def test_hashing_does_not_block_the_event_loop() -> None:
    hasher = PasswordHasher(1)
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            await asyncio.sleep(0.002)
            ticks += 1

    task = asyncio.create_task(ticker())
    for i in range(3):
        await hasher.hash(f"password-{i}")
    done.set()
    await task
    # Three Argon2 hashes take tens of milliseconds; a blocked loop would not tick meanwhile.
    assert ticks >= 3


async def test_dummy_verify_costs_about_as_much_as_a_real_one() -> None:
    hasher = PasswordHasher(1)
    encoded = await hasher.hash("password-real")
    await hasher.verify_dummy()  # first call also makes the dummy hash

    def timed(samples: list[float], start: float) -> None:
        samples.append(time.perf_counter() - start)

    real: list[float] = []
    dummy: list[float] = []
    for _ in range(3):
        start = time.perf_counter()
        assert not await hasher.verify("wrong-password", encoded)
        timed(real, start)
        start = time.perf_counter()
        await hasher.verify_dummy()
        timed(dummy, start)
    # Generous bounds: the point is "same order of magnitude", not a benchmark.
    assert min(dummy) > 0.3 * min(real)
    assert min(dummy) < 3 * max(real) + 0.05


class BlockingHash(PasswordHash):
    """Argon2 whose hashes wait for `release` (set by the test): a pool kept busy on demand."""

    def __init__(self) -> None:
        super().__init__((Argon2Hasher(parallelism=1),))
        self.release = threading.Event()
        self.entered = threading.Event()

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        self.entered.set()
        self.release.wait(30)
        return super().hash(password, salt=salt)


async def test_a_full_pool_refuses_sign_ins_at_once_without_touching_the_database() -> None:
    blocking = BlockingHash()
    hasher = PasswordHasher(1, queue=1, wait_seconds=0.05, password_hash=blocking)
    busy = [asyncio.create_task(hasher.hash(f"password-{i}")) for i in range(2)]  # 1 + queue 1
    await asyncio.to_thread(blocking.entered.wait, 30)
    looked_up = 0

    async def stored() -> str | None:
        nonlocal looked_up
        looked_up += 1
        return None

    with pytest.raises(ServiceUnavailable) as caught:
        await hasher.check("password-x", stored)
    assert caught.value.retry_after >= 1 and looked_up == 0
    with pytest.raises(ServiceUnavailable):
        await hasher.hash("password-y")
    blocking.release.set()
    assert len(set(await asyncio.gather(*busy))) == 2
    # With room again, a sign-in is admitted: the lookup runs, the dummy is verified.
    assert not await hasher.check("password-x", stored)
    assert looked_up == 1


async def test_new_hashes_use_one_lane_so_one_hash_is_one_thread() -> None:
    encoded = await PasswordHasher(1).hash("password-lanes")
    assert ",p=1$" in encoded
