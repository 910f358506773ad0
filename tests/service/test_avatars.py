"""`AvatarCache` on a real store: one query for what is not cached, a short life, `forget` for
this process's own profile changes, and the last known URLs while the store is down."""

from __future__ import annotations

from scoreboard.service.avatars import AvatarCache
from scoreboard.store.migrate import run_migrations
from scoreboard.store.sql import SqlStore


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_cached_forgotten_expired_and_kept_while_the_store_is_down(
    sqlite_url: str,
) -> None:
    await run_migrations(sqlite_url)
    store = await SqlStore.open(sqlite_url)
    clock = Clock()
    cache = AvatarCache(store, ttl=5, clock=clock)
    try:
        ann = await store.create_user("ann", "h", "Ann", avatar_url="https://a.example/ann.png")
        ben = await store.create_user("ben", "h", "Ben")
        ids = [ann.user_id, ben.user_id, "0" * 16]
        assert await cache.avatars(ids) == dict(
            zip(ids, ["https://a.example/ann.png", None, None], strict=True)
        )

        await store.update_profile(ben.user_id, avatar_url="https://a.example/ben.png")
        assert (await cache.avatars(ids))[ben.user_id] is None  # cached, still young
        cache.forget(ben.user_id)  # this process changed it
        assert (await cache.avatars(ids))[ben.user_id] == "https://a.example/ben.png"

        await store.update_profile(ann.user_id, avatar_url="https://a.example/new.png")
        clock.now = 6  # another process changed it: seen once the entry is older than ttl
        assert (await cache.avatars(ids))[ann.user_id] == "https://a.example/new.png"

        await store.close()  # the store cannot answer any more: the last known URLs stay
        clock.now = 20
        assert await cache.avatars(ids) == dict(
            zip(ids, ["https://a.example/new.png", "https://a.example/ben.png", None], strict=True)
        )
    finally:
        await store.close()
