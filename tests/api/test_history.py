"""Each bucket's history of changes (api.history), as the writes record it in api_change: positions
1, 2, 3... in commit order, a transaction's changes together in op order, and the deletes of the
sweep and of a bucket delete placed after what came before them."""

import json
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.db import transaction as db_transaction
from django.utils import timezone

from api import history, statements, writes
from api.models import Item
from api.principals import principal_for_user

JSON = "application/json"


def watched_bucket(persona) -> str:
    """A new bucket of the persona's, watched (its changes are recorded from now on)."""
    bucket = persona.new_bucket()
    assert history.start_watching(bucket) == 0
    return bucket


@pytest.fixture
def bucket(alice):
    return watched_bucket(alice)


def changes(bucket: str) -> list[tuple]:
    """The bucket's history: (position, type, key, value, version, reason) in order."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT position, deleted, key, value, version, reason FROM api_change "
            "WHERE bucket_id = %s ORDER BY position",
            [bucket],
        )
        return [
            (p, "delete" if d else "put", k, None if v is None else bytes(v), ver, r)
            for p, d, k, v, ver, r in cursor.fetchall()
        ]


def summary(bucket: str) -> list[tuple]:
    """(position, type, key, reason) of each change."""
    return [(p, kind, key, reason) for p, kind, key, _, _, reason in changes(bucket)]


def transaction(persona, bucket: str, ops: list[dict]):
    response = persona.client.post(
        f"/v1/{bucket}?format=json", json.dumps({"ops": ops}), content_type=JSON
    )
    assert response.status_code == 200, response.content
    return response.json()


def expire_now(bucket: str, *keys: str) -> None:
    """Make these keys expired a minute ago (as if their ttl ran out)."""
    past = timezone.now() - timedelta(minutes=1)
    assert Item.objects.filter(bucket_id=bucket, key__in=keys).update(expires_at=past) == len(keys)


def test_each_write_takes_the_next_position_with_its_value_and_version(alice, bucket):
    assert history.head(bucket) == 0
    set_answer = alice.set(bucket, "a", "one")
    alice.client.patch(f"/v1/{bucket}/n", "+5", content_type="text/plain")
    alice.client.patch(f"/v1/{bucket}/n", "+2", content_type="text/plain")
    alice.client.delete(f"/v1/{bucket}/a")
    alice.client.delete(f"/v1/{bucket}/never-was")  # nothing deleted: no change

    rows = changes(bucket)
    assert [(p, kind, key, value, reason) for p, kind, key, value, _, reason in rows] == [
        (1, "put", "a", b"one", ""),
        (2, "put", "n", b"5", ""),
        (3, "put", "n", b"7", ""),
        (4, "delete", "a", None, "deleted"),
    ]
    assert rows[0][4] == int(set_answer["ETag"].strip('"'))
    versions = [version for *_, version, _ in rows]
    assert versions == sorted(versions) and len(set(versions)) == 4
    assert history.head(bucket) == 4


def test_a_transactions_changes_are_consecutive_in_op_order(alice, bucket):
    alice.set(bucket, "old", "x")
    alice.set(bucket, "z", "before")
    answer = transaction(
        alice,
        bucket,
        [
            {"op": "set", "key": "z", "value": "last letter first"},
            {"op": "increment", "key": "b", "by": 3},
            {"op": "get", "key": "z"},  # a read: no change
            {"op": "delete", "key": "old"},
            {"op": "set", "key": "a", "value": "first letter last"},
            {"op": "delete", "key": "absent"},  # nothing there: no change
        ],
    )
    alice.set(bucket, "after", "y")

    assert summary(bucket) == [
        (1, "put", "old", ""),
        (2, "put", "z", ""),
        (3, "put", "z", ""),
        (4, "put", "b", ""),
        (5, "delete", "old", "deleted"),
        (6, "put", "a", ""),
        (7, "put", "after", ""),
    ]
    by_position = {p: version for p, _, _, _, version, _ in changes(bucket)}
    z, b, _, _, a, _ = answer["results"]
    assert (by_position[3], by_position[4], by_position[6]) == tuple(
        int(result["version"]) for result in (z, b, a)
    )


def test_buckets_count_their_positions_apart(alice):
    first, second = watched_bucket(alice), watched_bucket(alice)
    for i in range(3):
        alice.set(first, f"k{i}", "v")
        alice.set(second, f"k{i}", "v")
    assert [p for p, *_ in changes(first)] == [p for p, *_ in changes(second)] == [1, 2, 3]


def test_the_sweep_records_each_expired_key_as_expired_after_what_came_before(alice, bucket):
    alice.set(bucket, "live", "v")
    alice.set(bucket, "b-gone", "v", "?ttl=60")
    alice.set(bucket, "a-gone", "v", "?ttl=60")
    other = watched_bucket(alice)
    alice.set(other, "gone-too", "v", "?ttl=60")
    expire_now(bucket, "a-gone", "b-gone")
    expire_now(other, "gone-too")

    assert statements.sweep_expired_items(timezone.now(), rest=0) == 3

    assert summary(bucket) == [
        (1, "put", "live", ""),
        (2, "put", "b-gone", ""),
        (3, "put", "a-gone", ""),
        (4, "delete", "a-gone", "expired"),  # in key order
        (5, "delete", "b-gone", "expired"),
    ]
    assert summary(other) == [(1, "put", "gone-too", ""), (2, "delete", "gone-too", "expired")]
    alice.set(bucket, "later", "v")
    assert summary(bucket)[-1] == (6, "put", "later", "")


def test_deleting_an_expired_key_records_it_as_expired(alice, bucket):
    alice.set(bucket, "k", "v", "?ttl=60")
    alice.set(bucket, "t", "v", "?ttl=60")
    expire_now(bucket, "k", "t")
    alice.client.delete(f"/v1/{bucket}/k")
    transaction(alice, bucket, [{"op": "delete", "key": "t"}])
    assert summary(bucket)[2:] == [(3, "delete", "k", "expired"), (4, "delete", "t", "expired")]


def test_a_bucket_delete_records_bucket_deleted_for_each_live_key(alice, bucket):
    alice.set(bucket, "b", "v")
    alice.set(bucket, "a", "v")
    alice.set(bucket, "c", "v")
    alice.client.delete(f"/v1/{bucket}/c")
    alice.set(bucket, "old", "v", "?ttl=60")
    expire_now(bucket, "old")  # expired already: nothing a watcher still sees

    writes.delete_bucket(principal_for_user(alice.user.pk), bucket)

    assert summary(bucket)[5:] == [
        (6, "delete", "a", "bucket_deleted"),
        (7, "delete", "b", "bucket_deleted"),
    ]
    assert history.head(bucket) == 7


def test_the_history_sweep_removes_old_changes_and_a_watcher_behind_them_is_reset(
    alice, bucket, settings
):
    for i in range(5):
        alice.set(bucket, f"k{i}", "v")
    # Nothing is old yet.
    assert history.sweep(timezone.now()) == 0
    since_two = alice.client.get(f"/v1/{bucket}?watch=true&format=json&since=2&wait=0")
    assert [e["id"] for e in since_two.json()["events"]] == ["3", "4", "5"]
    assert since_two.json()["next"] == "5"

    later = timezone.now() + timedelta(seconds=settings.THISDB_WATCH_HISTORY + 60)
    assert history.sweep(later, batch=2) == 5  # in batches of 2

    assert changes(bucket) == []
    assert history.head(bucket) == 5  # positions go on from there
    response = alice.client.get(f"/v1/{bucket}?watch=true&format=json&since=2&wait=0")
    assert response.status_code == 200
    assert response.json() == {
        "events": [{"id": "5", "type": "reset", "reason": "history"}],
        "next": "5",
    }
    # At the head nothing was missed: no reset, and the next change follows.
    alice.set(bucket, "k5", "v")
    response = alice.client.get(f"/v1/{bucket}?watch=true&format=json&since=5&wait=1")
    assert [(e["id"], e["type"], e["key"]) for e in response.json()["events"]] == [
        ("6", "put", "k5")
    ]


def test_the_history_sweep_removes_a_deleted_buckets_head_once_its_changes_are_gone(
    alice, bucket, settings
):
    alice.set(bucket, "k", "v")
    writes.delete_bucket(principal_for_user(alice.user.pk), bucket)
    history.sweep(timezone.now())
    assert history.head(bucket) == 2  # its last changes are still there to be read
    history.sweep(timezone.now() + timedelta(seconds=settings.THISDB_WATCH_HISTORY + 60))
    assert history.head(bucket) == 0


def test_an_unwatched_bucket_records_nothing_and_a_lapsed_watch_skips_a_position(alice, settings):
    """Changes are recorded only while a bucket is watched, and THISDB_WATCH_HISTORY after its
    last watch: unwatched, a write costs no history. A watch that starts after recording had
    stopped skips a position, so a watcher from before is told to list again."""
    bucket = alice.new_bucket()
    alice.set(bucket, "before", "v")
    assert changes(bucket) == [] and history.head(bucket) == 0
    assert history.start_watching(bucket) == 0
    alice.set(bucket, "after", "v")
    assert summary(bucket) == [(1, "put", "after", "")]
    assert history.start_watching(bucket) == 1  # still watched: no skip
    with connection.cursor() as cursor:  # an hour and more without a watch
        cursor.execute(
            "UPDATE api_changehead SET watched_until = now() - interval '1 second' "
            "WHERE bucket_id = %s",
            [bucket],
        )
    alice.set(bucket, "unrecorded", "v")
    assert summary(bucket) == [(1, "put", "after", "")]
    assert history.start_watching(bucket) == 2  # position 2 has no change: 1 cannot go on
    response = alice.client.get(f"/v1/{bucket}?watch=true&format=json&since=1&wait=0")
    assert response.json() == {
        "events": [{"id": "2", "type": "reset", "reason": "history"}],
        "next": "2",
    }


def waiting_on_the_bucket_lock() -> int:
    """How many backends wait for a bucket lock (an advisory lock not granted)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["set", "increment", "delete", "import"])
def test_a_write_that_waited_for_a_starting_watch_is_recorded_after_its_position(alice, kind):
    """A write that began while a watch was starting on a bucket nobody watched (its statement's
    snapshot from before the watch began) waits for the watch's lock, then commits after the
    watch's first position: it must be recorded there, or that watch never hears of it."""
    bucket = alice.new_bucket()
    statements.set_value(bucket, "k", b"1", 0)  # before any watch: not recorded
    done: list = []

    def write() -> None:
        try:
            if kind == "set":
                statements.set_value(bucket, "k", b"2", 0)
            elif kind == "increment":
                statements.increment(bucket, "k", 1, 0)
            elif kind == "import":
                statements.import_rows(bucket, ["k"], [b"2"], [0])
            else:
                statements.delete_key(bucket, "k")
            done.append(kind)
        except BaseException as exc:  # reported by the assertion below
            done.append(exc)
        finally:
            connection.close()

    writer = threading.Thread(target=write)
    with db_transaction.atomic():  # the watch's lock, held until it commits
        start = history.start_watching(bucket)
        writer.start()
        deadline = time.monotonic() + 10
        while not waiting_on_the_bucket_lock():  # the writer's statement has begun, and waits
            assert time.monotonic() < deadline, "the write never waited for the watch"
            time.sleep(0.01)
    writer.join(10)
    assert done == [kind]
    recorded = summary(bucket)
    assert [(kind_, key) for _, kind_, key, _ in recorded] == [
        ("delete" if kind == "delete" else "put", "k")
    ]
    assert recorded[0][0] == start + 1
