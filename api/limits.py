"""Rate limits decided in Redis, in one round trip per request.

- Requests: 1000 per API key per clock hour (spec; the account's plan may say otherwise). Each
  request increments the key's counter for the hour; past the limit the answer is a 429 until the
  hour ends. The same counters are the usage figures that beat rolls into PostgreSQL.
- Writes: one per second per key (spec). A write sets a marker with SET NX PX: the first write in
  the window creates it and passes, any other write while it lives is refused.

Both happen in one Lua script, so they cost one round trip and are atomic: a counter is never left
without an expiry, and two racing requests cannot both take the last slot. The script's call is the
same for every request of an API key in an hour: it is packed once (script_call), and a request
sends it as it is, a write adding its key's marker. Every key the script touches carries its
account's id as a Redis Cluster hash tag ({42}), so all of them live in one slot and the script
runs unchanged on a cluster (REDIS_CLUSTER, api.redis_clients); an account is the unit because its
API keys share the one-write-per-second rule. The first request of an hour of an API key also adds
its account to the hour's list for beat's roll-up (a second round trip, once a key and hour).
Without REDIS_URL an in-process table does the same for the single-process embedded default,
and that process rolls its counters into the usage table itself (api.rollups.keep_rolling_up).
If Redis cannot be reached, requests are served with limits off (logged at most once a minute)
and Redis is tried again after REDIS_RETRY_SECONDS, so limits resume within seconds of its
return.
"""

import functools
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import redis
from django.conf import settings
from django.core.signals import setting_changed

from api import redis_clients

log = logging.getLogger(__name__)

REDIS_TIMEOUT_SECONDS = 0.25  # a slow Redis adds at most this to a request
REDIS_RETRY_SECONDS = 3  # after a failure, serve without limits this long before trying again
WARN_EVERY_SECONDS = 60
HOUR = 3600
USAGE_KEPT_SECONDS = 86400  # counters outlive their hour by a day, for beat's rollup

# KEYS: hour counter, set of the hour's API keys, then ARGV[5] block markers (a revoked key or
#       token, a suspended account), then the write marker (only if ARGV[4] != '0')
# ARGV: expire-at (epoch s), API key id, hourly limit, write window (ms, '0' = not a write),
#       number of block markers
# Returns count * WAIT_SPAN + the write's wait in ms (a window is at most 1000 ms), or -n if block
# marker n exists (nothing is counted): one integer, which the client reads in a third of the
# Python an array of two takes.
_LUA = """
local blocks = tonumber(ARGV[5])
if blocks > 0 and redis.call('EXISTS', unpack(KEYS, 3, 2 + blocks)) > 0 then
  for i = 1, blocks do
    if redis.call('EXISTS', KEYS[2 + i]) == 1 then return -i end
  end
end
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('EXPIREAT', KEYS[1], ARGV[1])
  redis.call('SADD', KEYS[2], ARGV[2])
  redis.call('EXPIREAT', KEYS[2], ARGV[1])
end
local wait = 0
if count <= tonumber(ARGV[3]) and ARGV[4] ~= '0' then
  if not redis.call('SET', KEYS[3 + blocks], '1', 'NX', 'PX', ARGV[4]) then
    wait = redis.call('PTTL', KEYS[3 + blocks])
    if wait < 1 then wait = 1 end
  end
end
return count * 1000000 + wait
"""
WAIT_SPAN = 1_000_000  # > any wait in ms; a count up to 9e9 keeps the sum exact in Lua's double
# An open watch stream takes a slot of its account's (a sorted set: stream id -> until when, epoch
# s), which its hub renews while it is open (api.watchhub) and gives back when it ends; a slot
# whose hub died lapses after WATCH_SLOT_SECONDS.
# KEYS: the account's watches; ARGV: now, until, the plan's limit, the stream's id.
# Returns 1 if the slot was taken, 0 if the account has `limit` open already.
_WATCH_LUA = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], 3600)
return 1
"""
WATCH_SLOT_SECONDS = 90  # a hub renews its streams' slots every 30 s (THISDB_WATCH_RECHECK_SECONDS)

# The web pages' writes: only the one-write-per-second rule (pages count no requests).
# KEYS: the write marker; ARGV: window (ms). Returns the wait in ms (0: the write may go).
_WRITE_LUA = """
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return 0 end
local wait = redis.call('PTTL', KEYS[1])
if wait < 1 then wait = 1 end
return wait
"""

# A transaction (api.transactions): `cost` requests at once and every written key's marker.
# KEYS: hour counter, set of the hour's API keys, ARGV[6] block markers, then the write markers
# ARGV: expire-at, API key id, hourly limit, write window (ms, '0' = off), number of block
#       markers, cost
# Returns {-1, n} if block marker n exists; else {count, write wait ms, refused, first}:
# refused = 1 when the hour has fewer than `cost` requests left (nothing is counted or claimed);
# otherwise `cost` is counted and the markers are claimed all or none (wait > 0: none, as one of
# them is held); first = 1 when this made the hour's counter.
_BATCH_LUA = """
local blocks = tonumber(ARGV[5])
for i = 1, blocks do
  if redis.call('EXISTS', KEYS[2 + i]) == 1 then return {-1, i} end
end
local cost = tonumber(ARGV[6])
local before = tonumber(redis.call('GET', KEYS[1]) or '0')
if before + cost > tonumber(ARGV[3]) then return {before, 0, 1, 0} end
local count = redis.call('INCRBY', KEYS[1], cost)
local first = 0
if before == 0 then
  redis.call('EXPIREAT', KEYS[1], ARGV[1])
  redis.call('SADD', KEYS[2], ARGV[2])
  redis.call('EXPIREAT', KEYS[2], ARGV[1])
  first = 1
end
local wait = 0
if ARGV[4] ~= '0' and #KEYS >= 3 + blocks then
  -- One EXISTS for every marker; only when one is held, the waits of each.
  if redis.call('EXISTS', unpack(KEYS, 3 + blocks)) > 0 then
    for i = 3 + blocks, #KEYS do
      local left = redis.call('PTTL', KEYS[i])
      if left == -1 or left > 0 then
        if left < 1 then left = 1 end
        if left > wait then wait = left end
      end
    end
  end
  if wait == 0 then
    for i = 3 + blocks, #KEYS do redis.call('SET', KEYS[i], '1', 'PX', ARGV[4]) end
  end
end
return {count, wait, 0, first}
"""


# Made on every request: not frozen, as a frozen dataclass's __init__ calls object.__setattr__
# once a field.
@dataclass(slots=True)
class Decision:
    limit: int
    count: int  # this request included
    reset_at: int  # epoch seconds when the hour's counter starts again
    write_wait_ms: int = 0  # > 0: the key was written less than a window ago
    blocked_by: int | None = None  # index into the request's block markers that exists

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.count)

    @property
    def over_hourly(self) -> bool:
        return self.count > self.limit

    def retry_after(self, now: float) -> int:
        """Whole seconds to wait (Retry-After), at least 1."""
        if self.over_hourly:
            return max(1, int(self.reset_at - now))
        return max(1, -(-self.write_wait_ms // 1000))


OPS_PER_REQUEST = 100  # a transaction counts one request per 100 ops started (1,000 ops: 10)


def batch_cost(ops: int) -> int:
    """The requests a transaction of `ops` operations counts: one per 100 started, at least 1."""
    return max(1, -(-ops // OPS_PER_REQUEST))


@dataclass(slots=True)
class BatchDecision(Decision):
    """A transaction's decision: `count` is the hour's requests after it (before it if it was
    refused), and a refusal for the hour leaves everything as it was."""

    refused: bool = False  # the hour has fewer than the transaction's cost left

    @property
    def over_hourly(self) -> bool:
        return self.refused


def hour_start(now: float) -> int:
    return int(now) - int(now) % HOUR


def _account(user_id: int) -> str:
    # {user_id} is the hash tag: Redis Cluster puts every key of one account in one slot.
    return f"{settings.THISDB_REDIS_PREFIX}:{{{user_id}}}"


def counter_key(user_id: int, api_key_id: int, hour: int) -> str:
    return f"{_account(user_id)}:rq:{api_key_id}:{hour}"


def hour_keys_key(user_id: int, hour: int) -> str:
    """The account's API keys that made requests in the hour."""
    return f"{_account(user_id)}:rq-keys:{hour}"


def hour_accounts_key(hour: int) -> str:
    """The accounts whose keys made requests in the hour (outside any account's slot)."""
    return f"{settings.THISDB_REDIS_PREFIX}:rq-accounts:{hour}"


def marker_key(user_id: int, bucket_id: str, key: str) -> str:
    # Under the bucket owner's tag, so every writer of the key meets the same marker; the key is
    # hashed to bound the Redis key's length (keys may be 512 bytes).
    digest = hashlib.blake2b(key.encode(), digest_size=16).hexdigest()
    return f"{_account(user_id)}:w:{bucket_id}:{digest}"


def block_key(user_id: int, kind: str, ident: int) -> str:
    """The marker that refuses a revoked key ("key"), token ("token") or suspended account
    ("user") of the account on every worker before its cached lookup expires."""
    return f"{_account(user_id)}:blk:{kind}:{ident}"


def block_seconds() -> int:
    # A marker must outlive every cached lookup made before the change (THISDB_AUTH_CACHE_SECONDS);
    # after that, the lookups come from the database, which refuses by itself.
    return settings.THISDB_AUTH_CACHE_SECONDS + 5


def write_window_ms() -> int:
    per_second = settings.THISDB_KEY_WRITES_PER_SECOND
    return 0 if per_second <= 0 else max(1, 1000 // per_second)  # 0: limit off


class ScriptCall(NamedTuple):
    """A request's call of the limit script (_LUA) but its write's marker: the same for every
    request of one API key in one hour, so it is made once an hour (script_call), encoded for
    Redis too: redis-py would encode and pack each argument in Python on every call (a dozen a
    write), where a request now adds its marker's few bytes to a command packed already."""

    keys: tuple[str, ...]  # the hour's counter, the hour's API keys, the block markers
    args: tuple[int, ...]  # expire-at, API key id, hourly limit, write window, block markers
    encoded_keys: tuple[bytes, ...]
    encoded_args: tuple[bytes, ...]
    packed: bytes  # the whole command (EVALSHA) without a marker, as Redis reads it (RESP)
    packed_head: bytes  # with a marker: what comes before it
    packed_tail: bytes  # and after it (the arguments)

    def keys_with(self, marker: str | None) -> tuple[bytes, ...]:
        """The encoded keys, with the write's marker if there is one."""
        return self.encoded_keys if marker is None else (*self.encoded_keys, marker.encode())

    def command(self, marker: str | None) -> bytes:
        """The packed command, with the write's marker if there is one."""
        if marker is None:
            return self.packed
        name = marker.encode()
        return b"".join((self.packed_head, b"$%d\r\n" % len(name), name, b"\r\n", self.packed_tail))


_SHA = hashlib.sha1(_LUA.encode()).hexdigest().encode()  # the script's name in Redis (EVALSHA)


def _bulk(*parts: bytes) -> bytes:
    """Arguments in Redis's request format (RESP): each a length and its bytes."""
    return b"".join(b"$%d\r\n%s\r\n" % (len(part), part) for part in parts)


# One entry an API key and hour that made requests (under a kilobyte each): 4,096 is a few
# megabytes at most, and an entry past the hour is never asked for again.
@functools.lru_cache(maxsize=4096)
def script_call(
    user_id: int,
    api_key_id: int,
    requests_per_hour: int,
    blocks: tuple[str, ...],
    hour: int,
    window_ms: int,
) -> ScriptCall:
    keys = (counter_key(user_id, api_key_id, hour), hour_keys_key(user_id, hour), *blocks)
    expire_at = hour + HOUR + USAGE_KEPT_SECONDS
    args = (expire_at, api_key_id, requests_per_hour, window_ms, len(blocks))
    encoded_keys = tuple(name.encode() for name in keys)
    encoded_args = tuple(str(arg).encode() for arg in args)

    def head(markers: int) -> bytes:  # the command's length, EVALSHA, the script, its keys
        numkeys = len(keys) + markers
        parts = 3 + numkeys + len(args)
        return b"*%d\r\n" % parts + _bulk(b"EVALSHA", _SHA, b"%d" % numkeys, *encoded_keys)

    tail = _bulk(*encoded_args)
    return ScriptCall(keys, args, encoded_keys, encoded_args, head(0) + tail, head(1), tail)


def _forget_script_calls(setting: str, **kwargs) -> None:
    if setting == "THISDB_REDIS_PREFIX":  # the keys' names begin with it
        script_call.cache_clear()


setting_changed.connect(_forget_script_calls)


def _sent(pool: redis.ConnectionPool, command: bytes) -> Any:
    """A packed command's reply, on a connection of `pool`: what Redis.execute_command does,
    without its packing, its retry's closures and its metrics' hooks (a tenth of a request's
    Python). The pool checks a connection as it gives it out and opens it again if Redis closed
    it (a restart). Any failure after that is Redis failing: the caller serves without limits
    for a while, as for every other error."""
    conn = pool.get_connection()
    try:
        conn.send_packed_command([command])  # a list: each item goes out as it is
        return conn.read_response()
    finally:
        pool.release(conn)


class RedisLimiter:
    def __init__(self, url: str):
        self.url = url
        self._client: redis_clients.Client | None = None
        self._connecting = threading.Lock()
        self.down_until = 0.0
        self.last_warning = 0.0

    @property
    def client(self) -> redis_clients.Client:
        """The client, made on first use: a cluster's is made by asking a node for the others,
        which raises (redis_clients.ERRORS) while none answers; the next use asks again."""
        if self._client is None:
            with self._connecting:
                if self._client is None:
                    client = redis_clients.connect(
                        self.url,
                        socket_timeout=REDIS_TIMEOUT_SECONDS,
                        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
                    )
                    # RedisCluster's register_script is Redis's (typed for Redis alone).
                    registering: Any = client
                    self.script = registering.register_script(_LUA)
                    self.write_script = registering.register_script(_WRITE_LUA)
                    self.batch_script = registering.register_script(_BATCH_LUA)
                    self.watch_script = registering.register_script(_WATCH_LUA)
                    self._client = client
        return self._client

    def count(self, call: ScriptCall, marker: str | None) -> tuple[int, int] | None:
        """Run the script: (count, write wait ms), or (-n, 0) if block marker n exists; None if
        Redis cannot be reached (limits are then off)."""
        result = self._call(self._run_script, call, marker)
        if result is None:
            return None
        return (result, 0) if result < 0 else divmod(result, WAIT_SPAN)

    def _run_script(self, call: ScriptCall, marker: str | None):
        client = self.client
        try:
            if isinstance(client, redis.Redis):
                return _sent(client.connection_pool, call.command(marker))
            # A cluster's client finds the keys' node itself. EVALSHA itself: redis-py's
            # Script.__call__ costs as much Python again (it imports and checks for a pipeline
            # first), and its evalsha() two calls more.
            keys = call.keys_with(marker)
            return client.execute_command("EVALSHA", _SHA, len(keys), *keys, *call.encoded_args)
        except redis.exceptions.NoScriptError:
            # Redis has forgotten the script (a restart): Script.__call__ loads it and runs it.
            return self.script(keys=call.keys_with(marker), args=call.encoded_args)

    def count_batch(self, keys: list[str], args: list) -> list[int] | None:
        """Run the transaction's script (_BATCH_LUA); None if Redis cannot be reached."""
        result = self._call(lambda: self.batch_script(keys, args))
        return None if result is None else [int(n) for n in result]

    def write_slot(self, marker: str, window_ms: int) -> int | None:
        """The wait in ms before `marker`'s key may be written (0: now, and the slot is taken);
        None if Redis is down."""
        result = self._call(lambda: self.write_script([marker], [window_ms]))
        return None if result is None else int(result)

    def block(self, name: str, seconds: int) -> None:
        self._call(lambda: self.client.set(name, "1", ex=seconds))

    def register(self, name: str, member: int, expire_at: int) -> None:
        def add():
            with self.client.pipeline(transaction=False) as pipe:
                pipe.sadd(name, member)
                pipe.expireat(name, expire_at)
                pipe.execute()

        self._call(add)

    def members(self, name: str) -> set[int] | None:
        found = self._call(lambda: self.client.smembers(name))
        return None if found is None else {int(m) for m in found}

    def counts(self, names: list[str]) -> list[int] | None:
        found = self._call(lambda: redis_clients.mget(self.client, names)) if names else []
        return None if found is None else [int(c or 0) for c in found]

    def unblock(self, name: str) -> None:
        self._call(lambda: self.client.delete(name))

    def publish(self, channel: str, message: str) -> None:
        self._call(lambda: redis_clients.publish(self.client, channel, message))

    def close_watch(self, name: str, stream: str) -> None:
        self._call(lambda: self.client.zrem(name, stream))

    def open_watch(self, name: str, stream: str, limit: int, now: float) -> bool | None:
        until = now + WATCH_SLOT_SECONDS
        result = self._call(lambda: self.watch_script([name], [now, until, limit, stream]))
        return None if result is None else bool(result)

    def _call(self, what: Callable[..., Any], *params: Any) -> Any:
        """what(*params), or None if Redis cannot be reached (then not asked again for
        REDIS_RETRY_SECONDS)."""
        now = time.monotonic()
        if now < self.down_until:
            return None
        try:
            _ = self.client  # made on first use: raises while no node of a cluster answers
            return what(*params)
        except redis_clients.ERRORS as exc:
            self.down_until = now + REDIS_RETRY_SECONDS
            if now - self.last_warning >= WARN_EVERY_SECONDS:
                self.last_warning = now
                log.warning("Redis unreachable, rate limits are not enforced: %s", exc)
            return None


class MemoryLimiter:
    """The script's semantics in one process, for the embedded default without Redis."""

    MAX_ENTRIES = 100_000  # budget ~10 MB: expired entries are purged past it

    def __init__(self):
        self.lock = threading.Lock()
        self.expiring: dict[str, tuple[int, float]] = {}  # name -> (value, expires, epoch s)
        self.hour_keys: dict[str, set] = {}
        self.watches: dict[str, dict[str, float]] = {}  # account's watches: stream -> until
        # What api.rollups has added to the usage table: (API key id, hour) -> requests. No other
        # process sees these counters, so this one rolls them up, in a thread started with its
        # first counted request.
        self.rolled_up: dict[tuple[int, int], int] = {}
        self.roll_up_lock = threading.Lock()
        self.roll_up_thread: threading.Thread | None = None

    def count(self, call: ScriptCall, marker: str | None) -> tuple[int, int]:
        keys = call.keys if marker is None else (*call.keys, marker)
        expire_at, api_key_id, limit, window_ms, blocks = call.args
        now = time.time()
        with self.lock:
            if len(self.expiring) >= self.MAX_ENTRIES:
                self.expiring = {k: v for k, v in self.expiring.items() if v[1] > now}
            for i, name in enumerate(keys[2 : 2 + blocks], start=1):
                if self._get(name, now):
                    return -i, 0
            count = self._get(keys[0], now) + 1
            self.expiring[keys[0]] = (count, expire_at)
            self.hour_keys.setdefault(keys[1], set()).add(api_key_id)
            wait = 0
            if count <= limit and window_ms:
                wait = self._claim(keys[2 + blocks], window_ms, now)
            return count, wait

    def count_batch(self, keys: list[str], args: list) -> list[int]:
        expire_at, api_key_id, limit, window_ms, blocks, cost = args
        now = time.time()
        with self.lock:
            for i, name in enumerate(keys[2 : 2 + blocks], start=1):
                if self._get(name, now):
                    return [-1, i]
            before = self._get(keys[0], now)
            if before + cost > limit:
                return [before, 0, 1, 0]
            self.expiring[keys[0]] = (before + cost, expire_at)
            self.hour_keys.setdefault(keys[1], set()).add(api_key_id)
            wait = 0
            if window_ms:
                markers = keys[2 + blocks :]
                held = [self.expiring.get(m, (0, 0.0))[1] for m in markers]
                wait = max(
                    (max(1, int((until - now) * 1000)) for until in held if until > now), default=0
                )
                if not wait:
                    for marker in markers:
                        self.expiring[marker] = (1, now + window_ms / 1000)
            return [before + cost, wait, 0, int(before == 0)]

    def write_slot(self, marker: str, window_ms: int) -> int:
        with self.lock:
            return self._claim(marker, window_ms, time.time())

    def _claim(self, marker: str, window_ms: int, now: float) -> int:
        held = self.expiring.get(marker)
        if held is not None and held[1] > now:
            return max(1, int((held[1] - now) * 1000))
        self.expiring[marker] = (1, now + window_ms / 1000)
        return 0

    def block(self, name: str, seconds: int) -> None:
        with self.lock:
            self.expiring[name] = (1, time.time() + seconds)

    def register(self, name: str, member: int, expire_at: int) -> None:
        with self.lock:
            self.hour_keys.setdefault(name, set()).add(member)
            if self.roll_up_thread is None:
                self.roll_up_thread = threading.Thread(
                    target=self._keep_rolling_up, name="usage-roll-up", daemon=True
                )
                self.roll_up_thread.start()

    def _keep_rolling_up(self) -> None:
        assert keeper is not None, "api.apps sets the roll-up when the app is ready"
        keeper(self)

    def members(self, name: str) -> set[int]:
        with self.lock:
            return {int(m) for m in self.hour_keys.get(name, ())}

    def counts(self, names: list[str]) -> list[int]:
        return self.get_counts(names)

    def unblock(self, name: str) -> None:
        with self.lock:
            self.expiring.pop(name, None)

    def publish(self, channel: str, message: str) -> None:
        pass  # one process: api.notify tells its hub directly

    def open_watch(self, name: str, stream: str, limit: int, now: float) -> bool:
        with self.lock:
            streams = self.watches.setdefault(name, {})
            for gone in [s for s, until in streams.items() if until <= now]:
                del streams[gone]
            if len(streams) >= limit:
                return False
            streams[stream] = now + WATCH_SLOT_SECONDS
            return True

    def keep_watches(self, name: str, streams: list[str], now: float) -> None:
        with self.lock:
            held = self.watches.setdefault(name, {})
            for stream in streams:
                held[stream] = now + WATCH_SLOT_SECONDS

    def close_watch(self, name: str, stream: str) -> None:
        with self.lock:
            self.watches.get(name, {}).pop(stream, None)

    def _get(self, name: str, now: float) -> int:
        value, expires = self.expiring.get(name, (0, 0.0))
        return value if expires > now else 0

    def get_counts(self, names: list[str]) -> list[int]:
        now = time.time()
        with self.lock:
            return [self._get(n, now) for n in names]


# What rolls an in-process limiter's counters into the usage table, in a thread of its own:
# api.rollups.keep_rolling_up, given by api.apps when the app is ready (api.rollups reads the
# counters through this module, which therefore does not import it).
keeper: "Callable[[MemoryLimiter], None] | None" = None

_limiter = None
_limiter_lock = threading.Lock()


def limiter() -> RedisLimiter | MemoryLimiter:
    global _limiter
    if _limiter is None:
        with _limiter_lock:
            if _limiter is None:
                url = settings.REDIS_URL
                _limiter = RedisLimiter(url) if url else MemoryLimiter()
    return _limiter


def is_current(candidate) -> bool:
    """True while `candidate` is the limiter requests are counted with."""
    return _limiter is candidate


def reset() -> None:
    """Forget the limiter, so the next call builds one from the current settings (tests)."""
    global _limiter
    _limiter = None


def check(
    user_id: int,
    api_key_id: int,
    requests_per_hour: int,
    write: tuple[str, str] | None = None,
    now: float | None = None,
    blocks: tuple[str, ...] = (),
) -> Decision | None:
    """Count one request of `api_key_id` of account `user_id` (and claim a write of `write` =
    (bucket, key) of its buckets), unless one of the `blocks` markers exists (then
    Decision.blocked_by says which, counting nothing).

    None means the limits could not be asked (Redis down): serve the request unlimited.
    """
    now = time.time() if now is None else now
    hour = hour_start(now)
    window_ms = write_window_ms() if write else 0
    call = script_call(user_id, api_key_id, requests_per_hour, blocks, hour, window_ms)
    marker = marker_key(user_id, *write) if write and window_ms else None
    current = limiter()
    result = current.count(call, marker)
    if result is None:
        return None
    count, wait = result
    if count < 0:  # -n: block marker n exists
        return Decision(requests_per_hour, 0, hour + HOUR, blocked_by=-count - 1)
    if count == 1:
        current.register(hour_accounts_key(hour), user_id, call.args[0])  # for beat's roll-up
    return Decision(requests_per_hour, count, hour + HOUR, wait)


def check_batch(
    user_id: int,
    api_key_id: int,
    requests_per_hour: int,
    cost: int,
    writes: list[tuple[str, str]],
    blocks: tuple[str, ...] = (),
    now: float | None = None,
) -> BatchDecision | None:
    """Count a transaction of `api_key_id` of account `user_id` as `cost` requests and claim
    the one-write-per-second marker of every (bucket, key) in `writes`, in one round trip.

    Refused whole (BatchDecision.over_hourly, nothing counted) when the hour has fewer than
    `cost` requests left; otherwise counted, and the markers are claimed all or none:
    write_wait_ms > 0 says none was, as one of them is held that long still. blocked_by as for
    check(). None: Redis could not be asked (serve the transaction unlimited).
    """
    now = time.time() if now is None else now
    hour = hour_start(now)
    window_ms = write_window_ms() if writes else 0
    keys = [counter_key(user_id, api_key_id, hour), hour_keys_key(user_id, hour), *blocks]
    if window_ms:
        keys.extend(marker_key(user_id, bucket_id, key) for bucket_id, key in writes)
    expire_at = hour + HOUR + USAGE_KEPT_SECONDS
    args = [expire_at, api_key_id, requests_per_hour, window_ms, len(blocks), cost]
    current = limiter()
    result = current.count_batch(keys, args)
    if result is None:
        return None
    if result[0] < 0:
        return BatchDecision(requests_per_hour, 0, hour + HOUR, blocked_by=result[1] - 1)
    count, wait, refused, first = result
    if first:
        current.register(hour_accounts_key(hour), user_id, expire_at)  # for beat's roll-up
    return BatchDecision(requests_per_hour, count, hour + HOUR, wait, refused=bool(refused))


def write_slot(user_id: int, bucket_id: str, key: str) -> int | None:
    """A write that counts no request (a web page's): only the one-write-per-second rule, the
    same marker as check()'s. Returns the wait in ms (0: the slot is taken, write now), or None
    if Redis is down (no limit then)."""
    window_ms = write_window_ms()
    if not window_ms:
        return 0
    return limiter().write_slot(marker_key(user_id, bucket_id, key), window_ms)


def block(name: str) -> None:
    limiter().block(name, block_seconds())


def publish(channel: str, message: str) -> None:
    """A pub/sub message (api.notify); nothing without Redis, or while it is down."""
    limiter().publish(channel, message)


def watches_key(user_id: int) -> str:
    """The account's open watch streams (in its slot)."""
    return f"{_account(user_id)}:watches"


def close_watch(user_id: int, stream: str) -> None:
    """Give the stream's watch slot back."""
    limiter().close_watch(watches_key(user_id), stream)


def open_watch(user_id: int, stream: str, limit: int) -> bool | None:
    """Take a watch slot of the account for `stream`: False if it has `limit` open already;
    None if Redis is down (no limit then)."""
    return limiter().open_watch(watches_key(user_id), stream, limit, time.time())


def unblock(name: str) -> None:
    limiter().unblock(name)


def current_counts(
    user_id: int, api_key_ids: list[int], now: float | None = None
) -> dict[int, int]:
    """Requests each of an account's keys made in the current clock hour, live; {} if Redis
    cannot be asked."""
    if not api_key_ids:
        return {}
    hour = hour_start(time.time() if now is None else now)
    counts = limiter().counts([counter_key(user_id, i, hour) for i in api_key_ids])
    if counts is None:
        return {}
    return dict(zip(api_key_ids, counts, strict=True))


def hour_counts(hour: int) -> dict[tuple[int, int], int] | None:
    """Every (account, API key)'s requests in the hour; None if Redis cannot be asked."""
    current = limiter()
    accounts = current.members(hour_accounts_key(hour))
    if accounts is None:
        return None
    figures: dict[tuple[int, int], int] = {}
    for user_id in sorted(accounts):
        key_ids = current.members(hour_keys_key(user_id, hour))
        if not key_ids:
            continue
        ids = sorted(key_ids)
        counts = current.counts([counter_key(user_id, i, hour) for i in ids])
        if counts is None:
            return None
        figures.update({(user_id, i): n for i, n in zip(ids, counts, strict=True)})
    return figures
