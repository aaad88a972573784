"""The values the client returns: a listed item or bucket, a page of a listing, the result of
one operation of a transaction, the rate-limit figures."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime


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
