"""GET /v1/<bucket>?watch=true: a watch opens here, in Django, and streams in api.watchhub.

Django does what any request does (authenticate, scope to the caller's bucket and token, count
one request) and what opening a watch needs once (the position to start from, a reset or a
snapshot, a slot of the account's open watches), then answers with the plan of the stream in a
header for the front (thisdb_site.front), which takes the connection over: the stream then lives
on the front's event loop, holding no thread and no database connection while it waits.

Under a server without the front (`manage.py runserver`, the test client, gunicorn) a watch is
answered here, holding a thread: the changes within `wait` seconds, then the answer ends (a stream
is then opened again by its client).
"""

import json
import time
import uuid

from django.conf import settings
from django.utils import timezone

from api import history, inputs, limits
from api.errors import BadRequest, Forbidden, TooManyRequests
from api.principals import Principal
from api.renderers import Prepared
from api.scoping import BucketInfo
from api.statements import prefix_range

PLAN_HEADER = "X-Thisdb-Watch"  # the front takes it out before the answer leaves
FRONT = "thisdb.front"  # in the WSGI environ when the front serves the request
MAX_WAIT = 60  # seconds a long-poll may wait (proxies often close idle requests at 60 s)
DEFAULT_WAIT = 30
POLL_SECONDS = 0.5  # a long-poll without the front reads the history this often
RETRY_MS = 1000  # what an EventSource waits before it reconnects


def position(text: str, name: str) -> int:
    return inputs.whole_number(text, name, low=0, high=inputs.INT64_MAX)


def open_watch(request, principal: Principal, bucket: BucketInfo, count_request) -> Prepared:
    """The answer to a watch request of `principal` on `bucket` (already scoped to it)."""
    params = request.query_params
    # format=json: a long-poll; anything else (format=sse, or none): a stream of events.
    fmt = "json" if params.get("format") == "json" else "sse"
    prefix = _watched_prefix(principal, inputs.check_prefix(inputs.query_field(request, "prefix")))
    since_text = params.get("since") or request.META.get("HTTP_LAST_EVENT_ID", "").strip()
    since = position(since_text, "since") if since_text else None
    snapshot = inputs.boolean(params.get("snapshot"), "snapshot")
    wait = inputs.whole_number(params.get("wait", str(DEFAULT_WAIT)), "wait", low=0, high=MAX_WAIT)
    count_request()
    stream = uuid.uuid4().hex
    taken = limits.open_watch(principal.user_id, stream, principal.quotas.max_watches)
    if taken is False:
        raise TooManyRequests(
            f"too many open watches: your plan allows {principal.quotas.max_watches} at once "
            "(streams and long-polls); close one to open another",
            retry_after=5,
            reason="open_watches",
        )
    try:
        return _answer(request, principal, bucket, fmt, prefix, since, snapshot, wait, stream)
    except BaseException:
        limits.close_watch(principal.user_id, stream)
        raise


def _answer(request, principal, bucket, fmt, prefix, since, snapshot, wait, stream):
    opening: list[dict] = []  # events sent before the live ones: a reset or a snapshot
    # The bucket's changes are recorded from now on (if they were not already): the watch's
    # start and every later change are in its history.
    current = history.start_watching(bucket.id)
    if snapshot:
        taken = _snapshot(bucket.id, prefix)
        start = taken[0]
        opening.extend({"id": None, "type": "put", **e.data(timezone.now())} for e in taken[1])
        if opening:
            opening[-1]["id"] = str(start)  # resuming mid-snapshot starts it again
    else:
        start = current
        if since is not None and since != start and not _kept(bucket.id, since, start):
            opening.append({"id": str(start), "type": "reset", "reason": "history"})
        elif since is not None:
            start = since
    if fmt == "json" and not opening:
        # A long-poll whose changes are there already is answered now, without waiting.
        events = history.read_after(bucket.id, start)
        if events:
            now = timezone.now()
            opening = [json_event(e, now) for e in events if matches(e.key, prefix)]
            start = events[-1].position
    if fmt == "json" and (opening or wait == 0):
        limits.close_watch(principal.user_id, stream)
        return _long_poll_answer(opening, start)
    plan = {
        "stream": stream,
        "user": principal.user_id,
        "bucket": bucket.id,
        "prefix": prefix,
        "position": start,
        "format": fmt,
        "wait": wait,
        "blocks": list(principal.block_names),
        "ends_at": _ends_at(principal),
    }
    if FRONT not in request.META:
        return _without_front(principal, plan, opening)
    if fmt == "sse":
        response = Prepared(sse_opening(start, opening), "text/event-stream")
        response["Cache-Control"] = "no-store"
        response["X-Accel-Buffering"] = "no"  # nginx: pass the stream on as it comes
    else:
        response = Prepared(b"", "application/json")
    response[PLAN_HEADER] = json.dumps(plan)
    return response


def _watched_prefix(principal: Principal, prefix: str) -> str:
    """A token watches only inside its prefix (by default, its whole prefix), with read
    permission."""
    token = principal.token
    if token is None:
        return prefix
    if not token.can_read:
        raise Forbidden("this token has no read permission")
    if not prefix:
        return token.prefix
    if not prefix.startswith(token.prefix):
        raise Forbidden(f"this token only covers keys starting with {token.prefix!r}")
    return prefix


def _kept(bucket_id: str, since: int, head: int) -> bool:
    """Whether the history still holds every change after `since` (else: reset)."""
    if since > head:
        return False  # not a position of this bucket's
    first = history.read_after(bucket_id, since, limit=1)
    return bool(first) and first[0].position == since + 1


def _snapshot(bucket_id: str, prefix: str):
    cap = settings.THISDB_WATCH_SNAPSHOT_MAX
    with history.one_snapshot():
        head = history.head(bucket_id)
        rows = history.live_items(bucket_id, *prefix_range(prefix), cap + 1)
    if len(rows) > cap:
        raise BadRequest(
            f"a snapshot sends at most {cap} keys and this prefix holds more: list the keys "
            "with GET /v1/<bucket>?values=true (cursor pages), then watch with since="
        )
    events = [
        history.Event(head, False, key, value, version, expires_at, "")
        for key, value, version, expires_at in rows
    ]
    return head, events


def _ends_at(principal: Principal) -> float | None:
    """When the credentials of the stream expire (the stream then ends: cancel, expired)."""
    ends = [principal.key_expires_at]
    if principal.token is not None:
        ends.append(principal.token.expires_at)
    times = [moment.timestamp() for moment in ends if moment is not None]
    return min(times) if times else None


# The forms of events on the wire.


def sse_event(event: history.Event, now) -> bytes:
    data = json.dumps(event.data(now), ensure_ascii=False, separators=(", ", ": "))
    return f"id: {event.position}\nevent: {event.kind}\ndata: {data}\n\n".encode()


def sse_opening(start: int, opening: list[dict]) -> bytes:
    """The stream's first bytes: its position (an id without data sets an EventSource's last
    event id and dispatches nothing), how soon to reconnect, then any reset or snapshot."""
    parts = [f": watching\nid: {start}\nretry: {RETRY_MS}\n\n"]
    for event in opening:
        fields = {k: v for k, v in event.items() if k not in ("id", "type")}
        lines = f"id: {event['id']}\n" if event["id"] is not None else ""
        data = json.dumps(fields, ensure_ascii=False, separators=(", ", ": "))
        parts.append(f"{lines}event: {event['type']}\ndata: {data}\n\n")
    return "".join(parts).encode()


def sse_cancel(reason: str) -> bytes:
    return f'event: cancel\ndata: {{"reason": "{reason}"}}\n\n'.encode()


KEEP_ALIVE = b": keep-alive\n\n"


def json_event(event: history.Event, now) -> dict:
    return {"id": str(event.position), "type": event.kind, **event.data(now)}


def long_poll_body(events: list[dict], next_position: int) -> bytes:
    return json.dumps({"events": events, "next": str(next_position)}, ensure_ascii=False).encode()


def _long_poll_answer(events: list[dict], next_position: int) -> Prepared:
    response = Prepared(long_poll_body(events, next_position), "application/json")
    response["Cache-Control"] = "no-store"
    return response


def matches(key: str, prefix: str) -> bool:
    return key.startswith(prefix)


def _without_front(principal: Principal, plan: dict, opening: list[dict]) -> Prepared:
    """Without the front, a watch is answered in this thread: the changes that come within
    `wait` seconds (the history read every POLL_SECONDS), then the answer ends. A stream that
    ends is opened again by an EventSource (and the Python client) from its last id: streams
    work everywhere, while only the front holds them open without a thread."""
    try:
        deadline = time.monotonic() + plan["wait"]
        after = plan["position"]
        found: list[history.Event] = []
        if opening:  # a reset or a snapshot to tell: now, without waiting
            deadline = 0.0
        while not found:
            events = history.read_after(plan["bucket"], after)
            if events:
                after = events[-1].position
                found = [e for e in events if matches(e.key, plan["prefix"])]
                continue
            if time.monotonic() >= deadline:
                break
            time.sleep(POLL_SECONDS)
        now = timezone.now()
        if plan["format"] == "json":
            return _long_poll_answer([json_event(e, now) for e in found], after)
        body = sse_opening(plan["position"], opening) + b"".join(sse_event(e, now) for e in found)
        if not found and after != plan["position"]:
            body += f"id: {after}\n\n".encode()  # changes outside the prefix: past them
        response = Prepared(body, "text/event-stream")
        response["Cache-Control"] = "no-store"
        return response
    finally:
        limits.close_watch(principal.user_id, plan["stream"])
