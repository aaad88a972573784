"""A bucket's keys a page at a time, forward and back, numbered as the person pages.

Forward is the API's own list (api.statements.list_page) after the last key seen: its cursor.
The API has no way back, so Previous is the mirror image here: the PAGE_SIZE keys before the
page's first key, one range scan of the same (bucket, key) index read backwards. Links carry
both ends as cursors and the page's first position (n), so the URL stays small however deep
the person pages. Positions count the pages walked: keys written or deleted meanwhile can shift
them, as they shift the pages themselves.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from api import statements
from api.models import Item

PAGE_SIZE = 50  # keys a bucket page shows


@dataclass(frozen=True)
class KeyPage:
    rows: list[tuple[str, bytes, datetime | None]]  # key, value, expires at (None: never)
    first: int | None  # position of the first row, from 1; None when not known
    earlier: bool  # keys before this page
    later: bool  # keys after it

    @property
    def last(self) -> int | None:
        return None if self.first is None else self.first + len(self.rows) - 1


def forward(bucket_id: str, prefix: str, after: str | None, first: int | None) -> KeyPage:
    """The page of keys after `after` (None: the first page)."""
    rows = statements.list_page(
        bucket_id, prefix=prefix, after=after, limit=PAGE_SIZE + 1, with_values=True
    )
    now = timezone.now()
    page = [
        (key, bytes(value), None if ttl == 0 else now + timedelta(seconds=ttl))
        for key, value, ttl, _version in rows[:PAGE_SIZE]
    ]
    return KeyPage(
        page,
        first=1 if after is None else first,
        earlier=after is not None,
        later=len(rows) > PAGE_SIZE,
    )


def backward(bucket_id: str, prefix: str, before: str, first: int | None) -> KeyPage:
    """The page of keys before `before`; the first page when fewer than a page are left."""
    live = Item.objects.filter(bucket_id=bucket_id, key__lt=before).exclude(
        expires_at__lte=timezone.now()
    )
    if prefix:
        live = live.filter(key__gte=prefix)
        upper = statements.prefix_upper_bound(prefix)
        if upper is not None:
            live = live.filter(key__lt=upper)
    # Byte order both ways: the key column's collation is "C" (api.models.ByteOrderTextField).
    rows = list(live.order_by("-key").values_list("key", "value", "expires_at")[: PAGE_SIZE + 1])
    if len(rows) <= PAGE_SIZE:
        return forward(bucket_id, prefix, None, 1)
    page = [(key, bytes(value), expires) for key, value, expires in reversed(rows[:PAGE_SIZE])]
    return KeyPage(page, first=first, earlier=True, later=True)
