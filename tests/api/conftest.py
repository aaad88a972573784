"""A real WSGI server for the tests that need one: the test client builds requests its own way
(chunked bodies, PATH_INFO), so some behaviour only shows through a server."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tests.serving import free_port

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture
def gunicorn_port():
    """gunicorn serving the platform on the test database (use it from tests marked
    django_db(transaction=True), so the rows they make are committed and visible to it)."""
    port = free_port()
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "THISDB_KEY_WRITES_PER_SECOND": "0",
        "THISDB_REDIS_PREFIX": settings.THISDB_REDIS_PREFIX,  # this run's prefix (conftest)
    }
    server = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("gunicorn")),
            "thisdb_site.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
        ],
        cwd=PROJECT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=10)
