"""Shared fixtures: the personas alice and bob, each with an API key, a client and a bucket.

Tests run on the real PostgreSQL and Redis of DATABASE_URL / REDIS_URL (see the Makefile).
"""

import os
import re
import time
import uuid

import pytest
from allauth.account.models import EmailAddress
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.db import connection
from django.test import Client

from accounts.models import ApiKey
from api import limits, principals, redis_clients, scoping

# The browser and server fixtures of the end-to-end tests (tests/test_browser*.py).
pytest_plugins = ["tests.browser"]

# tests/cluster/ runs against the topology of `make cluster`, by `make test-cluster` alone.
collect_ignore = [] if os.environ.get("THISDB_CLUSTER_TESTS") == "true" else ["cluster"]

# Every Redis key a test run writes lives under its own prefix, removed at the end.
RUN_PREFIX = f"thisdb-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session", autouse=True)
def _redis_prefix():
    django_settings.THISDB_REDIS_PREFIX = RUN_PREFIX
    # The Django cache (web rate limits, allauth's cooldowns) under the run's prefix too, so
    # runs never see each other's counters and clearing it touches nothing else in Redis.
    caches["default"].key_prefix = RUN_PREFIX
    # Every persona has a password: hashing it the production way (PBKDF2, about 0.3 s) would
    # make the suite crawl. Servers the tests start keep the real hasher.
    django_settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    yield
    if django_settings.REDIS_URL:
        client = redis_clients.connect(django_settings.REDIS_URL)
        for name in client.scan_iter(match=f"{RUN_PREFIX}:*", count=1000):
            client.delete(name)


@pytest.fixture(autouse=True)
def _fresh_state(settings):
    """Each test starts with empty in-process caches and the per-key write limit off (the tests
    of that limit turn it on), so tests may write one key twice in a second."""
    settings.THISDB_KEY_WRITES_PER_SECOND = 0
    # The whole suite sends wrong keys from 127.0.0.1; the test of this limit sets its own rate.
    settings.THISDB_AUTH_FAILURES_RATE = "100000/m"
    principals.forget_all()
    scoping.forget_all()
    limits.reset()
    clear_cache()
    yield
    principals.forget_all()
    scoping.forget_all()
    limits.reset()


# Longer than any test that counts requests against an hourly limit takes (the longest, 1,100
# requests from 16 threads, takes a few seconds).
HOUR_MARGIN_SECONDS = 30


@pytest.fixture(autouse=True)
def _within_one_clock_hour():
    """The hourly limits count per clock hour, and a count starts again when the hour does. A
    test that counts its requests must not straddle an hour's end: one that would start in its
    last seconds waits for the next hour (at most once an hour of the run)."""
    left = limits.HOUR - time.time() % limits.HOUR
    if left < HOUR_MARGIN_SECONDS:
        time.sleep(left + 0.1)


PASSWORD = "correct horse battery staple 9"


def clear_cache() -> None:
    """Empty this run's part of the Django cache (the web pages' rate limits live there)."""
    cache = caches["default"]
    if hasattr(cache, "delete_pattern"):
        cache.delete_pattern("*")  # django-redis: only keys under this run's prefix
    else:
        cache.clear()


class Persona:
    """A user with an API key and a client that sends it, and a browser (a test client logged in
    to the web pages as them)."""

    def __init__(self, username: str):
        self.email = f"{username}@example.com"
        self.user = get_user_model().objects.create_user(username, self.email, PASSWORD)
        EmailAddress.objects.create(user=self.user, email=self.email, verified=True, primary=True)
        self.api_key, self.key = ApiKey.objects.create_key(self.user, name="test")
        self.client = Client(headers={"X-Api-Key": self.key})
        self.browser = Client()
        self.browser.force_login(self.user)

    def new_bucket(self, default_ttl: int | None = None) -> str:
        body = "" if default_ttl is None else f"default_ttl={default_ttl}"
        response = self.client.post("/v1/", body, content_type="application/x-www-form-urlencoded")
        assert response.status_code == 200, response.content
        return response.content.decode()

    def token(self, bucket: str, prefix: str, permissions: str = "read,write", ttl: int = 3600):
        response = self.client.post(
            "/v1/tokens",
            f"bucket={bucket}&prefix={prefix}&permissions={permissions}&ttl={ttl}",
            content_type="application/x-www-form-urlencoded",
        )
        assert response.status_code == 200, response.content
        return response.content.decode()

    def set(self, bucket: str, key: str, value: bytes | str, query: str = ""):
        return self.client.post(
            f"/v1/{bucket}/{key}{query}", value, content_type="application/x-www-form-urlencoded"
        )


def token_client(token: str) -> Client:
    return Client(headers={"X-Token": token})


@pytest.fixture
def alice(db):
    return Persona("alice")


@pytest.fixture
def bob(db):
    return Persona("bob")


@pytest.fixture
def staff(db):
    """A staff member (superuser) of the platform, logged in to the admin."""
    person = Persona("staff")
    person.user.is_staff = person.user.is_superuser = True
    person.user.save()
    return person


@pytest.fixture
def bucket(alice):
    """A bucket of alice's."""
    return alice.new_bucket()


def fill_keys(bucket: str, count: int) -> None:
    """`count` keys k0000000.. of one byte in one INSERT ... SELECT, then fresh planner
    statistics (a plan read from EXPLAIN must see the keys)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO api_item (bucket_id, key, value, expires_at, updated_at) "
            "SELECT %s, 'k' || lpad(i::text, 7, '0'), 'v'::bytea, NULL, now() "
            "FROM generate_series(0, %s - 1) AS i",
            [bucket, count],
        )
        cursor.execute("ANALYZE api_item")


def unversioned(items: list[dict]) -> list[dict]:
    """A listing's items without their "version", after checking that each has one: the
    digits of a positive integer, as a string (versions are tested in test_versions.py)."""
    for item in items:
        assert re.fullmatch(r"[1-9][0-9]*", item["version"]), item
    return [{k: v for k, v in item.items() if k != "version"} for item in items]
