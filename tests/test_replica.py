"""DATABASE_REPLICA_URL: the production web tier on a private primary and its streaming standby
(tests.private_postgres), each logging every statement it runs to its own log. The API's
requests, reads included, run on the primary only; the pages' heavy reads (the usage charts,
the staff overview's figures, a bucket's counts) run on the replica, and nothing the pages
write goes there (a standby would refuse it)."""

import pytest

from tests.conftest import RUN_PREFIX
from tests.private_postgres import PrivatePostgres
from tests.serving import request, served
from tests.test_outage import manage

# A staff member's session, made as the login makes it, printed for the test's cookie.
SESSION = """
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore
person = get_user_model().objects.get(username="alice")
person.is_staff = person.is_superuser = True
person.save()
session = SessionStore()
session[SESSION_KEY] = str(person.pk)
session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
session[HASH_SESSION_KEY] = person.get_session_auth_hash()
session.create()
print(session.session_key)
"""

# Every statement a server runs, in its log (and nothing else but start-up lines).
LOG_STATEMENTS = ("log_statement=all", "log_min_messages=warning")


@pytest.fixture
def pair():
    primary = PrivatePostgres(*LOG_STATEMENTS)
    standby = None
    try:
        primary.start()
        with primary.connect("postgres") as conn:
            conn.execute("CREATE DATABASE thisdb")
        standby = PrivatePostgres(*LOG_STATEMENTS, standby_of=primary)
        standby.start()
        primary.wait_for_standby()
        yield primary, standby
    finally:
        for server in (standby, primary):
            if server is not None:
                server.remove()


class Statements:
    """The statements a server logs from here on."""

    def __init__(self, server: PrivatePostgres):
        self.log = server.log
        self.start = self.log.stat().st_size

    def since(self) -> list[str]:
        text = self.log.read_bytes()[self.start :].decode(errors="replace")
        return [line for line in text.splitlines() if "statement:" in line or "execute" in line]


def test_api_requests_stay_on_the_primary_and_the_pages_heavy_reads_go_to_the_replica(
    pair, tmp_path
):
    primary, standby = pair
    manage(primary.url, "migrate", "--noinput")
    key = manage(primary.url, "createapikey", "alice", "--create-user").strip().splitlines()[-1]
    cookie = {"Cookie": "sessionid=" + manage(primary.url, "shell", "-c", SESSION).split()[-1]}
    with served(
        primary.url,
        tmp_path / "server.log",
        DATABASE_REPLICA_URL=standby.url,
        THISDB_REDIS_PREFIX=RUN_PREFIX,
        THISDB_KEY_WRITES_PER_SECOND="0",
        # Other tests' private databases number their accounts from 1 too, under this run's
        # Redis prefix: their requests must not count against this one's hour.
        THISDB_REQUESTS_PER_HOUR="1000000",
        WEB_WORKERS="1",
    ) as port:
        on_primary, on_replica = Statements(primary), Statements(standby)
        api = {"X-Api-Key": key}
        status, _, bucket = request(port, "POST", "/v1/", b"", api)
        assert status == 200, bucket
        bucket = bucket.decode()
        answers = [
            request(port, "POST", f"/v1/{bucket}/k", b"1", api)[0],
            request(port, "GET", f"/v1/{bucket}/k", headers=api)[0],
            request(port, "POST", f"/v1/{bucket}/n?increment=2", b"", api)[0],
            request(port, "GET", f"/v1/{bucket}?format=json", headers=api)[0],
            request(port, "GET", "/v1/", headers=api)[0],
            request(port, "DELETE", f"/v1/{bucket}/k", headers=api)[0],
        ]
        assert [status, *answers] == [200] * 7
        api_on_primary, api_on_replica = on_primary.since(), on_replica.since()

        on_primary, on_replica = Statements(primary), Statements(standby)
        pages = [
            request(port, "GET", path, headers=cookie)
            for path in ("/usage/", "/admin/overview/", f"/buckets/{bucket}/")
        ]
        assert [page[0] for page in pages] == [200] * 3, [page[2][:300] for page in pages]
        pages_on_primary, pages_on_replica = on_primary.since(), on_replica.since()

    assert any("api_item" in line for line in api_on_primary)
    assert api_on_replica == []  # not one statement of the API's requests
    heavy = {
        "usage charts": "accounts_usagehour",
        "bucket counts": 'FROM "api_item"',
        "staff overview": 'SUM("accounts_account"."stored_bytes")',
    }
    for page, mark in heavy.items():
        assert any(mark in line for line in pages_on_replica), (page, pages_on_replica)
        assert not any(mark in line for line in pages_on_primary), (page, mark)
    # The session, the person, their keys: read where they are written.
    assert any("django_session" in line for line in pages_on_primary)
    assert not any("django_session" in line for line in pages_on_replica)
