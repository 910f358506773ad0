"""Redis Cluster: the URL form, the client, and the broker's sharded subscription.

`SCOREBOARD_REDIS_URL=redis+cluster://host:port[,host:port...]` names any reachable nodes of
a cluster (the rest are discovered, `CLUSTER SLOTS`); a password goes in the first location
(`redis+cluster://:secret@host:port,host:port`). Everything the service keeps in Redis then
runs on the cluster, unchanged, because every script and MULTI touches the keys of one hash
slot (docs/SCALING.md, "Redis Cluster"):

- a view's index keys share the hash tag `{<view key>}` (`realtime.redis_index`), so the
  scripts, the rebuild (its staged keys are `<view>:tmp:<id>:*`) and its lock stay in one slot,
  and a batch over several views is one `ClusterPipeline`: one pipeline per node, sent
  concurrently, one round trip per node;
- a score limit's counters are one hash per user (`realtime.limiter`), and the `limits`
  library's windows one key each, through its own cluster storage
  (`async+redis+cluster://`);
- the broker's channel is a sharded channel (`SPUBLISH`/`SSUBSCRIBE`, Redis 7): a notice goes
  to the channel's shard only, and each process's one subscriber holds a plain connection to
  the master serving the channel's slot (`sharded_subscription`), resolved again after any
  loss, under the broker's supervisor. redis-py's `ClusterPubSub` is not used: it reconciles
  shard subscriptions by itself in background tasks after a topology change, and the broker
  must know of every loss to resync its clients.

Calls are bounded and never retried, as on one Redis (`scoreboard.backends`), but a failed
call marks the client's slot map stale, so the next call asks the cluster again and finds a
promoted replica.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias, TypeGuard
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from redis.asyncio.client import PubSub
    from redis.asyncio.cluster import RedisCluster

    AnyRedis: TypeAlias = "aioredis.Redis | RedisCluster"

CLUSTER_SCHEME = "redis+cluster://"
NODE_CONNECTIONS = 128  # per node and process; beyond it a call fails (MaxConnectionsError)


@dataclass(frozen=True)
class ClusterAddress:
    """What a `redis+cluster://` URL says: the startup nodes and the credentials."""

    nodes: list[tuple[str, int]]
    username: str | None
    password: str | None


def is_cluster_url(url: str) -> bool:
    return url.startswith(CLUSTER_SCHEME)


def parse_cluster_url(url: str) -> ClusterAddress:
    """`redis+cluster://[user:password@]host:port[,host:port...]` → its parts; `ValueError`
    for a location without a port, a path other than `/` or `/0` (a cluster has one
    database), or no location at all."""
    if not is_cluster_url(url):
        raise ValueError(f"not a Redis Cluster URL: {url.split(':', 1)[0]!r}")
    rest = url[len(CLUSTER_SCHEME) :]
    auth, at, hosts = rest.rpartition("@")
    if not at:
        auth, hosts = "", rest
    hosts, slash, path = hosts.partition("/")
    if slash and path not in ("", "0"):
        raise ValueError("a Redis Cluster URL names no database (one database: 0)")
    nodes = []
    for location in filter(None, hosts.split(",")):
        parts = urlsplit("//" + location)
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or port is None:
            raise ValueError(f"a Redis Cluster node needs host:port, got {location!r}")
        nodes.append((parts.hostname, port))
    if not nodes:
        raise ValueError("a Redis Cluster URL names at least one host:port")
    user, colon, password = auth.partition(":")
    return ClusterAddress(
        nodes,
        unquote(user) if user else None,
        unquote(password) if colon else None,
    )


def cluster_client(url: str, timeout: float, max_connections: int = NODE_CONNECTIONS) -> Any:
    """A `RedisCluster` whose every call fails within `timeout` and is never retried (its
    MOVED/ASK redirects are followed: they are the cluster's routing, not retries)."""
    from redis.asyncio.cluster import ClusterNode, RedisCluster
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    address = parse_cluster_url(url)
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in address.nodes],
        username=address.username,
        password=address.password,
        max_connections=max_connections,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        # Slots whose master is down fail alone; the others keep being served.
        require_full_coverage=False,
    )


def limits_cluster_uri(url: str) -> str:
    """The `limits` storage URI of the same cluster."""
    return "async+" + url


def is_cluster(client: object) -> TypeGuard[RedisCluster]:
    from redis.asyncio.cluster import RedisCluster

    return isinstance(client, RedisCluster)


def mark_stale(client: Any) -> None:
    """After a connection error or timeout: ask the cluster for its slots on the next call.

    redis-py does this itself after a failed single command, but not after a failed pipeline
    when it may not retry; without it a batch would keep being sent to a dead master after
    its replica took over. (RedisCluster's own flag: its `initialize` refreshes the slot map
    under its lock, once for all waiting callers.)"""
    if is_cluster(client):
        client._initialize = True


def cluster_name(client: RedisCluster) -> str:
    """`redis cluster 10.0.0.5:6379,10.0.0.6:6379` for log lines: the startup nodes."""
    names = ",".join(node.name for node in client.startup_nodes) or "?"
    return f"redis cluster {names}"


@dataclass
class ShardedSubscription:
    """A `PubSub` on a connection of its own to the master of the channel's slot, and the
    client that connection belongs to (closed together: `aclose`)."""

    pubsub: PubSub
    node: str
    _client: aioredis.Redis

    async def aclose(self) -> None:
        """Close the connection's client (after the caller closed the PubSub)."""
        await self._client.aclose()


async def sharded_subscription(
    cluster: RedisCluster, channel: str, connect_timeout: float, *, refresh: bool
) -> ShardedSubscription:
    """A fresh subscription's connection to the master serving `channel`'s slot, as the
    cluster says now (`refresh`: ask it again first, after a loss). SSUBSCRIBE is left to
    the caller, which awaits its confirmation."""
    import redis.asyncio as aioredis

    if refresh:
        await cluster.nodes_manager.initialize()
    else:
        await cluster.initialize()
    node = cluster.get_node_from_key(channel)
    if node is None:  # only asked for replicas
        raise LookupError(f"no node serves {channel!r}")
    kwargs = node.connection_kwargs
    client = aioredis.Redis(
        host=node.host,
        port=int(node.port),
        username=kwargs.get("username"),
        password=kwargs.get("password"),
        socket_connect_timeout=connect_timeout,
        socket_timeout=5.0,
    )
    return ShardedSubscription(client.pubsub(), node.name, client)
