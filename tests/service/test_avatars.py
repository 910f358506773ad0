"""`AvatarCache` on a real store: one query for what is not cached, a short life, `forget` for
this process's own profile changes, and the last known URLs while the store is down."""

from __future__ import annotations

import time

from tests.proxy import TcpProxy, upstream, via

from scoreboard.service.avatars import AvatarCache
from scoreboard.store.migrate import run_migrations
from scoreboard.store.sql import SqlStore

STORE_TIMEOUT = 2.0


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_cached_forgotten_expired_and_kept_while_the_store_is_down(
    fresh_pg_url: str,
) -> None:
    await run_migrations(fresh_pg_url)
    proxy = await TcpProxy(*upstream(fresh_pg_url, 5432)).start()
    store = await SqlStore.open(via(fresh_pg_url, proxy), timeout=STORE_TIMEOUT)
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

        proxy.blackhole()  # the store cannot answer any more: the last known URLs stay
        clock.now = 20
        started = time.monotonic()
        assert await cache.avatars(ids) == dict(
            zip(ids, ["https://a.example/new.png", "https://a.example/ben.png", None], strict=True)
        )
        assert time.monotonic() - started >= STORE_TIMEOUT  # it did ask, and waited
        cache.forget(ann.user_id)
        started = time.monotonic()
        assert (await cache.avatars(ids))[ann.user_id] is None
        # Quiet after the failure: not asked again within ttl, so no second wait (a wait would
        # take the whole timeout; the margin is for a slow machine).
        assert time.monotonic() - started < STORE_TIMEOUT / 2
        await proxy.restore()
    finally:
        await store.close()
        await proxy.close()
