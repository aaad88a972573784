"""The values the client returns: a listed item or bucket, a page of a listing, the result of
one operation of a transaction, the events of a watch, the rate-limit figures."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import ClassVar


@dataclass(frozen=True)
class Item:
    """One key of a listing. `value` is None when the listing was made without values.

    `ttl` is the key's remaining time to live in seconds (0: never expires), which JSON
    listings made with values carry (this platform reports it); it is None in listings without
    values, and from servers that speak only the published v1 API, which do not report it.

    `version` is the key's version (a whole number as a string) for the conditional writes
    and transaction checks; None from servers without versions.
    """

    key: str
    value: bytes | None = None
    ttl: int | None = None
    version: str | None = None


@dataclass(frozen=True)
class KeyPage:
    """One page of a bucket's keys; pass `next_cursor` back for the next page (None: the last)."""

    items: list[Item] = field(default_factory=list)
    next_cursor: str | None = None

    def __iter__(self) -> Iterator[Item]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def keys(self) -> list[str]:
        return [item.key for item in self.items]


@dataclass(frozen=True)
class BucketInfo:
    """One bucket of the account: its id, default ttl in seconds (0: keys never expire), and
    how many keys and stored bytes it holds (as the server last counted them, which may lag)."""

    bucket: str
    default_ttl: int
    keys: int
    bytes: int


@dataclass(frozen=True)
class BucketPage:
    """One page of the account's buckets in id order; pass `next_cursor` back for the next
    page (None: the last)."""

    items: list[BucketInfo] = field(default_factory=list)
    next_cursor: str | None = None

    def __iter__(self) -> Iterator[BucketInfo]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def buckets(self) -> list[str]:
        return [item.bucket for item in self.items]


@dataclass(frozen=True)
class OpResult:
    """The result of one operation of a committed transaction, in the order they were added.

    - set: `key`, `version` (the new one)
    - increment: `key`, `value` (the new number, an int), `version`
    - delete: `key`, `deleted` (True, or False when there was no such key)
    - get: `key`, `value` (the stored bytes, or None when there is no such key), `version`
      (None when there is no such key)
    - count: `prefix`, `count`
    - delete_prefix: `prefix`, `deleted` (how many keys, an int)
    """

    op: str
    key: str | None = None
    prefix: str | None = None
    value: bytes | int | None = None
    version: str | None = None
    deleted: bool | int | None = None
    count: int | None = None


@dataclass(frozen=True)
class RateLimit:
    """The X-RateLimit-* figures of an answer: the hourly limit of the API key, the requests
    left this hour, and when the count starts again (Unix time, seconds)."""

    limit: int
    remaining: int
    reset: int

    @property
    def reset_at(self) -> datetime:
        return datetime.fromtimestamp(self.reset, tz=UTC)


# --- the events of a watch (Client.watch, Client.changes) -----------------------------------
#
# `position` is where the event stands in the bucket's history: a whole number the API writes
# as a string, which only grows. Pass one back as `since=` to go on after that event.


@dataclass(frozen=True)
class Put:
    """A key was written (set, increment, or a transaction's set or increment), or, in a
    snapshot, a key as it is now.

    `value` is the stored bytes, `version` the key's new version, `ttl` the seconds it has
    left (0: never expires). `position` is None for the keys of a snapshot but its last one
    (the server gives the position once the whole snapshot is sent)."""

    position: str | None
    key: str
    value: bytes
    version: str
    ttl: int
    type: ClassVar[str] = "put"


@dataclass(frozen=True)
class Delete:
    """A key went away; `reason` says how: "deleted", "expired" or "bucket_deleted"."""

    position: str
    key: str
    version: str
    reason: str
    type: ClassVar[str] = "delete"


@dataclass(frozen=True)
class Reset:
    """What you know of the keys may be out of date: list them again (or, in a snapshot
    watch, take the snapshot that follows), then follow the events after this one.

    `reason` "history": the position asked for is older than the history the server keeps (the
    changes in between are lost); `position` is now. "snapshot" (made by the client, with
    `position` None): the connection dropped during a snapshot, which starts again from the
    first key: forget the keys of the one cut off."""

    position: str | None
    reason: str
    type: ClassVar[str] = "reset"


Event = Put | Delete | Reset


@dataclass(frozen=True)
class Changes:
    """What one long-poll (Client.changes) gave: the events after `since`, and `next`, the
    position to ask from next time (the last event's, or `since` again when none came)."""

    events: list[Event] = field(default_factory=list)
    next: str | None = None

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)
