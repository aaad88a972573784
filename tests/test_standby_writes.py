"""A pooled connection whose server stopped taking writes: after a failover the old primary comes
back as a standby, and a connection that reached it (through PgBouncer, whose client connections
outlive the server's) answers every write with read_only_sql_transaction. Such a write is a 503
with Retry-After, never a 500, and the connection is dropped, so the pool's next one looks for
the primary again. Shown on a private server (tests.private_postgres) whose open sessions turn
read-only on a reload, while new sessions to its database still take writes."""

from tests.conftest import RUN_PREFIX
from tests.serving import request, served
from tests.test_outage import manage, private_postgres  # noqa: F401 (a fixture)

POOL = 3  # connections in the web worker's pool: each may answer one 503 before it is replaced


def test_a_write_on_a_connection_to_a_standby_is_a_503_and_the_connection_is_replaced(
    private_postgres,  # noqa: F811 (the fixture imported above)
    tmp_path,
):
    server = private_postgres
    manage(server.url, "migrate", "--noinput")
    key = manage(server.url, "createapikey", "alice", "--create-user").strip().splitlines()[-1]
    headers = {"X-Api-Key": key}
    with served(
        server.url,
        tmp_path / "serve.log",
        WEB_WORKERS="1",
        WEB_THREADS="1",
        DATABASE_POOL_SIZE=str(POOL),
        # Its own counters: a private database numbers its accounts from 1, as others do.
        THISDB_REDIS_PREFIX=f"{RUN_PREFIX}-standby_writes",
        THISDB_KEY_WRITES_PER_SECOND="0",
    ) as port:
        status, _, bucket = request(port, "POST", "/v1/", b"", headers)
        assert status == 200, bucket
        path = f"/v1/{bucket.decode()}/k"
        # Fill the pool: parallel reads would take more connections, but one thread uses one;
        # a few writes make sure the pool holds its connection(s) made before the change.
        for n in range(3):
            assert request(port, "POST", path, f"v{n}".encode(), headers)[0] == 200

        with server.connect("postgres") as conn:
            # Open sessions: read-only from the reload on; new sessions to thisdb: not.
            conn.execute("ALTER SYSTEM SET default_transaction_read_only = on")
            conn.execute("ALTER DATABASE thisdb SET default_transaction_read_only = off")
            conn.execute("SELECT pg_reload_conf()")

        answers = []
        for n in range(POOL + 3):
            status, answer_headers, body = request(port, "POST", path, f"w{n}".encode(), headers)
            answers.append(status)
            if status == 503:
                assert answer_headers.get("retry-after") == "5", (answer_headers, body)
                assert b"database is unavailable" in body
        # At most one 503 per pooled connection, then writes land on new connections.
        assert set(answers) <= {200, 503}, answers
        assert 503 in answers and answers[-1] == 200, answers
        assert answers.count(503) <= POOL, answers
        status, _, value = request(port, "GET", path, headers=headers)
        assert (status, value) == (200, f"w{POOL + 2}".encode())
