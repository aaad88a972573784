"""Streams end when their key is revoked or their account suspended even if no notice reaches
their web process (Redis away): the hub asks the database every THISDB_WATCH_RECHECK_SECONDS."""

import socket

import pytest
from django.db import connection

from accounts.models import ApiKey
from api import lifecycle
from tests.conftest import Persona
from tests.serving import served

pytestmark = pytest.mark.django_db(transaction=True)


def database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def open_stream(port: int, key: str, bucket: str) -> socket.socket:
    stream = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = f"GET /v1/{bucket}?watch=true HTTP/1.1\r\nHost: x\r\nX-Api-Key: {key}\r\n\r\n"
    stream.sendall(head.encode())
    assert b"200 OK" in stream.recv(65536)
    return stream


def read_until_end(stream: socket.socket) -> bytes:
    received = b""
    while b"event: cancel" not in received:
        chunk = stream.recv(65536)  # the socket's timeout: 30 s, six times the recheck
        assert chunk, received
        received += chunk
    return received


def test_a_revoked_key_and_a_suspended_account_end_their_streams_without_redis(tmp_path):
    alice, bob = Persona("alice"), Persona("bob")
    mine, theirs = alice.new_bucket(), bob.new_bucket()
    # The platform without REDIS_URL: no notice from this process (which revokes) reaches it.
    with served(
        database_url(),
        tmp_path / "serve.log",
        REDIS_URL="",
        REDIS_CLUSTER="false",
        THISDB_WATCH_RECHECK_SECONDS="2",
    ) as port:
        revoked = open_stream(port, alice.key, mine)
        suspended = open_stream(port, bob.key, theirs)
        lifecycle.revoke_api_key(ApiKey.objects.get(pk=alice.api_key.pk))
        lifecycle.suspend_account(bob.user)
        assert b'data: {"reason": "revoked"}' in read_until_end(revoked)
        assert b'data: {"reason": "suspended"}' in read_until_end(suspended)
        revoked.close(), suspended.close()
