"""DATABASE_URL naming two servers, libpq's way, with target_session_attrs=read-write: a private
primary and its synchronous streaming standby (tests.private_postgres). The platform connects
to the one that takes writes whichever is named first; when the primary stops, answers are 503
with Retry-After, and once the standby is promoted (what Patroni does) they are 200 again,
without restarting the web server, and no write answered 200 is lost."""

import time
from collections import Counter

import pytest

from tests.conftest import RUN_PREFIX
from tests.private_postgres import PrivatePostgres
from tests.serving import request, served
from tests.test_outage import Load, manage
from thisdb_site import database_urls

BACK_SECONDS = 10  # budget: the first 200 this soon after the promotion

# What the platform's own connection says it is connected to.
WHERE = (
    "from django.db import connection\n"
    "with connection.cursor() as cursor:\n"
    "    cursor.execute('SELECT inet_server_port(), pg_is_in_recovery()')\n"
    "    print(*cursor.fetchone())\n"
)


@pytest.fixture
def pair():
    primary = PrivatePostgres()
    standby = None
    try:
        primary.start()
        with primary.connect("postgres") as conn:
            conn.execute("CREATE DATABASE thisdb")
        standby = PrivatePostgres(standby_of=primary)
        standby.start()
        primary.wait_for_standby()
        yield primary, standby
    finally:
        for server in (standby, primary):
            if server is not None:
                server.remove()


def both(first: PrivatePostgres, second: PrivatePostgres) -> str:
    return (
        f"postgres://postgres@127.0.0.1:{first.port},127.0.0.1:{second.port}/thisdb"
        "?target_session_attrs=read-write"
    )


def test_a_multi_host_url_gives_libpq_its_lists_of_hosts_and_ports():
    db = database_urls.parse(
        "postgres://root:s%40cret@10.0.0.1:5432,10.0.0.2:5433/thisdb"
        "?target_session_attrs=read-write&sslmode=require"
    )
    assert (db["HOST"], db["PORT"], db["NAME"]) == ("10.0.0.1,10.0.0.2", "5432,5433", "thisdb")
    assert (db["USER"], db["PASSWORD"]) == ("root", "s@cret")
    assert db["OPTIONS"] == {"target_session_attrs": "read-write", "sslmode": "require"}
    assert database_urls.parse("postgres://root@h:5432/thisdb")["HOST"] == "h"  # dj-database-url


def connected_to(url: str) -> list[str]:
    return manage(url, "shell", "-c", WHERE).splitlines()[-1].split()


def test_the_platform_finds_the_primary_and_after_a_failover_the_new_one(pair, tmp_path):
    primary, standby = pair
    url = both(standby, primary)  # the standby first: each connection has to look on
    manage(url, "migrate", "--noinput")  # writes: on the primary
    key = manage(url, "createapikey", "alice", "--create-user").strip().splitlines()[-1]
    for either in (url, both(primary, standby)):
        assert connected_to(either) == [str(primary.port), "False"]
    with primary.connect("postgres") as conn:
        # Synchronous from here: a commit is acknowledged once the standby has it (Patroni's
        # synchronous_mode), so a promotion loses no write answered 200.
        conn.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
        conn.execute("SELECT pg_reload_conf()")
    log = tmp_path / "server.log"
    with served(
        url,
        log,
        THISDB_REDIS_PREFIX=RUN_PREFIX,
        THISDB_KEY_WRITES_PER_SECOND="0",
        THISDB_REQUESTS_PER_HOUR="1000000",
        WEB_WORKERS="2",
    ) as port:
        status, _, bucket = request(port, "POST", "/v1/", b"", {"X-Api-Key": key})
        assert status == 200
        bucket = bucket.decode()
        with Load(port, bucket, key) as load:
            time.sleep(2)
            stopping = time.monotonic()
            primary.stop()
            stopped = time.monotonic()
            time.sleep(4)  # no primary: the standby refuses writes
            promoting = time.monotonic()
            standby.promote()
            promoted = time.monotonic()
            back = None
            while back is None and time.monotonic() - promoted < BACK_SECONDS + 5:
                time.sleep(0.1)
                if any(a[1] == 200 for a in load.between(promoted, time.monotonic())):
                    back = time.monotonic()
            time.sleep(2)
            end = time.monotonic()

    statuses = Counter(a[1] for a in load.answers)
    print(
        f"failover: {dict(statuses)}; first 200 {back - promoted:.1f} s after the promotion, "
        f"{back - stopped:.1f} s after the primary stopped"
        if back
        else f"failover: {dict(statuses)}; no 200 after the promotion"
    )
    assert set(statuses) <= {200, 503}, statuses  # never a 500, never a dropped connection
    assert all(a[3] for a in load.answers if a[1] == 503)  # every 503 has Retry-After
    before = load.between(stopping - 2, stopping)
    assert before and all(a[1] == 200 for a in before)
    # Answered after the primary was gone and before the standby was promoted: none is a 200.
    down = [a for a in load.answers if stopped + 0.5 <= a[0] <= promoting]
    assert down and all(a[1] == 503 for a in down), Counter(a[1] for a in down)
    assert back is not None and back - promoted < BACK_SECONDS
    after = load.between(back + 1, end)
    assert after and all(a[1] == 200 for a in after), Counter(a[1] for a in after)

    acknowledged = {a[2] for a in load.answers if a[1] == 200}
    with standby.connect() as conn:
        rows = conn.execute("SELECT key FROM api_item WHERE bucket_id = %s", [bucket]).fetchall()
    assert acknowledged - {key for (key,) in rows} == set()
    assert "Traceback" not in log.read_text()
