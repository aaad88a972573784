"""The platform's Redis clients: plain Redis, or Redis Cluster when REDIS_CLUSTER is true.

On a cluster, REDIS_URL names any one of its nodes: redis-py's RedisCluster asks it for the
others and for which master holds which slot, follows a failover by itself, and sends each
command to the master of its key's slot. What the platform sends was made for that: every script
touches keys of one account only, all tagged {<account id>} (api.limits), so they share a slot.
The one watch channel (api.notify) is a sharded pub/sub channel there (SPUBLISH, SSUBSCRIBE:
Redis 7): a notice goes to the channel's shard only, where PUBLISH would copy every notice to
every node of the cluster.
"""

import contextlib
import socket
import struct
from typing import Any, cast
from urllib.parse import urlsplit

import redis
import redis.asyncio
import redis.asyncio.cluster
from django.conf import settings
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

# What a Redis that cannot answer raises: redis-py's cluster client also raises
# RedisClusterException (not a RedisError) when no node holds a slot or none can be reached.
ERRORS = (redis.RedisError, redis.exceptions.RedisClusterException)

Client = redis.Redis | RedisCluster


def connect(url: str, **options: Any) -> Client:
    """A client of REDIS_URL's Redis (RedisCluster: connects to the cluster now, so it raises
    one of ERRORS if no node answers). A socket_timeout of a plain TCP connection (redis://) is
    kept by the kernel (KernelTimeoutConnection)."""
    if settings.REDIS_CLUSTER:
        return RedisCluster.from_url(url, **options)
    timeout = options.get("socket_timeout")
    if timeout and urlsplit(url).scheme == "redis":
        # Only there: the URL's own class (TLS for rediss://, a Unix socket) would be replaced.
        options.update(
            socket_timeout=None, connection_class=KernelTimeoutConnection, io_timeout=timeout
        )
    return redis.Redis.from_url(url, **options)


class KernelTimeoutConnection(redis.Connection):
    """A TCP connection whose reads and writes time out in the kernel (SO_RCVTIMEO and
    SO_SNDTIMEO) instead of in Python: a Python socket with a timeout polls before every send
    and receive, a system call more each time and the GIL let go once more, which the
    request's other threads then take (13 more futex calls a request, bench/NOTES.md). Past
    the timeout a call fails (EAGAIN), which redis-py raises as a ConnectionError."""

    def __init__(self, *, io_timeout: float, **kwargs: Any):
        super().__init__(**kwargs)
        seconds, fraction = divmod(io_timeout, 1)
        self._timeval = struct.pack("ll", int(seconds), int(fraction * 1_000_000))  # timeval

    def _connect(self) -> socket.socket:
        sock = super()._connect()  # connected, blocking (socket_timeout None)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, self._timeval)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, self._timeval)
        return sock


def connect_async(url: str, max_connections: int):
    """The event loop's client (the watch hub's): at most `max_connections` connections (a
    node: on a cluster, to each node)."""
    if settings.REDIS_CLUSTER:
        return redis.asyncio.cluster.RedisCluster.from_url(url, max_connections=max_connections)
    pool = redis.asyncio.BlockingConnectionPool.from_url(url, max_connections=max_connections)
    return redis.asyncio.Redis(connection_pool=pool)


def publish(client: Client, channel: str, message: str) -> None:
    if isinstance(client, RedisCluster):
        client.spublish(channel, message)
    else:
        client.publish(channel, message)


async def publish_async(client, channel: str, message: str) -> None:
    if isinstance(client, redis.asyncio.cluster.RedisCluster):
        # The asyncio cluster client has no spublish() of its own; it routes the command by its
        # key (the channel), as Redis says of SPUBLISH.
        await client.execute_command("SPUBLISH", channel, message)
    else:
        await client.publish(channel, message)


@contextlib.asynccontextmanager
async def subscribed(client, channel: str):
    """A pub/sub subscribed to `channel`: on a cluster, SSUBSCRIBE on the master of the
    channel's slot, asked afresh each time (after a failover, the replica promoted). redis-py
    subscribes a plain channel again by itself after reconnecting, but not a sharded one: that
    connection therefore never retries, and any failure ends it (the caller subscribes again)."""
    if not isinstance(client, redis.asyncio.cluster.RedisCluster):
        async with client.pubsub() as pubsub:
            await pubsub.subscribe(channel)
            yield pubsub
        return
    await client.initialize()  # once: the nodes, and how each command finds its keys
    await client.nodes_manager.initialize()  # the slots as the cluster says now
    node = client.get_node_from_key(channel)
    if node is None:
        raise redis.exceptions.SlotNotCoveredError(f"no node holds the slot of {channel}")
    options: dict[str, Any] = dict(redis.asyncio.connection.parse_url(settings.REDIS_URL))
    options.update(host=node.host, port=node.port, retry=Retry(NoBackoff(), 0))
    shard = redis.asyncio.Redis.from_pool(redis.asyncio.ConnectionPool(**options))
    try:
        async with shard.pubsub() as pubsub:
            await pubsub.execute_command("SSUBSCRIBE", channel)
            yield pubsub
    finally:
        await shard.aclose()


async def messages(pubsub):
    """What a subscription receives, until its connection fails. (Not pubsub.listen(), which
    ends at once on a sharded subscription: redis-py counts only plain channels as one.)"""
    while True:
        message = await pubsub.get_message(timeout=None)
        if message is not None:
            yield message


# A notice on the channel: "message" (SUBSCRIBE), "smessage" (SSUBSCRIBE).
NOTICE_TYPES = ("message", "smessage")
# Redis unsubscribes a sharded channel's subscribers when its slot moves to another node (a
# manual failover, a resharding): subscribe again, where it is now.
MOVED_TYPES = ("sunsubscribe",)


def mget(client: Client, names: list[str]) -> list:
    """GET of several keys in one round trip a slot (a cluster's MGET must stay in one)."""
    if isinstance(client, RedisCluster):
        return client.mget_nonatomic(names)
    return cast(list, client.mget(names))
