"""`Broker` on Redis pub/sub: one supervised subscriber per process.

redis-py's own pub/sub reconnection differs between versions (some reconnect and resubscribe
silently, losing messages without telling anyone; some leave the connection dead), so this
module never relies on it: each connection attempt uses a fresh `PubSub`, any error ends it,
and the supervisor reconnects with backoff, resubscribes and then awaits `on_resync` so the
hub can send every local client a fresh snapshot.

On a Redis Cluster the channel is a sharded channel (`SPUBLISH`/`SSUBSCRIBE`): the
subscription is a connection to the master of its slot, found again after every loss
(`realtime.redis_cluster`), so a failover is one more reconnect and resync.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from scoreboard.aio import stop_task
from scoreboard.logs import RepeatedWarning
from scoreboard.realtime.base import MessageHandler, ResyncHandler
from scoreboard.realtime.redis_cluster import (
    ShardedSubscription,
    cluster_client,
    cluster_name,
    is_cluster,
    is_cluster_url,
    mark_stale,
    sharded_subscription,
)

if TYPE_CHECKING:
    from scoreboard.realtime.redis_cluster import AnyRedis

log = logging.getLogger(__name__)
LOST = "subscription"
LOST_EVERY_SECONDS = 30.0  # while Redis stays down: one line now, then one per this


def server_name(client: AnyRedis) -> str:
    """`redis 10.0.0.5:6379` (or the socket path, or `redis cluster` and its startup nodes)
    for log lines: which server is meant."""
    if is_cluster(client):
        return cluster_name(client)
    kwargs = client.connection_pool.connection_kwargs  # type: ignore[union-attr]
    if "path" in kwargs:
        return f"redis {kwargs['path']}"
    return f"redis {kwargs.get('host', '?')}:{kwargs.get('port', 6379)}"


class RedisBroker:
    """`Broker` over one Redis channel (at-most-once, like Redis pub/sub itself).

    `url_or_client`: a URL (the broker then owns its client and closes it) or a client owned
    by the caller. Timings are seconds; the defaults suit production, tests shorten them:

    - `publish_timeout`: bound of one `publish`; a failure is logged and swallowed.
    - `connect_timeout`: bound of connecting + subscribing, and how long `start` waits for
      the first subscription before returning anyway (the supervisor keeps trying).
    - `backoff_initial` .. `backoff_max`: reconnect delay, doubling, with jitter. A publish
      that succeeds while the subscriber waits out its delay ends the wait: Redis is back, so
      the subscriber reconnects (and resyncs the clients) at once instead of up to
      `backoff_max` later, missing the live updates of that interval.
    - `ping_interval`: when the subscription has been silent this long, a PING is sent; no
      reply within another `ping_interval` means a dead (e.g. half-open) connection.

    `on_message` and `on_resync` run on the subscriber task, one at a time, so keep them quick
    (the hub only enqueues). `on_resync` is awaited after every re-subscription, after a first
    subscription that came too late for `start`, and if redis-py reconnected the connection by
    itself. An exception from either is logged and never stops the subscriber; the task only
    ends through `close`. Use one broker per process and event loop.

    While Redis is down the supervisor retries every `backoff_max` s at most, but logs the
    loss once, then once per 30 s with the number of failed attempts, naming the server; the
    first subscription after a loss is logged too.
    """

    def __init__(
        self,
        url_or_client: str | AnyRedis,
        channel: str,
        *,
        publish_timeout: float = 1.0,
        connect_timeout: float = 2.0,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
        ping_interval: float = 5.0,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self._client: Any
        if isinstance(url_or_client, str) and is_cluster_url(url_or_client):
            self._client = cluster_client(url_or_client, connect_timeout)
            self._owns_client = True
        elif isinstance(url_or_client, str):
            self._client = aioredis.Redis.from_url(
                url_or_client, socket_connect_timeout=connect_timeout, socket_timeout=5.0
            )
            self._owns_client = True
        else:
            self._client = url_or_client
            self._owns_client = False
        self._channel = channel
        self._publish_timeout = publish_timeout
        self._connect_timeout = connect_timeout
        self._backoff = (backoff_initial, backoff_max)
        self._ping_interval = ping_interval
        self._on_message: MessageHandler | None = None
        self._on_resync: ResyncHandler | None = None
        self._task: asyncio.Task[None] | None = None
        self._first = asyncio.Event()
        self._starting = False
        self._reconnected = False
        self._publish_failing = False
        self._subscribed = False
        self._closed = False
        self._wake = asyncio.Event()
        self._where = server_name(self._client)
        self._lost = RepeatedWarning(log, every=LOST_EVERY_SECONDS)
        self._down = False
        self._on_lost = on_lost  # every failed (re)subscription, for metrics
        self._sharded = is_cluster(self._client)
        self._node: ShardedSubscription | None = None  # the sharded subscription's connection

    @property
    def connected(self) -> bool:
        """True while the subscription is established (for readiness checks)."""
        return self._subscribed

    async def start(self, on_message: MessageHandler, on_resync: ResyncHandler) -> None:
        """Start the subscriber task; wait up to `connect_timeout` for the first subscription.

        Never raises for a transport failure: if Redis is down the task keeps retrying and
        calls `on_resync` once it is subscribed. Messages handed to `on_message` are bytes.
        """
        if self._task is not None:
            raise RuntimeError("RedisBroker.start called twice")
        self._on_message, self._on_resync = on_message, on_resync
        self._starting = True
        self._task = asyncio.create_task(self._supervise(), name=f"redis-broker:{self._channel}")
        try:
            await asyncio.wait_for(self._first.wait(), self._connect_timeout)
        except TimeoutError:
            log.warning(
                "redis broker: not subscribed yet to %s on %s; retrying",
                self._channel,
                self._where,
            )
        finally:
            self._starting = False

    async def publish(self, message: bytes) -> bool:
        """Best effort, bounded by `publish_timeout`: never raises for a transport failure.

        A connection the pool kept from before a Redis restart fails on first use: that one
        failure is retried at once on a fresh connection (a duplicate notice is harmless, a
        lost one is not). Returns whether Redis took the message.
        """
        if self._closed:
            return False
        try:
            async with asyncio.timeout(self._publish_timeout):
                try:
                    await self._publish(message)
                except (ConnectionError, RedisConnectionError):
                    await self._publish(message)
        except (RedisError, OSError, TimeoutError) as exc:
            mark_stale(self._client)
            # The first failure of a run is a warning; the rest would flood the log.
            level = logging.DEBUG if self._publish_failing else logging.WARNING
            log.log(
                level,
                "redis broker: publish to %s on %s failed: %r",
                self._channel,
                self._where,
                exc,
            )
            self._publish_failing = True
            return False
        if self._publish_failing:
            log.info("redis broker: publish to %s on %s works again", self._channel, self._where)
        self._publish_failing = False
        if not self._subscribed:
            self._wake.set()  # Redis answers: cut the subscriber's backoff short
        return True

    async def _publish(self, message: bytes) -> None:
        if self._sharded:
            await self._client.spublish(self._channel, message)
        else:
            await self._client.publish(self._channel, message)

    async def close(self) -> None:
        """Cancel the subscriber, close its connection, and the client if the broker owns it."""
        self._closed = True
        await stop_task(self._task)
        self._task = None
        if self._owns_client:
            await self._client.aclose()

    async def _supervise(self) -> None:
        """Subscribe, pump, and on any failure reconnect with backoff; never returns."""
        attempt = 0
        while True:
            try:
                pubsub = await self._subscribe()
                try:
                    attempt = 0
                    if self._down:
                        self._lost.clear(LOST)
                        self._down = False
                    await self._announce()
                    await self._pump(pubsub)
                finally:
                    self._subscribed = False
                    await self._release(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure, even a bug: log it and reconnect
                delay = self._delay(attempt)
                attempt += 1
                self._down = True
                if self._on_lost is not None:
                    self._on_lost()
                self._lost.warn(
                    LOST,
                    "redis broker: subscription to %s on %s lost (%r); retrying every %.0f s",
                    self._channel,
                    self._where,
                    exc,
                    self._backoff[1],
                )
                await self._backoff_sleep(delay)

    async def _backoff_sleep(self, delay: float) -> None:
        """Sleep `delay` seconds, or less if a successful publish shows Redis is back."""
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay)

    def _delay(self, attempt: int) -> float:
        """Exponential backoff with jitter: half fixed, half random, capped."""
        initial, cap = self._backoff
        ceiling = min(cap, initial * 2.0 ** min(attempt, 32))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    async def _subscribe(self) -> PubSub:
        """A fresh PubSub subscribed to the channel, confirmed by the server."""
        pubsub: PubSub | None = None
        try:
            async with asyncio.timeout(self._connect_timeout):
                if self._sharded:
                    self._node = await sharded_subscription(
                        self._client, self._channel, self._connect_timeout, refresh=self._down
                    )
                    pubsub = self._node.pubsub
                    await pubsub.ssubscribe(self._channel)
                else:
                    pubsub = self._client.pubsub()
                    await pubsub.subscribe(self._channel)
                confirmed = "ssubscribe" if self._sharded else "subscribe"
                while True:
                    message = await pubsub.get_message(timeout=self._connect_timeout)
                    if message is not None and message["type"] == confirmed:
                        break
        except BaseException:
            await self._release(pubsub)
            raise
        # Should redis-py reconnect this connection by itself, messages may have been lost:
        # the callback makes the pump resync the clients.
        self._reconnected = False
        connection: Any = pubsub.connection
        connection.register_connect_callback(self._note_reconnect)
        self._subscribed = True
        return pubsub

    def _note_reconnect(self, connection: Any) -> None:
        self._reconnected = True

    async def _announce(self) -> None:
        """After the first subscription during `start`, release it; after any other one,
        resync the clients: messages may have been lost while unsubscribed."""
        first = self._starting and not self._first.is_set()
        self._first.set()
        if first:
            log.info("redis broker: subscribed to %s on %s", self._channel, self._where)
            return
        log.info(
            "redis broker: subscribed to %s on %s again; resyncing clients",
            self._channel,
            self._where,
        )
        await self._resync()

    async def _resync(self) -> None:
        assert self._on_resync is not None
        try:
            await self._on_resync()
        except Exception:
            log.exception("redis broker: on_resync failed")

    async def _pump(self, pubsub: PubSub) -> None:
        """Deliver messages until the connection fails; detects silent (half-open) links."""
        loop = asyncio.get_running_loop()
        last_seen = loop.time()
        ping_sent: float | None = None
        poll = min(1.0, self._ping_interval / 2)
        while True:
            if self._closed:
                # `close` cancelled this task, but a cancellation that lands as a read's own
                # timeout fires is swallowed (Python 3.11's `asyncio.timeout`, in redis-py's
                # read): `get_message` then just returns None and the loop would go on.
                raise asyncio.CancelledError
            message = await pubsub.get_message(timeout=poll)
            now = loop.time()
            if message is not None:
                last_seen, ping_sent = now, None
                if message["type"] in ("message", "smessage"):
                    await self._deliver(message["data"])
                elif message["type"] == "sunsubscribe":
                    # Unasked: the channel's slot moved to another node (a failover, a
                    # resharding). Subscribe again where it is now.
                    raise ConnectionError("the channel's slot moved to another node")
            if self._reconnected:
                self._reconnected = False
                await self._resync()
            if ping_sent is None and now - last_seen >= self._ping_interval:
                async with asyncio.timeout(self._ping_interval):
                    await pubsub.ping()
                ping_sent = now
            elif ping_sent is not None and now - ping_sent >= self._ping_interval:
                raise ConnectionError("no reply to PING: the connection is dead")

    async def _deliver(self, data: bytes | str) -> None:
        assert self._on_message is not None
        try:
            await self._on_message(data.encode() if isinstance(data, str) else data)
        except Exception:
            log.exception("redis broker: message handler failed")

    async def _release(self, pubsub: PubSub | None) -> None:
        """Close a subscription's PubSub, and its own connection on a cluster."""
        node, self._node = self._node, None
        try:
            if pubsub is not None:
                await _aclose(pubsub)
        finally:
            if node is not None:
                await node.aclose()


async def _aclose(pubsub: PubSub) -> None:
    """Close a PubSub (redis-py leaves `aclose` unannotated)."""
    close: Callable[[], Awaitable[None]] = pubsub.aclose
    await close()
