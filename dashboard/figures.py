"""How many keys a bucket holds and how many bytes, as the pages show them.

Beat recounts every bucket once a minute (api.rollups.refresh_stored_figures), for the quotas; a
page that showed only those figures would say "0 keys" above the keys just written. So a bucket's
own page counts its live keys now, exactly, up to COUNT_CAP keys; past that it shows beat's
figure as "about N" with the time beat counted it. Pages that list many buckets show beat's
figures with that time.
"""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Sum
from django.db.models.functions import Coalesce, Length
from django.utils import timezone

from api.models import Bucket, Item
from console.models import TaskHeartbeat
from thisdb_site.routers import replica_reads

# Keys a bucket's page counts exactly: one range scan of the bucket's index and up to this many
# rows, about 3 ms on PostgreSQL (tests/dashboard/test_figures.py checks that even the generic
# plan reads that range, never the table).
COUNT_CAP = 10_000
REFRESH_TASK = "api.tasks.refresh_stored_figures"


@dataclass(frozen=True)
class Figures:
    keys: int | None  # None: not known (over the cap and not yet counted by beat)
    stored_bytes: int | None
    exact: bool  # counted now; else beat's figures of `as_of`
    as_of: datetime | None  # when beat counted them (None: not yet)

    @property
    def over_cap(self) -> bool:
        return not self.exact


def counted_at() -> datetime | None:
    """When beat last recounted every bucket (the worker's record of the task), or None."""
    return (
        TaskHeartbeat.objects.filter(task=REFRESH_TASK, event=TaskHeartbeat.FINISHED)
        .values_list("at", flat=True)
        .first()
    )


def beat_figures(bucket: Bucket, as_of: datetime | None) -> Figures:
    """Beat's figures of the bucket, if beat has counted it since it was created."""
    if as_of is None or bucket.created_at > as_of:
        return Figures(None, None, exact=False, as_of=None)
    return Figures(bucket.key_count, bucket.stored_bytes, exact=False, as_of=as_of)


@replica_reads()  # up to COUNT_CAP rows counted: the replica's, if there is one
def for_bucket(bucket: Bucket) -> Figures:
    """The bucket's live keys and bytes counted now, or beat's past COUNT_CAP keys. Bytes are
    counted as the quota counts them: the key's characters and the value's bytes."""
    live = Item.objects.filter(bucket=bucket).exclude(expires_at__lte=timezone.now())
    # One statement over at most COUNT_CAP + 1 rows: the slice becomes a subquery's LIMIT. In
    # key order, so that even the generic plan of a prepared statement (which does not know how
    # many rows the bucket has) walks the (bucket, key) index rather than the table: without the
    # order, a small bucket beside a large one took 70 ms instead of 3.
    counted = (
        live.order_by("key")
        .values("key", "value")[: COUNT_CAP + 1]
        .aggregate(keys=Count("*"), size=Coalesce(Sum(Length("key") + Length("value")), 0))
    )
    if counted["keys"] <= COUNT_CAP:
        return Figures(counted["keys"], counted["size"], exact=True, as_of=timezone.now())
    figures = beat_figures(bucket, counted_at())
    if figures.keys is not None and figures.keys <= COUNT_CAP:
        # Beat's figure is older than keys written since: it would understate.
        return Figures(None, None, exact=False, as_of=None)
    return figures
