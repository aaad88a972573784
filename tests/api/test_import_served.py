"""Imports through real servers: the production web tier (`make serve`), whose watchers see the
imported keys as puts while single writes go on beside the import; and gunicorn, which hands
the application a chunked body as a stream, so a client that leaves mid-import shows what an
import applies when its body breaks off."""

import http.client
import json
import socket
import threading
import time

import pytest
from django.db import connection

from api import history
from api.models import Item
from tests.conftest import RUN_PREFIX, Persona
from tests.serving import request, served
from tests.sse import Stream

pytestmark = pytest.mark.django_db(transaction=True)

PATIENCE = 30  # seconds any answer or event may take on a loaded machine (no timing asserted)
NDJSON = {"Content-Type": "application/x-ndjson"}


def database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.fixture(scope="module")
def port(django_db_setup, django_db_blocker, tmp_path_factory):
    with django_db_blocker.unblock():
        url = database_url()
    log = tmp_path_factory.mktemp("import") / "server.log"
    with served(
        url,
        log,
        THISDB_REDIS_PREFIX=RUN_PREFIX,
        THISDB_REQUESTS_PER_HOUR="1000000",
        THISDB_KEY_WRITES_PER_SECOND="0",
        WEB_WORKERS="2",
        WEB_THREADS="2",
    ) as port:
        yield port


def lines(keys, value: str = "v") -> bytes:
    return b"".join(json.dumps({"key": k, "value": f"{value}{k}"}).encode() + b"\n" for k in keys)


def test_a_watcher_sees_every_imported_key_as_a_put(port):
    alice = Persona("alice")
    bucket = alice.new_bucket(default_ttl=0)
    keys = [f"k{n:05d}" for n in range(2500)]
    stream = Stream(port, bucket, key=alice.key, timeout=PATIENCE)
    with stream:
        assert stream.status == 200
        stream.next_block()  # the opening: watching from the head
        status, _, answer = request(
            port,
            "POST",
            f"/v1/{bucket}?format=json",
            lines(keys),
            {**NDJSON, "X-Api-Key": alice.key},
        )
        assert (status, json.loads(answer)) == (200, {"imported": 2500})
        events = stream.events(2500)
    assert {e.event for e in events} == {"put"}
    assert [e.data["key"] for e in events] == keys  # in order: batches, each in key order
    assert [e.data["value"] for e in events] == [f"v{k}" for k in keys]
    versions = dict(Item.objects.filter(bucket_id=bucket).values_list("key", "version"))
    assert [int(e.data["version"]) for e in events] == [versions[k] for k in keys]
    assert [e.position for e in events] == list(
        range(events[0].position, events[0].position + 2500)
    )


def test_single_writes_beside_an_import_each_land_with_their_own_version(port):
    """A key that the import writes in every batch while another client sets it again and
    again: every write lands, in some order, each with a version of its own; the key ends as
    the last of them left it."""
    alice = Persona("alice")
    bucket = alice.new_bucket(default_ttl=0)
    history.start_watching(bucket)  # the history lists every write of the key, in commit order
    batches = 8
    body = b"".join(
        lines([f"b{b}-{n:04d}" for n in range(999)]) + lines(["hot"], value=f"import{b}-")
        for b in range(batches)
    )
    done = threading.Event()
    single: list[int] = []
    failures: list[int] = []

    def write_again_and_again():
        while not done.is_set():
            status, headers, _ = request(
                port,
                "POST",
                f"/v1/{bucket}/hot",
                f"single{len(single)}".encode(),
                {"X-Api-Key": alice.key},
            )
            if status != 200:
                failures.append(status)
                return
            etag = {name.lower(): value for name, value in headers.items()}["etag"]
            single.append(int(etag.strip('"')))

    writer = threading.Thread(target=write_again_and_again)
    writer.start()
    try:
        status, _, answer = request(
            port,
            "POST",
            f"/v1/{bucket}",
            body,
            {**NDJSON, "X-Api-Key": alice.key},
            timeout=PATIENCE,
        )
    finally:
        done.set()
        writer.join()
    assert (status, answer) == (200, str(batches * 1000).encode())
    assert not failures and single  # the single writes went on during the import
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT version, value FROM api_change WHERE bucket_id = %s AND key = 'hot' "
            "ORDER BY position",
            [bucket],
        )
        writes = [(version, bytes(value)) for version, value in cursor.fetchall()]
    versions = [version for version, _ in writes]
    assert len(writes) == batches + len(single)  # none lost
    assert versions == sorted(set(versions))  # each its own, growing in commit order
    assert set(single) <= set(versions)
    assert sum(value.startswith(b"import") for _, value in writes) == batches
    hot = Item.objects.get(bucket_id=bucket, key="hot")
    assert (hot.version, bytes(hot.value)) == writes[-1]


# gunicorn: the body as a stream.


@pytest.fixture
def carol():
    return Persona("carol")


def test_a_chunked_import_is_read_as_a_stream_past_the_buffered_size(gunicorn_port, carol):
    bucket = carol.new_bucket()
    keys = [f"key-{n:06d}-{'x' * 40}" for n in range(40_000)]  # about 3 MB: past 1 MiB
    body = lines(keys)
    conn = http.client.HTTPConnection("127.0.0.1", gunicorn_port, timeout=PATIENCE)
    try:
        chunks = iter([body[i : i + 100_000] for i in range(0, len(body), 100_000)])
        conn.request(
            "POST",
            f"/v1/{bucket}?format=json",
            body=chunks,
            headers={**NDJSON, "X-Api-Key": carol.key},
            encode_chunked=True,
        )
        response = conn.getresponse()
        assert (response.status, json.loads(response.read())) == (200, {"imported": 40_000})
    finally:
        conn.close()
    assert Item.objects.filter(bucket_id=bucket).count() == 40_000


def test_a_client_that_leaves_mid_import_leaves_a_whole_prefix_of_its_lines(gunicorn_port, carol):
    """The body breaks off mid-line: the server's read fails (OSError), the import stops, and
    what it applied stays: lines 1 to N, whole, for some N, which is what a listing (an export)
    shows and where a client resumes. (What the server had read but not handed on when the
    read failed is not applied: N may stop short of the last whole line sent.)"""
    bucket = carol.new_bucket()
    keys = [f"k{n:05d}" for n in range(6000)]  # about 180 KB: batches apply as they fill
    sent = lines(keys) + b'{"key": "k06000", "val'
    head = (
        f"POST /v1/{bucket} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Api-Key: {carol.key}\r\n"
        "Content-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", gunicorn_port), timeout=PATIENCE) as client:
        client.sendall(head + f"{len(sent):x}\r\n".encode() + sent + b"\r\n")
        time.sleep(1)  # the server reads what came; then the client is gone
    deadline = time.monotonic() + PATIENCE
    applied = -1
    while time.monotonic() < deadline:  # until the count stops moving
        time.sleep(0.5)
        count = Item.objects.filter(bucket_id=bucket).count()
        if count == applied:
            break
        applied = count
    assert 1000 <= applied <= 6000
    stored = Item.objects.filter(bucket_id=bucket).order_by("key").values_list("key", flat=True)
    assert list(stored) == keys[:applied]
    listed = carol.client.get(f"/v1/{bucket}?format=json&limit=1000").json()["items"]
    assert [item["key"] for item in listed] == keys[: min(applied, 1000)]
