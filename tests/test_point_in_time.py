"""Point-in-time recovery with pgBackRest (deploy/pgbackrest/, docs/operations.md "Backups") on
a private PostgreSQL: a full backup, the platform's writes through its API, a bucket deleted by
mistake at time T, more writes, then a restore to just before T brings back the bucket and every
key acknowledged before T, and nothing written after it."""

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

from tests.conftest import RUN_PREFIX
from tests.serving import PROJECT, free_port, request, served

PG_BIN = Path("/usr/lib/postgresql/15/bin")
STANZA = "thisdb"


@dataclass
class Private:
    """A PostgreSQL cluster of the test's own, archiving its WAL with pgBackRest."""

    root: Path
    port: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def config(self) -> Path:
        return self.root / "pgbackrest.conf"

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/thisdb"

    def pg_ctl(self, *args: str) -> None:
        as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), *args)

    def start(self) -> None:
        self.pg_ctl("-l", str(self.root / "postgres.log"), "-w", "-t", "120", "start")

    def pgbackrest(self, *args: str) -> str:
        return as_postgres("pgbackrest", f"--config={self.config}", f"--stanza={STANZA}", *args)

    def query(self, sql: str, *params) -> list[tuple]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()


def as_postgres(*command: str) -> str:
    """PostgreSQL refuses to run as root: its commands run as the machine's postgres user."""
    done = subprocess.run(
        ["runuser", "-u", "postgres", "--", *command], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, (command, done.stdout, done.stderr)
    return done.stdout


@pytest.fixture
def private() -> Iterator[Private]:
    root = Path(tempfile.mkdtemp(prefix="thisdb-pitr-", dir="/tmp"))  # postgres can reach /tmp
    shutil.chown(root, "postgres", "postgres")
    cluster = Private(root, free_port())
    env = {
        **os.environ,
        "PG_DATA": str(cluster.data),
        "PG_PORT": str(cluster.port),
        "PG_SOCKET": str(root),
        "REPO_PATH": str(root / "repo"),
        "LOG_PATH": str(root / "log"),
        "LOCK_PATH": str(root / "lock"),
    }
    configured = subprocess.run(
        ["bash", "deploy/pgbackrest/configure.sh", str(cluster.config)],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    as_postgres(str(PG_BIN / "initdb"), "-D", str(cluster.data), "--auth=trust", "-U", "postgres")
    lines = [line for line in configured.stdout.splitlines() if not line.startswith("#")]
    with open(cluster.data / "postgresql.conf", "a") as conf:
        conf.write("\n".join([*lines, f"port = {cluster.port}", "listen_addresses = '127.0.0.1'"]))
        conf.write(f"\nunix_socket_directories = '{root}'\n")
    cluster.start()
    try:
        yield cluster
    finally:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", str(cluster.data)]
            + ["-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


def manage(database_url: str, *args: str) -> str:
    done = subprocess.run(
        [str(PROJECT / ".venv/bin/python"), "manage.py", *args],
        cwd=PROJECT,
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def items(cluster: Private, bucket: str) -> dict[str, bytes]:
    rows = cluster.query("SELECT key, value FROM api_item WHERE bucket_id = %s", bucket)
    return {key: bytes(value) for key, value in rows}


def test_a_restore_to_just_before_a_mistaken_delete_brings_the_bucket_back(private, tmp_path):
    as_postgres(
        str(PG_BIN / "createdb"), "-h", str(private.root), "-p", str(private.port), "thisdb"
    )
    manage(private.url, "migrate", "--noinput", "-v0")
    key = manage(private.url, "createapikey", "alice", "--create-user").strip().splitlines()[-1]
    private.pgbackrest("stanza-create")
    private.pgbackrest("check")  # archive_command works: a WAL segment reached the repository
    private.pgbackrest("--type=full", "backup")

    api = {"X-Api-Key": key}
    with served(
        private.url,
        tmp_path / "server.log",
        REDIS_URL=settings.REDIS_URL,
        THISDB_REDIS_PREFIX=RUN_PREFIX,
        THISDB_KEY_WRITES_PER_SECOND="0",
        WEB_WORKERS="1",
    ) as port:

        def call(method: str, path: str, body: bytes | None = None) -> bytes:
            status, _, content = request(port, method, path, body, api)
            assert status == 200, (method, path, content)  # acknowledged
            return content

        doomed, kept = call("POST", "/v1/").decode(), call("POST", "/v1/").decode()
        before = {f"k{i:02}": f"value {i}".encode() for i in range(20)}
        before["binary"] = bytes(range(256))
        for name, value in before.items():
            call("POST", f"/v1/{doomed}/{name}", value)
        call("POST", f"/v1/{kept}/k0", b"original")

        time.sleep(1)
        # T, by the database's clock: every write above committed before it.
        (target,) = private.query(
            "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', "
            "'YYYY-MM-DD HH24:MI:SS.US') || '+00'"
        )[0]
        time.sleep(1)

        call("DELETE", f"/v1/{doomed}")  # the mistake
        call("POST", f"/v1/{kept}/k0", b"changed after T")
        call("POST", f"/v1/{kept}/late", b"written after T")
        late_bucket = call("POST", "/v1/").decode()
        assert items(private, doomed) == {}

    private.pgbackrest("check")  # the WAL up to now is archived (check switches to a new one)
    private.pg_ctl("-m", "fast", "stop")
    private.pgbackrest(
        "--delta", "--type=time", f"--target={target}", "--target-action=promote", "restore"
    )
    private.start()
    deadline = time.monotonic() + 120
    while private.query("SELECT pg_is_in_recovery()")[0][0]:
        assert time.monotonic() < deadline, "the restored server never left recovery"
        time.sleep(0.5)

    buckets = {row[0] for row in private.query("SELECT id FROM api_bucket")}
    assert buckets == {doomed, kept}  # the bucket is back; the one made after T is not there
    assert late_bucket not in buckets
    assert items(private, doomed) == before
    assert items(private, kept) == {"k0": b"original"}
