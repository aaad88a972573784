"""The Django cache on a Redis Cluster (REDIS_CLUSTER=true), through django-redis.

django-redis builds its clients with a connection pool it shares per URL, which redis-py's
RedisCluster cannot take (it keeps a pool a node, and finds the nodes itself); its maintainers
leave a cluster to a pluggable client (django-redis issue 208). Django's own Redis backend has no
cluster either, and would lose what settings.redis_cache relies on: a cache that fails open
(IGNORE_EXCEPTIONS) and delete_pattern. So: django-redis's client, with a connection factory that
makes one RedisCluster per URL for the process (thread-safe, as the pools were), and the one
operation whose command cannot cross slots on a cluster, get_many (MGET), per slot.
"""

import threading
from collections import OrderedDict
from typing import Any

from django_redis.client import DefaultClient
from django_redis.exceptions import ConnectionInterrupted
from django_redis.pool import ConnectionFactory
from redis.cluster import RedisCluster

from api import redis_clients


class ClusterConnectionFactory(ConnectionFactory):
    _clusters: dict[str, RedisCluster] = {}
    _lock = threading.Lock()

    def connect(self, url: str) -> RedisCluster:
        with self._lock:
            if url not in self._clusters:
                params = self.make_connection_params(url)
                del params["url"]
                self._clusters[url] = RedisCluster.from_url(url, **params)
            return self._clusters[url]

    def disconnect(self, connection: Any) -> None:
        connection.disconnect_connection_pools()


class ClusterClient(DefaultClient):
    def get_client(self, *args: Any, **kwargs: Any) -> Any:
        # Making the cluster's client asks a node for the others: while none answers, a miss
        # (IGNORE_EXCEPTIONS), as any other failure to reach the cache is.
        try:
            return super().get_client(*args, **kwargs)
        except redis_clients.ERRORS as error:
            raise ConnectionInterrupted(connection=None) from error

    def get_many(self, keys: Any, version: int | None = None, client: Any = None) -> OrderedDict:
        if client is None:
            client = self.get_client(write=False)
        if not keys:
            return OrderedDict()
        names = OrderedDict((self.make_key(k, version=version), k) for k in keys)
        try:
            values = client.mget_nonatomic(list(names))
        except redis_clients.ERRORS as error:
            raise ConnectionInterrupted(connection=client) from error
        return OrderedDict(
            (names[name], self.decode(value))
            for name, value in zip(names, values, strict=True)
            if value is not None
        )
