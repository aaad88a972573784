"""An ASGI application for tests/test_bulk_serving.py: the production front (BufferedWSGI) around
a small WSGI application that reads a streamed body the way the import does (line by line, to
b""), served by granian through `make serve SERVE_APP=tests.bulk_app:application`. It answers
what it read and the worker's memory while it read; a body that fails is written to the file
THISDB_TEST_BODY_LOG names (its client may be gone)."""

import json
import os
from pathlib import Path

from tests.serving import rss_kib
from thisdb_site.front import BufferedWSGI


def read_body(environ, start_response):
    body = environ["wsgi.input"]
    before = peak = rss_kib(os.getpid())
    size = lines = 0
    try:
        for line in body:
            size += len(line)
            lines += 1
            if lines % 10_000 == 0:
                peak = max(peak, rss_kib(os.getpid()))
    except OSError as error:
        with open(os.environ["THISDB_TEST_BODY_LOG"], "a") as log:
            log.write(f"{type(error).__name__} after {lines} lines: {error}\n")
        start_response("400 Bad Request", [("Content-Type", "text/plain")])
        return [str(error).encode()]
    answer = {
        "bytes": size,
        "lines": lines,
        "streamed": environ.get("thisdb.streamed_body", False),
        "rss_before_kib": before,
        "rss_peak_kib": peak,
    }
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(answer).encode()]


def app(environ, start_response):
    if environ["PATH_INFO"] == "/healthz":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]
    return read_body(environ, start_response)


application = BufferedWSGI(
    app,
    max_body=1024 * 1024,
    body_timeout=int(os.environ.get("THISDB_BODY_TIMEOUT", "30")),
    threads=1,
    bulk_threads=1,
)
Path(os.environ["THISDB_TEST_BODY_LOG"]).touch()
