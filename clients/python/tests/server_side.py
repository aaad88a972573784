"""The platform's side of the online tests: run by its `manage.py shell -c` (live_platform.py
starts it), never imported. Tests make and read rows here with the platform's own models, as
the server's tests do: users and keys, rows the API cannot make (thousands of keys at once, a
quota, the counts beat keeps) and what the API does not show (a token's row, expiry times).

It reads one request a line on stdin, {"do": NAME, ...arguments}, and answers each with one
line of JSON on stdout, until stdin is closed. Values travel in base64, times as Unix time.
"""

import base64
import json
import sys
import uuid
from datetime import UTC, datetime

import redis
from django.conf import settings
from django.contrib.auth import get_user_model

from accounts.models import Account, ApiKey
from api.models import Bucket, Item, Token


def persona(name):
    """A new user (its name made unique) with an API key."""
    user = get_user_model().objects.create_user(f"{name}-{uuid.uuid4().hex[:12]}")
    _, key = ApiKey.objects.create_key(user, name="test")
    return {"name": name, "username": user.username, "key": key}


def set_requests_per_hour(username, count):
    Account.objects.filter(user__username=username).update(requests_per_hour=count)


def new_bucket(owner, default_ttl=None):
    extra = {} if default_ttl is None else {"default_ttl": default_ttl}
    owner = get_user_model().objects.get(username=owner)
    return Bucket.objects.create(owner=owner, **extra).pk


def buckets(owner):
    """The user's buckets: id -> default ttl."""
    return dict(Bucket.objects.filter(owner__username=owner).values_list("pk", "default_ttl"))


def bucket(pk):
    found = Bucket.objects.filter(pk=pk).values("owner__username", "default_ttl").first()
    return found and {"owner": found["owner__username"], "default_ttl": found["default_ttl"]}


def set_usage(bucket, keys, stored_bytes):
    """The counts beat keeps of a bucket's keys and bytes."""
    Bucket.objects.filter(pk=bucket).update(key_count=keys, stored_bytes=stored_bytes)


def put_items(bucket, items):
    """Keys written in one statement: [key, value, expires_at or None] each."""
    Item.objects.bulk_create(
        Item(bucket_id=bucket, key=key, value=base64.b64decode(value), expires_at=_time(expires))
        for key, value, expires in items
    )


def items(bucket):
    """A bucket's keys: key -> [value, expires_at or None]."""
    rows = Item.objects.filter(bucket_id=bucket).values_list("key", "value", "expires_at")
    return {
        key: [base64.b64encode(bytes(value)).decode(), _unix(expires)]
        for key, value, expires in rows
    }


def tokens(bucket):
    rows = Token.objects.filter(bucket_id=bucket).values(
        "prefix", "can_read", "can_write", "expires_at"
    )
    return [{**row, "expires_at": _unix(row["expires_at"])} for row in rows]


def forget_redis_keys():
    """Remove what this platform wrote to Redis: every key under its own prefix."""
    if settings.REDIS_URL:
        client = redis.Redis.from_url(settings.REDIS_URL)
        for name in client.scan_iter(match=f"{settings.THISDB_REDIS_PREFIX}:*", count=1000):
            client.delete(name)


def _time(unix):
    return None if unix is None else datetime.fromtimestamp(unix, UTC)


def _unix(moment):
    return None if moment is None else moment.timestamp()


REQUESTS = {
    f.__name__: f
    for f in (
        persona,
        set_requests_per_hour,
        new_bucket,
        buckets,
        bucket,
        set_usage,
        put_items,
        items,
        tokens,
        forget_redis_keys,
    )
}

for line in sys.stdin:
    request = json.loads(line)
    print(json.dumps(REQUESTS[request.pop("do")](**request)), flush=True)
