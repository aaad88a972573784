"""The watch hub: every open watch stream of this web process, held on the front's event loop.

Django opens a watch (api.watching) and hands its plan to the front (thisdb_site.front), which
calls serve(). From then on the stream is a coroutine here: no thread of Django's pool and no
database connection while it waits.

One Feed per watched bucket reads the bucket's history (api.history) on a notice that it changed
(api.notify: Redis pub/sub, sharded on a cluster, or this process directly) and at least every
THISDB_WATCH_POLL_SECONDS without one, one query for all the bucket's watchers of this process,
in a thread of its own; it then hands each watcher the events under its prefix. So adding
watchers adds no database or Redis load, and a lost notice delays a change, never loses it.
A watcher that joins behind the feed (since=) first catches up from the history by itself.
"""

import asyncio
import json
import logging
import re
import sys
import time
import types
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from accounts.models import ApiKey
from api import history, limits, notify, redis_clients, watching
from api.models import Token

log = logging.getLogger(__name__)

# What may wait behind a send the connection has no room for (a reader slower than its
# events): past it the stream is cut off, and the client resumes from its last id.
MAX_PENDING_BYTES = 4 * 1024 * 1024
TICK_SECONDS = 1  # keep-alives, long-polls' ends and expiries are decided this often
REDIS_RETRY_SECONDS = 1
REDIS_CONNECTIONS = 4  # the hub's: its subscription, announcements, slot renewals and releases


class Watcher:
    """One open stream or long-poll."""

    __slots__ = (
        "stream",
        "user",
        "bucket",
        "prefix",
        "position",
        "format",
        "wait",
        "blocks",
        "ends_at",
        "pending",
        "pending_bytes",
        "waiter",
        "closed",
        "cancelled",
        "timed_out",
        "due",
        "send",
        "done",
        "sending",
        "receive",
        "listening",
    )

    def __init__(self, plan: dict):
        # Strings that many streams share are kept once (sys.intern): memory per watcher.
        self.stream: str = plan["stream"]
        self.user: int = plan["user"]
        self.bucket: str = sys.intern(plan["bucket"])
        self.prefix: str = sys.intern(plan["prefix"])
        self.position: int = plan["position"]
        self.format: str = plan["format"]
        self.wait: int = plan["wait"]
        self.blocks: tuple[str, ...] = tuple(sys.intern(b) for b in plan["blocks"])
        self.ends_at: float | None = plan["ends_at"]
        self.pending: list = []  # SSE: bytes; long-poll: event dicts
        self.pending_bytes = 0
        # What the stream's coroutine awaits; done when there is something to do. (A future
        # made per wait, not an asyncio.Event with its deque of waiters: per-watcher memory.)
        self.waiter: asyncio.Future | None = None
        self.closed = False  # the client left (or fell too far behind)
        self.cancelled: str | None = None  # why the stream ends for good
        self.timed_out = False  # a keep-alive is due, or the long-poll's wait is over
        self.due = asyncio.get_running_loop().time()  # when it last sent (or opened)
        # A stream (SSE) is sent to straight from whoever has something for it (its feed, the
        # ticker, a notice), with no coroutine of its own to wake: `send` is granian's, set once
        # the answer's head is out; `done` ends the request when the stream is over; `sending`
        # is a send waiting for room in the connection (a slow reader; it flushes on after).
        self.send: Callable[[dict], Awaitable] | None = None
        self.done: asyncio.Future | None = None
        self.sending: asyncio.Task | None = None
        self.receive = None
        self.listening: asyncio.Future | None = None

    def deliver(self, events: list[history.Event], forms: "Forms") -> None:
        if self.closed:
            return
        if (
            self.send is not None
            and self.sending is None
            and not self.pending
            and self.cancelled is None
            and self.position == events[0].position - 1
        ):
            # A stream that is up to date and idle, as nearly all are: the batch's events under
            # its prefix, made once for every such stream of the prefix, go out at once.
            self.position = events[-1].position
            message = forms.message(self.prefix)
            if message is not None:
                self.due, self.timed_out = forms.due, False
                self._send(message, False)
            return
        for i, event in enumerate(events):
            if event.position <= self.position:
                continue
            self.position = event.position
            if not event.key.startswith(self.prefix):
                continue
            if self.format == "sse":
                chunk = forms.sse(i)
                self.pending.append(chunk)
                self.pending_bytes += len(chunk)
            else:
                self.pending.append(forms.json(i))
        if self.pending:
            if self.sending is not None and self.pending_bytes > MAX_PENDING_BYTES:
                self.cut_off()
            else:
                self.wake()

    def cut_off(self) -> None:
        """The client reads slower than its events come and is too far behind: its stream ends
        (it resumes from the last id it received), and what waited for it is let go."""
        self.closed = True
        self.pending, self.pending_bytes = [], 0
        if self.sending is not None:
            self.sending.cancel()  # its end resolves `done`
        else:
            self.wake()

    def listen(self, receive) -> None:
        """Mark the watcher closed when its client leaves: a callback on the future granian's
        receive() gives, rather than a task a watcher (memory per watcher)."""
        self.receive = receive
        self.listening = asyncio.ensure_future(receive())
        self.listening.add_done_callback(self._heard)

    def _heard(self, received: asyncio.Future) -> None:
        if received.cancelled() or received.exception() is not None:
            return
        if received.result()["type"] == "http.disconnect":
            self.closed = True
            self.wake()
        else:  # the request's (empty) body, which nobody read: listen on
            self.listen(self.receive)

    def credentials(self) -> list[tuple[str, int]]:
        """(kind, id) of what the stream was opened with: "key", "token", "user" (from its
        block markers, api.limits.block_key)."""
        found = []
        for marker in self.blocks:
            matched = _MARKER.search(marker)
            if matched:
                found.append((matched[1], int(matched[2])))
        return found

    def reset(self, position: int) -> None:
        """The history no longer holds what this watcher needs: it lists again."""
        self.position = position
        if self.format == "sse":
            self.pending.append(
                f'id: {position}\nevent: reset\ndata: {{"reason": "history"}}\n\n'.encode()
            )
        else:
            self.pending.append({"id": str(position), "type": "reset", "reason": "history"})
        self.wake()

    def cancel(self, reason: str) -> None:
        if self.cancelled is None:
            self.cancelled = reason
            self.wake()

    def wake(self) -> None:
        if self.send is not None:
            self.flush()
        elif self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def flush(self) -> None:
        """Send the stream what is due, now: pending events, the cancel that ends it, or a
        keep-alive; end it when the client left. granian's send takes a chunk at once while the
        connection has room (its awaitable is then already done); when it has none, a task
        finishes that send and flushes on, and events wait in `pending` meanwhile."""
        if self.sending is not None or self.send is None or self.done is None or self.done.done():
            return
        if self.closed:
            self.done.set_result(None)
            return
        chunks, self.pending, self.pending_bytes = self.pending, [], 0
        last = self.cancelled is not None
        if last:
            chunks.append(watching.sse_cancel(self.cancelled or ""))
        elif not chunks:
            if not self.timed_out:
                return
            chunks = [watching.KEEP_ALIVE]
        self.timed_out = False
        self.due = self.done.get_loop().time()
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self._send({"type": "http.response.body", "body": body, "more_body": not last}, last)

    def _send(self, message: dict, last: bool) -> None:
        assert self.send is not None and self.done is not None
        sent = None
        try:
            sent = self.send(message)
            if type(sent) is _SENT:  # granian took the chunk: nothing to await
                if last:
                    self.done.set_result(None)
                return
            step = sent.__await__()
            waiting_on = next(step)
        except StopIteration:  # sent
            if _SENT is None:
                _learn(sent)
            if last:
                self.done.set_result(None)
            return
        except Exception:  # the client is gone, or the send broke: this stream ends, alone
            self.closed = True
            self.done.set_result(None)
            return
        self.sending = self.done.get_loop().create_task(self._send_rest(step, waiting_on, last))

    async def _send_rest(self, step, waiting_on, last: bool) -> None:
        try:
            await _resume(step, waiting_on)
        except Exception:
            self.closed = True
        except asyncio.CancelledError:
            self.closed = True
            raise
        finally:
            self.sending = None
            if (last or self.closed) and self.done is not None and not self.done.done():
                self.done.set_result(None)
        self.flush()

    async def sleep(self) -> None:
        """Until wake() (at once if it was woken while busy: `pending`, flags)."""
        self.waiter = asyncio.get_running_loop().create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None


# What granian's send gives when it took the chunk at once: an awaitable with nothing to wait
# for. Its class is not exported; it is learnt from the first one seen (_learn). Checking for it
# spares each stream and event an __await__() and a StopIteration, a fifth of the fan-out's
# time; any other awaitable is awaited.
_SENT_NAME = "PyEmptyAwaitable"
_SENT: type | None = None


def _learn(sent: object) -> None:
    global _SENT
    if type(sent).__name__ == _SENT_NAME:
        _SENT = type(sent)


@types.coroutine
def _resume(step, waiting_on):
    """The rest of an awaitable whose first step (next(step)) yielded `waiting_on`: as if it
    had been awaited from the start (the task waits on what it yields, and errors go in)."""
    while True:
        try:
            sent = yield waiting_on
        except BaseException as exc:
            if not hasattr(step, "throw"):
                raise  # what `await` does with an awaitable that cannot take it
            try:
                waiting_on = step.throw(exc)
            except StopIteration as stop:
                return stop.value
            continue
        try:
            waiting_on = next(step) if sent is None else step.send(sent)
        except StopIteration as stop:
            return stop.value


_MARKER = re.compile(r":blk:(key|token|user):(\d+)$")
_KINDS = ("key", "token", "user")


def _keep_watching(buckets: list[str]) -> None:
    """In the hub's database thread (api.history.keep_watching)."""
    try:
        history.keep_watching(buckets)
    finally:
        if settings.DATABASE_POOL_SIZE:
            connection.close()


def _refused(held: dict[str, set[int]]) -> dict[str, set[int]]:
    """In the hub's database thread: which of these keys are revoked, tokens gone, accounts
    suspended."""
    try:
        keys = set(
            ApiKey.objects.filter(pk__in=held["key"], revoked_at__isnull=False).values_list(
                "pk", flat=True
            )
        )
        tokens = held["token"] - set(
            Token.objects.filter(pk__in=held["token"]).values_list("pk", flat=True)
        )
        users = set(
            get_user_model()
            .objects.filter(pk__in=held["user"], is_active=False)
            .values_list("pk", flat=True)
        )
        return {"key": keys, "token": tokens, "user": users}
    finally:
        if settings.DATABASE_POOL_SIZE:
            connection.close()


class Forms:
    """A batch of events in their wire forms, each made once for all the watchers."""

    def __init__(self, events: list[history.Event]):
        self.events = events
        self.now = timezone.now()
        self.due = asyncio.get_running_loop().time()  # when its streams were last sent to
        self._sse: dict[int, bytes] = {}
        self._json: dict[int, dict] = {}
        self._messages: dict[str, dict | None] = {}

    def message(self, prefix: str) -> dict | None:
        """The body message of the events under `prefix`, for a stream that has none of them
        yet; None when none is under it. One dict shared by the prefix's streams (the server
        only reads it)."""
        if prefix not in self._messages:
            chunks = [self.sse(i) for i, e in enumerate(self.events) if e.key.startswith(prefix)]
            self._messages[prefix] = (
                {"type": "http.response.body", "body": b"".join(chunks), "more_body": True}
                if chunks
                else None
            )
        return self._messages[prefix]

    def sse(self, i: int) -> bytes:
        if i not in self._sse:
            self._sse[i] = watching.sse_event(self.events[i], self.now)
        return self._sse[i]

    def json(self, i: int) -> dict:
        if i not in self._json:
            self._json[i] = watching.json_event(self.events[i], self.now)
        return self._json[i]


class Feed:
    """A watched bucket: its position read so far and its watchers in this process."""

    __slots__ = ("bucket", "seen", "watchers", "reading", "again", "closing")

    def __init__(self, bucket: str, seen: int):
        self.bucket = bucket
        self.seen = seen
        self.watchers: set[Watcher] = set()
        self.reading = False
        self.again = False
        self.closing: str | None = None  # the bucket was deleted: cancel after the last read


def _read(bucket: str, after: int) -> list[history.Event]:
    """In the hub's database thread: the changes after `after`. The connection goes back to the
    pool after each read (without a pool it stays open: one a process)."""
    try:
        return history.read_after(bucket, after)
    finally:
        if settings.DATABASE_POOL_SIZE:
            connection.close()


class Hub:
    def __init__(self):
        self.feeds: dict[str, Feed] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.database = ThreadPoolExecutor(1, thread_name_prefix="watch-db")
        self.redis = None
        self.turns = asyncio.Semaphore(REDIS_CONNECTIONS - 1)  # Redis commands at once (_start)
        self.tasks: list[asyncio.Task] = []
        self.released: list[tuple[int, str]] = []  # watch slots to give back (_release)
        self.releasing: asyncio.Task | None = None
        self.serving = 0  # streams and long-polls open now (thisdb_site.metrics samples it)

    # Starting, and what it listens to.

    def start(self) -> None:
        """Listen from now on (the front calls it when the worker starts, on its event loop):
        the notices of this and the other processes' writes, and the announcements of which
        buckets are watched, which this process's writes need to know whether to publish."""
        self._start()

    def _start(self) -> None:
        if self.loop is not None:
            return
        self.loop = asyncio.get_running_loop()
        loop = self.loop

        def tell(notice: dict) -> None:  # from any thread
            # A write to a bucket with no feed here wakes nothing: waking the loop costs a
            # system call each way, on every write. A feed made after this check was made
            # after the write committed, and its first read (_feed) finds the write.
            changed = notice.get("changed")
            if changed is None or changed in self.feeds:
                loop.call_soon_threadsafe(self.heard, notice)

        notify.local_hub = tell
        self.tasks.append(loop.create_task(self._poll()))
        self.tasks.append(loop.create_task(self._renew()))
        self.tasks.append(loop.create_task(self._tick()))
        if settings.REDIS_URL:
            # Few connections, waited for rather than opened on demand: the subscription holds
            # one, and the rest is a round trip at a time per task (5,000 streams closing at
            # once once opened a connection each). A cluster's client cannot wait for one (it
            # fails past its bound): `turns` makes the tasks wait on either.
            self.redis = redis_clients.connect_async(settings.REDIS_URL, REDIS_CONNECTIONS)
            self.tasks.append(loop.create_task(self._listen()))

    def heard(self, notice: dict) -> None:
        """A notice (api.notify), on the event loop."""
        if "changed" in notice:
            feed = self.feeds.get(notice["changed"])
            if feed is not None:
                self._refresh(feed)
        elif "deleted" in notice:
            feed = self.feeds.get(notice["deleted"])
            if feed is not None:
                feed.closing = "bucket_deleted"
                self._refresh(feed)
        elif "blocked" in notice:
            marker = notice["blocked"]
            reason = "suspended" if ":blk:user:" in marker else "revoked"
            for feed in self.feeds.values():
                for watcher in feed.watchers:
                    if marker in watcher.blocks:
                        watcher.cancel(reason)
        elif "watching" in notice:
            notify.heard(notice)
            if notice.get("ask") and self.feeds and self.loop is not None:
                self.loop.create_task(self._announce(list(self.feeds)))  # for a new hub

    async def _listen(self) -> None:
        """The Redis subscription, kept open; after each (re)subscription every feed reads, as
        notices may have been missed meanwhile."""
        warned = False
        while True:
            try:
                assert self.redis is not None
                async with redis_clients.subscribed(self.redis, notify.channel()) as pubsub:
                    warned = False
                    # Asking the other hubs to announce their buckets now: until this process
                    # knows them, its writes to them publish no notice.
                    await self._announce(list(self.feeds), ask=True)
                    for feed in list(self.feeds.values()):
                        self._refresh(feed)
                    async for message in redis_clients.messages(pubsub):
                        if message["type"] in redis_clients.NOTICE_TYPES:
                            self.heard(json.loads(message["data"]))
                        elif message["type"] in redis_clients.MOVED_TYPES:
                            break  # the channel's slot moved: subscribe where it is now
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not warned:
                    warned = True
                    log.warning(
                        "watch notices lost (Redis): watchers are served from the history "
                        "every %s s until it is back: %s",
                        settings.THISDB_WATCH_POLL_SECONDS,
                        exc,
                    )
            await asyncio.sleep(REDIS_RETRY_SECONDS)

    async def _announce(self, buckets: list[str], ask: bool = False) -> None:
        if self.redis is None or not (buckets or ask):
            return
        try:
            notice = notify.announce(buckets, ask=ask)
            async with self.turns:
                await redis_clients.publish_async(self.redis, notify.channel(), json.dumps(notice))
        except Exception:
            pass  # the listener says Redis is away; the next announcement will tell

    async def _poll(self) -> None:
        """Every feed reads at least every THISDB_WATCH_POLL_SECONDS; announcements go out every
        ANNOUNCE_EVERY_SECONDS whatever the poll's period (a longer one let them lapse)."""
        poll = settings.THISDB_WATCH_POLL_SECONDS
        announced = polled = 0.0
        while True:
            await asyncio.sleep(min(poll, notify.ANNOUNCE_EVERY_SECONDS))
            if time.monotonic() - polled >= poll:
                polled = time.monotonic()
                for feed in list(self.feeds.values()):
                    self._refresh(feed)
            if time.monotonic() - announced >= notify.ANNOUNCE_EVERY_SECONDS:
                announced = time.monotonic()
                await self._announce(list(self.feeds))

    async def _renew(self) -> None:
        """Renew the watch slots of the open streams, one round trip for all of them."""
        while True:
            await asyncio.sleep(settings.THISDB_WATCH_RECHECK_SECONDS)
            by_user: dict[int, list[str]] = {}
            for feed in self.feeds.values():
                for watcher in feed.watchers:
                    by_user.setdefault(watcher.user, []).append(watcher.stream)
            if not by_user:
                continue
            try:
                # The watched buckets' changes go on being recorded (api.history).
                assert self.loop is not None
                await self.loop.run_in_executor(self.database, _keep_watching, list(self.feeds))
                await self._recheck()
            except Exception:
                log.exception("the watch streams' credentials could not be checked")
            until = time.time() + limits.WATCH_SLOT_SECONDS
            in_process = limits.limiter()
            if isinstance(in_process, limits.MemoryLimiter) or self.redis is None:
                if isinstance(in_process, limits.MemoryLimiter):
                    for user, streams in by_user.items():
                        in_process.keep_watches(limits.watches_key(user), streams, time.time())
                continue
            try:
                # On a cluster, one round trip to each master that holds an account's slots.
                async with self.turns, self.redis.pipeline(transaction=False) as pipe:
                    for user, streams in by_user.items():
                        pipe.zadd(limits.watches_key(user), dict.fromkeys(streams, until))
                    await pipe.execute()
            except Exception:
                pass  # Redis away: its slots lapse, and so does the limit while it is

    async def _recheck(self) -> None:
        """Cancel the streams whose key or token was revoked or whose account was suspended,
        as the database says (one query a kind): what the notices say at once, when Redis is
        away and they are lost."""
        watchers = [w for feed in self.feeds.values() for w in feed.watchers]
        if not watchers:
            return
        assert self.loop is not None
        held = {
            kind: {i for w in watchers for k, i in w.credentials() if k == kind} for kind in _KINDS
        }
        refused = await self.loop.run_in_executor(self.database, _refused, held)
        for watcher in watchers:
            for kind, ident in watcher.credentials():
                if ident in refused[kind]:
                    watcher.cancel("suspended" if kind == "user" else "revoked")

    def _release(self, watcher: Watcher) -> None:
        """Give the stream's watch slot back: in one round trip with the others that closed
        meanwhile (a worker's streams all closing at once cost one, not one each)."""
        if self.redis is None:
            limits.close_watch(watcher.user, watcher.stream)
            return
        if not self.released:
            assert self.loop is not None
            self.releasing = self.loop.create_task(self._release_all())
        self.released.append((watcher.user, watcher.stream))

    async def _release_all(self) -> None:
        await asyncio.sleep(0)  # the others closing in this turn of the loop join
        released, self.released = self.released, []
        assert self.redis is not None
        try:
            async with self.turns, self.redis.pipeline(transaction=False) as pipe:
                for user, stream in released:
                    pipe.zrem(limits.watches_key(user), stream)
                await pipe.execute()
        except Exception:
            pass  # they lapse by themselves

    # Feeds.

    def _refresh(self, feed: Feed) -> None:
        if feed.reading:
            feed.again = True
            return
        feed.reading = True
        assert self.loop is not None
        self.loop.create_task(self._read_feed(feed))

    async def _read_feed(self, feed: Feed) -> None:
        assert self.loop is not None
        try:
            while True:
                feed.again = False
                events = await self.loop.run_in_executor(
                    self.database, _read, feed.bucket, feed.seen
                )
                if events:
                    if events[0].position != feed.seen + 1:
                        for watcher in feed.watchers:  # swept while nobody read: list again
                            watcher.reset(events[-1].position)
                    else:
                        forms = Forms(events)
                        for watcher in feed.watchers:
                            watcher.deliver(events, forms)
                    feed.seen = events[-1].position
                    if len(events) >= history.READ_BATCH:
                        continue
                if not feed.again:
                    break
        except Exception:
            log.exception("a watch feed could not read its history; it tries again")
        finally:
            feed.reading = False
        if not feed.watchers and self.feeds.get(feed.bucket) is feed:
            del self.feeds[feed.bucket]  # its last watcher left while it read
            return
        if feed.closing:
            for watcher in feed.watchers:
                watcher.cancel(feed.closing)

    async def _join(self, watcher: Watcher) -> None:
        """Catch the watcher up from the history to its feed, then add it to the feed (with no
        await between the last check and the joining: no event falls between)."""
        assert self.loop is not None
        while True:
            feed = self._feed(watcher)
            if watcher.position >= feed.seen or watcher.closed:
                feed.watchers.add(watcher)
                return
            after = watcher.position
            events = await self.loop.run_in_executor(self.database, _read, watcher.bucket, after)
            if not events or events[0].position != after + 1:
                watcher.reset(feed.seen)  # swept meanwhile: list again
            else:
                watcher.deliver(events, Forms(events))

    def _feed(self, watcher: Watcher) -> Feed:
        """The watcher's bucket's feed, made (starting at the watcher's position) if none."""
        assert self.loop is not None
        feed = self.feeds.get(watcher.bucket)
        if feed is None:
            feed = self.feeds[watcher.bucket] = Feed(watcher.bucket, watcher.position)
            notify.watched[watcher.bucket] = time.monotonic() + notify.WATCHED_FOR_SECONDS
            self.loop.create_task(self._announce([watcher.bucket]))
            self._refresh(feed)
        return feed

    def _leave(self, watcher: Watcher) -> None:
        feed = self.feeds.get(watcher.bucket)
        if feed is None:
            return
        feed.watchers.discard(watcher)
        if not feed.watchers and not feed.reading:
            del self.feeds[watcher.bucket]

    # Serving.

    async def serve(self, plan_text: bytes, status: int, headers: list, body: bytes, send, receive):
        """Take over a watch request the front answered in Django (api.watching)."""
        self._start()
        watcher = Watcher(json.loads(plan_text))
        del plan_text  # this frame lives as long as the stream: it keeps only what it needs
        self.serving += 1
        headers = [(n, v) for n, v in headers if n != b"content-length"]
        watcher.listen(receive)
        try:
            if watcher.format == "sse":
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body, "more_body": True})
                del headers, body  # a stream holds only what it needs (memory per watcher)
                assert self.loop is not None
                watcher.done = self.loop.create_future()
                watcher.send = send
                del send
                await self._join(watcher)  # what it catches up on is sent as it comes
                watcher.flush()
                await watcher.done
            else:
                await self._join(watcher)
                await self._long_poll(watcher, status, headers, send)
        except OSError:
            pass  # the client is gone
        finally:
            self.serving -= 1
            if watcher.listening is not None:
                watcher.listening.cancel()
            self._leave(watcher)
            self._release(watcher)

    async def _tick(self) -> None:
        """Once a second, for every watcher: a keep-alive due, a long-poll's time up, the
        credentials expired. One timer for the process, rather than one a watcher: waking
        5,000 streams for an event then costs no timer each."""
        assert self.loop is not None
        keep_alive = settings.THISDB_WATCH_KEEPALIVE_SECONDS - TICK_SECONDS  # at least every 15 s
        while True:
            await asyncio.sleep(TICK_SECONDS)
            now, clock = self.loop.time(), time.time()
            for feed in self.feeds.values():
                for watcher in feed.watchers:
                    if watcher.ends_at is not None and clock >= watcher.ends_at:
                        watcher.cancel("expired")
                    elif now >= watcher.due + (
                        watcher.wait if watcher.format == "json" else keep_alive
                    ):
                        watcher.timed_out = True
                        watcher.wake()

    async def _long_poll(self, watcher: Watcher, status: int, headers: list, send) -> None:
        while not (watcher.pending or watcher.cancelled or watcher.closed or watcher.timed_out):
            await watcher.sleep()
        if watcher.closed:
            return
        body = watching.long_poll_body(list(watcher.pending), watcher.position)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


hub = Hub()
