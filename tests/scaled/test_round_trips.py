"""One score event is one Redis round trip for the index: the update and the rank for the
response come from one script call. Counted with `MONITOR` on a redis-server of the test's own:
it lists every command a client sent, and marks those a script ran as `[0 lua]`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from tests.throwaway import ThrowawayRedis

from scoreboard.backends import SharedRedisIndex
from scoreboard.domain.ranking import Standing

END = "end-of-counted-commands"


class Monitor:
    """`redis-cli monitor` on the throwaway server: what clients send, until `sent()`."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Monitor:
        self._process = await asyncio.create_subprocess_exec(
            "redis-cli", "-p", str(self._port), "monitor", stdout=asyncio.subprocess.PIPE
        )
        assert self._process.stdout is not None
        assert (await self._process.stdout.readline()).strip() == b"OK"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._process is not None
        self._process.kill()
        await self._process.wait()

    async def sent(self, client: aioredis.Redis) -> list[str]:
        """Commands sent by clients (not run by scripts) since the monitor started."""
        await client.echo(END)
        assert self._process is not None and self._process.stdout is not None
        lines: list[str] = []
        async with asyncio.timeout(5):
            while END not in (line := (await self._process.stdout.readline()).decode()):
                if "lua]" not in line:
                    lines.append(line.split('"', 1)[1].split('"', 1)[0].lower())
        return lines


async def pages(standings: list[Standing]) -> AsyncIterator[list[Standing]]:
    yield standings


async def test_an_update_and_its_rank_are_one_round_trip(
    throwaway_redis: ThrowawayRedis,
) -> None:
    client = aioredis.Redis.from_url(throwaway_redis.url)
    index = SharedRedisIndex(client, "rt:")
    try:
        await index.replace_all(pages([Standing(f"u{i}", f"U{i}", i * 10, i) for i in range(5)]))
        await index.apply(Standing("warm", "W", 1, 1), 1)  # loads the script, connects
        async with Monitor(throwaway_redis.port) as monitor:
            rank = await index.apply(Standing("u1", "U1", 35, 7), 2)
            assert await monitor.sent(client) == ["evalsha"]
        assert rank == 2  # 40, then 35, then 30, ...

        await client.delete("rt:rank:{global}:marker")  # the index was lost (e.g. a flush)
        assert await index.apply(Standing("u2", "U2", 99, 9), 3) is None  # no wrong rank
    finally:
        await client.aclose()
