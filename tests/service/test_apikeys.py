"""`ApiKeys` (service/apikeys.py): the cache's bound on a revocation seen from another process,
`last_used_at`, and the key's shape. Real store (SQLite and PostgreSQL), a controlled clock."""

from __future__ import annotations

import pytest

from scoreboard.domain.errors import Unauthenticated, ValidationFailed
from scoreboard.service.apikeys import ApiKeys, key_hash, new_key
from scoreboard.store.base import Store


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_revocation_elsewhere_is_seen_within_the_cache_period(store: Store) -> None:
    clock = Clock()
    here = ApiKeys(store, cache_seconds=30, clock=clock)  # a serving process
    cli = ApiKeys(store)  # `scoreboard apikey revoke`, another process
    key, _ = await cli.create("backend", "admin")
    principal = await here.authenticate(key)
    assert (principal.kind, principal.key_name, principal.roles) == ("apikey", "backend", {"admin"})
    assert principal.is_admin and principal.actor == "apikey:backend"
    [record] = await cli.list()
    assert record.last_used_at is not None
    await cli.revoke("backend")
    clock.now += 29
    assert (await here.authenticate(key)).key_name == "backend"  # within the bound
    clock.now += 2
    with pytest.raises(Unauthenticated, match="revoked"):
        await here.authenticate(key)


async def test_keys_of_the_wrong_shape_or_unknown_are_refused(store: Store) -> None:
    keys = ApiKeys(store)
    key, record = await keys.create("backend")
    assert record.role == "scorer" and record.key_hash == key_hash(key)
    for bad in (key[:-1], key + "A", "sbk_" + "!" * 43, new_key()):
        with pytest.raises(Unauthenticated):
            await keys.authenticate(bad)
    with pytest.raises(ValidationFailed):
        await keys.create("x" * 65)
    with pytest.raises(ValidationFailed):
        await keys.create("fine", "owner")


def test_keys_are_random_and_long() -> None:
    made = {new_key() for _ in range(100)}
    assert len(made) == 100
    assert all(k.startswith("sbk_") and len(k) == 47 for k in made)
