"""Export: every live key of a bucket (under a prefix) in one NDJSON answer, from one snapshot.

GET /v1/<bucket>?format=ndjson&values=true&all=true. The lines are the listing's NDJSON lines
with values, byte for byte (the same renderer), in key order. They are read in keyset batches
(one index range scan each, as the listing's pages) inside one REPEATABLE READ, READ ONLY
transaction: every batch sees the bucket as it was when the export began, whatever is written
meanwhile, and memory holds one batch whatever the bucket's size. The transaction lives as long
as the answer: the front (thisdb_site.front) sends each batch before the next is read, in a
thread of its bulk pool, and closing the answer ends it.

An expired key is not exported; expiry is judged as each batch is read, so a key that expires
during the export may be left out (and its ttl is what it had left when read).
"""

from collections.abc import Generator
from typing import cast

from django.db import connection, transaction

from api import statements
from api.renderers import KeyList, NDJSONRenderer

BATCH_KEYS = 2000  # keys a read and a chunk of the answer: about 200 KB at 100 bytes a line
KEYS_PER_REQUEST = 1000  # an export counts one request per 1,000 keys (at least one)
_PG = connection.vendor == "postgresql"
_NDJSON = NDJSONRenderer()


def cost(keys: int) -> int:
    """The requests an export of `keys` keys counts."""
    return max(1, -(-keys // KEYS_PER_REQUEST))


def open_export(bucket_id: str, prefix: str, after: str | None) -> tuple[int, Generator[bytes]]:
    """The number of live keys the export holds and its NDJSON chunks. The snapshot is open
    from here until the chunks are exhausted or closed: close them if they are not sent."""
    chunks = _snapshot(bucket_id, prefix, after)
    keys = cast(int, next(chunks))
    return keys, cast(Generator[bytes], chunks)


def _snapshot(bucket_id: str, prefix: str, after: str | None) -> Generator[int | bytes]:
    """First the count of live keys, then their lines a batch at a time, all in one
    transaction (the `with` ends it however the generator ends: exhausted, closed, failed)."""
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if _PG and outermost:
            # Must be the transaction's first statement. (Inside an outer transaction, a
            # test's, the export reads that transaction's view.) SQLite's reads in one
            # transaction see one snapshot already (WAL: writers go on meanwhile).
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield statements.count_live(bucket_id, prefix=prefix, after=after)
        while True:
            rows = statements.list_page(
                bucket_id, prefix=prefix, after=after, limit=BATCH_KEYS, with_values=True
            )
            if rows:
                yield _NDJSON.render(KeyList(rows, True, None))
            if len(rows) < BATCH_KEYS:
                return
            after = rows[-1][0]
