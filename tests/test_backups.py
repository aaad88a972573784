"""`make backup` and `make restore` (deploy/backup/) on the real PostgreSQL: a platform's data,
made through the API, round-trips whole into a new database, and a database with tables is
never restored over."""

import os
import subprocess
import uuid
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from tests.conftest import Persona
from tests.serving import PROJECT

pytestmark = pytest.mark.django_db(transaction=True)

BINARY = bytes(range(256)) * 4  # every byte value, NUL and invalid UTF-8 included


def url_of(name: str) -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{name}"


def make(target: str, database_url: str | None, *args: str, **env: str):
    environ = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    if database_url is not None:
        environ["DATABASE_URL"] = database_url
    return subprocess.run(
        ["make", "-s", target, *args],
        cwd=PROJECT,
        env={**environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def empty_database():
    name = f"{connection.settings_dict['NAME']}_restore_{uuid.uuid4().hex[:8]}"
    with connection.cursor() as cursor:  # autocommit: CREATE DATABASE runs outside a transaction
        cursor.execute(f'CREATE DATABASE "{name}"')
    yield name
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def platform_data() -> dict[str, Persona]:
    """Two accounts, three buckets; text, binary and counter keys, TTLs, a deleted key, a
    bucket's history (it is watched), tokens."""
    alice, bob = Persona("alice"), Persona("bob")
    notes, files = alice.new_bucket(), alice.new_bucket(default_ttl=3600)
    # Its history is kept from now on: a watch has been open on it.
    assert alice.client.get(f"/v1/{notes}?watch=true&format=json&wait=0").status_code == 200
    for i in range(50):
        assert alice.set(notes, f"note/{i:03}", f"text {i} é ✓").status_code == 200
    assert alice.set(notes, "expiring", "soon", "?ttl=120").status_code == 200
    assert alice.set(notes, "gone", "x").status_code == 200
    assert alice.client.delete(f"/v1/{notes}/gone").status_code == 200
    assert alice.set(notes, "counter", "1").status_code == 200
    assert (
        alice.client.patch(f"/v1/{notes}/counter", "+41", content_type="text/plain").status_code
        == 200
    )
    assert alice.set(files, "blob", BINARY).status_code == 200
    assert alice.set(files, "empty", b"").status_code == 200
    alice.token(notes, "note/", "read")
    shared = bob.new_bucket()
    assert bob.set(shared, "line\nbreak and\ttab", "bob's").status_code == 200
    return {"alice": alice, "bob": bob}


def fingerprint(database_url: str) -> dict:
    """Every table's row count, every sequence's position, and per bucket the count and an md5
    of its items (key, value, expiry, version) in key order."""
    with psycopg.connect(database_url) as conn:
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
            )
        ]
        counts = {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
        sequences = dict(conn.execute("SELECT sequencename, last_value FROM pg_sequences"))
        buckets = {
            bucket: (count, digest)
            for bucket, count, digest in conn.execute(
                "SELECT bucket_id, count(*), md5(string_agg("
                "  md5(convert_to(key, 'UTF8')) || md5(value) || coalesce(expires_at::text, '-')"
                "  || version::text, ',' ORDER BY key)) "
                "FROM api_item GROUP BY bucket_id"
            )
        }
    return {"counts": counts, "sequences": sequences, "buckets": buckets}


def test_a_backup_restores_whole_into_an_empty_database(empty_database, tmp_path):
    platform_data()
    source = url_of(connection.settings_dict["NAME"])
    made = make("backup", source, BACKUP_DIR=str(tmp_path))
    assert made.returncode == 0, made.stderr
    backup = Path(made.stdout.strip().splitlines()[-1])
    assert backup.parent == tmp_path and backup.name.startswith("thisdb-")
    assert backup.name.endswith("Z.dump")  # named by its UTC time
    assert backup.read_bytes()[:5] == b"PGDMP"  # pg_dump's custom format

    restored = make("restore", url_of(empty_database), f"FILE={backup}")
    assert restored.returncode == 0, restored.stderr

    before, after = fingerprint(source), fingerprint(url_of(empty_database))
    assert len(before["buckets"]) == 3
    assert before["counts"]["api_item"] == 55 and before["counts"]["api_change"] == 55
    assert after == before


def test_a_database_with_tables_is_never_restored_over(empty_database, tmp_path):
    platform_data()
    source = url_of(connection.settings_dict["NAME"])
    made = make("backup", source, BACKUP_DIR=str(tmp_path))
    assert made.returncode == 0, made.stderr
    backup = made.stdout.strip().splitlines()[-1]
    before = fingerprint(source)

    refused = make("restore", source, f"FILE={backup}")

    assert refused.returncode != 0
    assert "refused: the database of DATABASE_URL is not empty" in refused.stderr
    assert "createdb" in refused.stderr  # what to do instead
    assert fingerprint(source) == before


@pytest.mark.parametrize("database_url", [None, "sqlite:///db.sqlite3"])
def test_a_backup_of_the_sqlite_file_is_refused_saying_what_to_do(database_url, tmp_path):
    refused = make("backup", database_url, BACKUP_DIR=str(tmp_path))
    assert refused.returncode != 0
    assert "backups are of PostgreSQL: set DATABASE_URL=postgres://" in refused.stderr
    assert ".backup" in refused.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_restore_without_a_file_says_how_to_name_one(empty_database):
    refused = make("restore", url_of(empty_database))
    assert refused.returncode != 0
    assert "make restore FILE=var/backups/" in refused.stderr
