"""`RedisBroker` on a Redis Cluster: a sharded channel (SPUBLISH/SSUBSCRIBE) on the master of
its slot, and the supervisor's reconnect and resync when that master fails over.

The failover test starts a cluster of its own (it kills a master); the others share the
session's."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from tests.cluster import ThrowawayCluster
from tests.conftest import require_commands

from scoreboard.realtime.redis import RedisBroker
from scoreboard.realtime.redis_cluster import cluster_client

from .test_redis_broker import FAST, Inbox, running


async def shard_subscribers(url: str, channel: str) -> dict[int, int]:
    """Per master port: how many connections are subscribed to `channel` as a shard channel."""
    cluster: RedisCluster = cluster_client(url, 5.0)
    try:
        await cluster.initialize()
        out = {}
        for node in cluster.get_primaries():
            direct = aioredis.Redis(host=node.host, port=int(node.port))
            try:
                reply = await direct.execute_command("PUBSUB", "SHARDNUMSUB", channel)
                out[int(node.port)] = int(reply[1])
            finally:
                await direct.aclose()
        return out
    finally:
        await cluster.aclose()


async def test_two_processes_receive_in_order_on_the_channels_shard(
    cluster_url: str, cluster_prefix: str
) -> None:
    channel = cluster_prefix + "events"
    a, b = running(cluster_url, channel), running(cluster_url, channel)
    async with a as (pub_a, inbox_a), b as (pub_b, inbox_b):
        assert pub_a.connected and pub_b.connected
        for i in range(5):
            assert await pub_a.publish(b"a%d" % i)
        assert await pub_b.publish(b"from-b")
        expected = [*(b"a%d" % i for i in range(5)), b"from-b"]
        for inbox in (inbox_a, inbox_b):
            assert [await inbox.next() for _ in expected] == expected
        assert inbox_a.resyncs == inbox_b.resyncs == 0
        counts = await shard_subscribers(cluster_url, channel)
        owner = cluster_client(cluster_url, 5.0)
        try:
            await owner.initialize()
            node = owner.get_node_from_key(channel)
            assert node is not None
            # Both subscribers on the slot's master, as shard subscribers; nowhere else.
            assert counts == {p: (2 if p == int(node.port) else 0) for p in counts}
        finally:
            await owner.aclose()
    assert set((await shard_subscribers(cluster_url, channel)).values()) == {0}  # closed


async def test_close_is_clean(cluster_url: str, cluster_prefix: str) -> None:
    broker = RedisBroker(cluster_url, cluster_prefix + "events")
    await broker.start(Inbox().on_message, Inbox().on_resync)
    assert broker.connected
    await broker.close()
    assert not broker.connected
    assert not await broker.publish(b"ignored")
    leftovers = [t for t in asyncio.all_tasks() if t.get_name().startswith("redis-broker")]
    assert leftovers == []


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[ThrowawayCluster]:
    require_commands("redis-server", "redis-cli")
    cluster = ThrowawayCluster(tmp_path / "cluster")
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


async def test_the_channels_master_killed_the_replica_takes_over(
    own_cluster: ThrowawayCluster,
) -> None:
    channel = "sb:events"
    url = own_cluster.url
    timing = {**FAST, "backoff_max": 0.5}
    async with running(url, channel, **timing) as (sub, inbox), running(url, channel) as (pub, _):
        assert await pub.publish(b"before")
        assert await inbox.next() == b"before"
        probe: RedisCluster = cluster_client(url, 5.0)
        await probe.initialize()
        victim = own_cluster.master_of(probe.keyslot(channel))
        await probe.aclose()
        killed = time.monotonic()
        own_cluster.kill(victim)
        await asyncio.to_thread(own_cluster.wait_ok)  # the replica is promoted
        promoted = time.monotonic() - killed
        async with asyncio.timeout(15):
            await inbox.resynced.wait()  # subscribed again, on the new master: clients resync
        assert sub.connected
        for _ in range(100):  # the publisher's slot map may still name the dead master
            if await pub.publish(b"after"):
                break
            await asyncio.sleep(0.1)
        while (message := await inbox.next()) != b"after":
            assert message == b"before", message
        print(f"\nbroker failover: promoted after {promoted:.1f} s")
