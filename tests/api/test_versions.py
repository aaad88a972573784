"""Versions and conditional requests on a key's route: ETag, If-Match, If-None-Match, 304, 412."""

import re
import socket
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from api.models import Item
from tests.api.test_increment import run_in_threads
from tests.conftest import Persona, token_client, unversioned

TEXT = "text/plain"
JSON = "application/json"


def version_of(response) -> int:
    tag = response["ETag"]
    assert re.fullmatch(r'"[1-9][0-9]*"', tag), tag
    return int(tag.strip('"'))


def write(persona, bucket, key, value, headers=None, query=""):
    return persona.client.post(
        f"/v1/{bucket}/{key}{query}", value, content_type=TEXT, headers=headers or {}
    )


def stored(bucket: str, key: str) -> bytes | None:
    item = Item.objects.filter(bucket_id=bucket, key=key).first()
    return None if item is None else bytes(item.value)


def test_a_get_and_a_head_answer_the_keys_etag(alice, bucket):
    written = write(alice, bucket, "k", "v")
    got = alice.client.get(f"/v1/{bucket}/k")
    head = alice.client.head(f"/v1/{bucket}/k")
    assert version_of(got) == version_of(head) == version_of(written)
    assert got.content == b"v" and head.content == b""


def test_writes_answer_the_new_version_and_keep_their_bodies(alice, bucket):
    first = write(alice, bucket, "k", "1")
    assert first.content == b"OK"
    put = alice.client.put(f"/v1/{bucket}/k", "2", content_type=TEXT)
    assert put.content == b"OK"
    incremented = alice.client.patch(f"/v1/{bucket}/k", "+5", content_type=TEXT)
    assert incremented.content == b"7"
    as_json = alice.client.patch(f"/v1/{bucket}/k?format=json", "+1", content_type=TEXT)
    assert as_json.json() == {"key": "k", "value": 8}
    versions = [version_of(r) for r in (first, put, incremented, as_json)]
    assert versions == sorted(versions) and len(set(versions)) == 4  # every write: a new one


def test_a_key_deleted_and_written_again_never_gets_a_version_it_had(alice, bucket):
    seen = [version_of(write(alice, bucket, "k", "A"))]
    seen.append(version_of(write(alice, bucket, "k", "B")))
    assert alice.client.delete(f"/v1/{bucket}/k").status_code == 200
    again = version_of(write(alice, bucket, "k", "A"))
    assert again > max(seen)  # A -> B -> A is never mistaken for unchanged


def test_if_none_match_answers_304_while_the_version_is_current(alice, bucket):
    tag = write(alice, bucket, "k", "v")["ETag"]
    unchanged = alice.client.get(f"/v1/{bucket}/k", headers={"If-None-Match": tag})
    assert unchanged.status_code == 304 and unchanged.content == b""
    assert unchanged["ETag"] == tag
    assert (
        alice.client.get(f"/v1/{bucket}/k", headers={"If-None-Match": f"W/{tag}"}).status_code
        == 304
    )
    write(alice, bucket, "k", "w")
    changed = alice.client.get(f"/v1/{bucket}/k", headers={"If-None-Match": tag})
    assert (changed.status_code, changed.content) == (200, b"w")


def test_if_match_writes_over_the_version_read(alice, bucket):
    tag = write(alice, bucket, "k", "v")["ETag"]
    response = write(alice, bucket, "k", "w", {"If-Match": tag})
    assert (response.status_code, response.content) == (200, b"OK")
    assert version_of(response) > int(tag.strip('"'))
    assert stored(bucket, "k") == b"w"


def test_a_stale_if_match_is_412_with_the_current_etag_and_nothing_changes(alice, bucket):
    stale = write(alice, bucket, "k", "v")["ETag"]
    current = write(alice, bucket, "k", "w")["ETag"]
    response = write(alice, bucket, "k", "x", {"If-Match": stale})
    assert response.status_code == 412
    assert response["ETag"] == current
    assert b"changed" in response.content
    assert stored(bucket, "k") == b"w"
    as_json = write(alice, bucket, "k", "x", {"If-Match": stale}, query="?format=json")
    assert as_json.status_code == 412 and set(as_json.json()) == {"error"}


def test_if_match_takes_a_list_of_versions(alice, bucket):
    tag = write(alice, bucket, "k", "v")["ETag"]
    response = write(alice, bucket, "k", "w", {"If-Match": f'"1", {tag}, "2"'})
    assert response.status_code == 200


def test_a_version_without_its_quotes_is_taken_as_its_tag(alice, bucket):
    version = write(alice, bucket, "k", "v")["ETag"].strip('"')
    assert write(alice, bucket, "k", "w", {"If-Match": version}).status_code == 200
    assert write(alice, bucket, "k", "x", {"If-Match": version}).status_code == 412


def test_a_weak_tag_never_matches_if_match(alice, bucket):
    tag = write(alice, bucket, "k", "v")["ETag"]
    assert write(alice, bucket, "k", "w", {"If-Match": f"W/{tag}"}).status_code == 412


def test_if_match_star_needs_the_key_to_exist(alice, bucket):
    absent = write(alice, bucket, "k", "v", {"If-Match": "*"})
    assert absent.status_code == 412 and "ETag" not in absent
    assert stored(bucket, "k") is None
    write(alice, bucket, "k", "v")
    assert write(alice, bucket, "k", "w", {"If-Match": "*"}).status_code == 200


def test_if_none_match_star_creates_only(alice, bucket):
    created = write(alice, bucket, "k", "first", {"If-None-Match": "*"})
    assert created.status_code == 200
    again = write(alice, bucket, "k", "second", {"If-None-Match": "*"})
    assert again.status_code == 412 and again["ETag"] == created["ETag"]
    assert stored(bucket, "k") == b"first"


def test_an_expired_key_does_not_exist_for_conditions(alice, bucket):
    tag = write(alice, bucket, "k", "old")["ETag"]
    Item.objects.filter(key="k").update(expires_at=timezone.now() - timedelta(seconds=1))
    assert write(alice, bucket, "k", "x", {"If-Match": tag}).status_code == 412
    assert write(alice, bucket, "k", "x", {"If-Match": "*"}).status_code == 412
    assert write(alice, bucket, "k", "new", {"If-None-Match": "*"}).status_code == 200
    assert stored(bucket, "k") == b"new"


def test_a_conditional_increment(alice, bucket):
    tag = alice.client.patch(f"/v1/{bucket}/n", "+1", content_type=TEXT)["ETag"]
    alice.client.patch(f"/v1/{bucket}/n", "+1", content_type=TEXT)
    refused = alice.client.patch(
        f"/v1/{bucket}/n", "+1", content_type=TEXT, headers={"If-Match": tag}
    )
    assert refused.status_code == 412 and stored(bucket, "n") == b"2"
    current = refused["ETag"]
    done = alice.client.patch(
        f"/v1/{bucket}/n", "+1", content_type=TEXT, headers={"If-Match": current}
    )
    assert (done.status_code, done.content) == (200, b"3")
    created = alice.client.patch(
        f"/v1/{bucket}/m", "+4", content_type=TEXT, headers={"If-None-Match": "*"}
    )
    assert (created.status_code, created.content) == (200, b"4")
    twice = alice.client.patch(
        f"/v1/{bucket}/m", "+4", content_type=TEXT, headers={"If-None-Match": "*"}
    )
    assert twice.status_code == 412 and stored(bucket, "m") == b"4"


def test_a_conditional_delete(alice, bucket):
    stale = write(alice, bucket, "k", "v")["ETag"]
    current = write(alice, bucket, "k", "w")["ETag"]
    refused = alice.client.delete(f"/v1/{bucket}/k", headers={"If-Match": stale})
    assert refused.status_code == 412 and refused["ETag"] == current
    assert stored(bucket, "k") == b"w"
    assert alice.client.delete(f"/v1/{bucket}/k", headers={"If-Match": current}).status_code == 200
    assert stored(bucket, "k") is None
    assert alice.client.delete(f"/v1/{bucket}/k", headers={"If-Match": current}).status_code == 412


@pytest.mark.parametrize(
    "headers, says",
    [
        ({"If-Match": "v17"}, "entity tags"),
        ({"If-Match": '"17", junk'}, "entity tags"),
        ({"If-Match": ""}, "empty"),
        ({"If-None-Match": '"17"'}, "only *"),
    ],
)
def test_a_condition_that_cannot_be_read_is_400_and_nothing_changes(alice, bucket, headers, says):
    write(alice, bucket, "k", "v")
    response = write(alice, bucket, "k", "w", headers)
    assert response.status_code == 400
    assert says in response.content.decode()
    assert stored(bucket, "k") == b"v"


def test_if_match_with_if_none_match_star_can_never_hold(alice, bucket):
    tag = write(alice, bucket, "k", "v")["ETag"]
    both = write(alice, bucket, "k", "w", {"If-Match": tag, "If-None-Match": "*"})
    assert both.status_code == 412 and both["ETag"] == tag
    absent = write(alice, bucket, "new", "w", {"If-Match": "*", "If-None-Match": "*"})
    assert absent.status_code == 412 and "ETag" not in absent
    assert stored(bucket, "k") == b"v" and stored(bucket, "new") is None


def test_listings_carry_the_versions_of_their_keys(alice, bucket):
    tags = {key: write(alice, bucket, key, "v")["ETag"] for key in ("a", "b")}
    for query in ("format=json", "format=json&values=true"):
        items = alice.client.get(f"/v1/{bucket}?{query}").json()["items"]
        assert {item["key"]: f'"{item["version"]}"' for item in items} == tags
    lines = alice.client.get(f"/v1/{bucket}?format=ndjson").content.splitlines()
    assert len(unversioned([__import__("json").loads(line) for line in lines])) == 2


def test_a_read_only_token_cannot_write_with_a_condition(alice, bucket):
    tag = write(alice, bucket, "k", "v")["ETag"]
    reader = token_client(alice.token(bucket, "", "read"))
    assert reader.get(f"/v1/{bucket}/k")["ETag"] == tag
    response = reader.post(f"/v1/{bucket}/k", "w", content_type=TEXT, headers={"If-Match": tag})
    assert response.status_code == 403
    assert stored(bucket, "k") == b"v"


def test_another_accounts_key_is_not_found_whatever_the_condition(alice, bob, bucket):
    write(alice, bucket, "k", "v")
    for headers in ({"If-Match": "*"}, {"If-None-Match": "*"}):
        response = write(bob, bucket, "k", "w", headers)
        assert response.status_code == 404 and "ETag" not in response
    assert stored(bucket, "k") == b"v"


def test_a_compare_and_set_counter_loses_no_update(transactional_db, alice, settings):
    """20 clients x 20 increments by GET + If-Match set, retrying on 412: exactly 400."""
    settings.THISDB_REQUESTS_PER_HOUR = 100_000  # the retries make thousands of requests
    bucket = alice.new_bucket()
    write(alice, bucket, "counter", "0")
    won: list[int] = []
    lock = threading.Lock()

    def client_loop(_n: int) -> None:
        client = Client(headers={"X-Api-Key": alice.key})
        mine = []
        while len(mine) < 20:
            got = client.get(f"/v1/{bucket}/counter")
            new = int(got.content) + 1
            answer = client.post(
                f"/v1/{bucket}/counter",
                str(new),
                content_type=TEXT,
                headers={"If-Match": got["ETag"]},
            )
            assert answer.status_code in (200, 412), answer.content
            if answer.status_code == 200:
                mine.append(new)
        with lock:
            won.extend(mine)

    run_in_threads(20, client_loop)

    assert stored(bucket, "counter") == b"400"
    assert sorted(won) == list(range(1, 401))  # every success wrote a value no other did
    connection.close()


def raw_answer(port: int, request: bytes) -> bytes:
    """Every byte a server sends for one request, until it closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(request)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    return received


@pytest.mark.django_db(transaction=True)
def test_head_and_304_send_no_body_through_a_real_server(gunicorn_port):
    """gunicorn sends any body it is given (Django's test client drops it itself): a HEAD and
    a 304 must end where their headers do, or a kept-alive connection reads the stray body as
    the start of the next answer."""
    carol = Persona("carol")
    bucket = carol.new_bucket()
    tag = write(carol, bucket, "k", "value")["ETag"]
    for method, extra in (("HEAD", ""), ("GET", f"If-None-Match: {tag}\r\n")):
        request = (
            f"{method} /v1/{bucket}/k HTTP/1.1\r\nHost: test\r\nX-Api-Key: {carol.key}\r\n"
            f"{extra}Connection: close\r\n\r\n"
        )
        head, _, body = raw_answer(gunicorn_port, request.encode()).partition(b"\r\n\r\n")
        assert f"ETag: {tag}".encode() in head, (method, head)
        assert body == b"", (method, body)
