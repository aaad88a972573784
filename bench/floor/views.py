"""The floor: what a request of the API must do and nothing more, one pipelined Redis round trip
(an INCR of a counter and a SET NX of a marker, as the rate limits do) and one SQL statement (a
primary-key read, an upsert, an increment, a page of keys), on the same server, database and
Redis as the product (see bench/README.md)."""

import time

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpResponse
from django.utils import timezone

client = redis.Redis.from_url(settings.REDIS_URL)
PREFIX = f"{settings.THISDB_REDIS_PREFIX}:floor"

GET = "SELECT value FROM api_item WHERE bucket_id = %s AND key = %s"
SET = (
    "INSERT INTO api_item (bucket_id, key, value, expires_at, updated_at) "
    "VALUES (%s, %s, %s, NULL, %s) ON CONFLICT (bucket_id, key) DO UPDATE "
    "SET value = excluded.value, expires_at = excluded.expires_at, updated_at = excluded.updated_at"
)
INCREMENT = (
    "INSERT INTO api_item AS item (bucket_id, key, value, expires_at, updated_at) "
    "VALUES (%s, %s, convert_to(CAST(%s AS bigint)::text, 'UTF8'), NULL, %s) "
    "ON CONFLICT (bucket_id, key) DO UPDATE SET value = convert_to(("
    "convert_from(item.value, 'UTF8')::bigint + CAST(%s AS bigint))::text, 'UTF8'), "
    "updated_at = excluded.updated_at RETURNING convert_from(value, 'UTF8')::bigint"
)
LIST = "SELECT key, value FROM api_item WHERE bucket_id = %s ORDER BY key LIMIT %s"


def redis_trip(bucket: str, key: str) -> None:
    pipe = client.pipeline(transaction=False)
    pipe.incr(f"{PREFIX}:rq:{int(time.time()) // 3600}")
    pipe.set(f"{PREFIX}:w:{bucket}:{key}", "1", nx=True, px=1000)
    pipe.execute()


def text(body: bytes, status: int = 200) -> HttpResponse:
    return HttpResponse(body, status=status, content_type="text/plain; charset=utf-8")


def item(request, bucket: str, key: str):
    redis_trip(bucket, key)
    with connection.cursor() as cursor:
        if request.method == "GET":
            cursor.execute(GET, [bucket, key])
            row = cursor.fetchone()
            return text(bytes(row[0])) if row else text(b"key not found", 404)
        if request.method == "POST":
            cursor.execute(SET, [bucket, key, request.body, timezone.now()])
            return text(b"OK")
        delta = int(request.body)
        cursor.execute(INCREMENT, [bucket, key, delta, timezone.now(), delta])
        return text(str(cursor.fetchone()[0]).encode())


def listing(request, bucket: str):
    redis_trip(bucket, "")
    limit = int(request.GET.get("limit", "1000"))
    with connection.cursor() as cursor:
        cursor.execute(LIST, [bucket, limit + 1])
        rows = cursor.fetchall()[:limit]
    return text(b"\n".join(key.encode() + b"\t" + bytes(value) for key, value in rows))
