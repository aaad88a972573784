"""Time one request in-process, through Django's WSGI handler (no server, no HTTP), for the
product and for the floor (bench/floor), on the bench's PostgreSQL and Redis; and the two round
trips alone. The request is a GET of one key, a set of a new key or an increment of a new key
(--op). With --profile, pyinstrument's view of where the product's request spends its time.

    .venv/bin/python bench/profile.py [--op get|set|incr] [--requests N] [--profile [--all-frames]]
"""

import argparse
import io
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench import ENV, fresh_database  # noqa: E402


def environ(method: str, path: str, headers: dict, body: bytes = b"") -> dict:
    env = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "CONTENT_LENGTH": str(len(body)),
    }
    for name, value in headers.items():
        env["HTTP_" + name.upper().replace("-", "_")] = value
    return env


def call(handler, method, path, headers, body=b"") -> tuple[str, bytes]:
    answer = {}

    def start_response(status, response_headers, exc_info=None):
        answer["status"] = status

    result = handler(environ(method, path, headers, body), start_response)
    try:
        content = b"".join(result)
    finally:
        result.close()
    return answer["status"], content


def per_request_us(run, requests: int) -> dict:
    """Microseconds per request: wall time and this process's CPU time (which leaves out the
    waits on PostgreSQL and Redis, so it is the steadier figure), each the best of 5 batches
    (the least disturbed one)."""
    wall, cpu = [], []
    for _ in range(5):
        started, cpu_started = time.perf_counter(), time.process_time()
        for _ in range(requests):
            run()
        wall.append((time.perf_counter() - started) / requests * 1e6)
        cpu.append((time.process_time() - cpu_started) / requests * 1e6)
    return {"wall": min(wall), "cpu": min(cpu)}


# The three requests: method, key (a new one each time for a write: one write per key per second),
# body. Each side numbers its keys apart so that the product and the floor never meet.
NUMBERS = itertools.count()


def request_of(op: str, side: str) -> tuple[str, str, bytes]:
    if op == "get":
        return "GET", "k", b""
    n = next(NUMBERS)
    if op == "set":
        return "POST", f"{side}-{n}", b"value-%d" % n
    return "PATCH", f"{side}-{n}", b"+1"


def product(op: str, requests: int, profile: bool, show_all: bool) -> dict:
    os.environ["DJANGO_SETTINGS_MODULE"] = "thisdb_site.settings"
    import django

    django.setup()
    from django.core.management import call_command
    from django.core.wsgi import get_wsgi_application

    call_command("migrate", verbosity=0)
    out = io.StringIO()
    call_command("createapikey", "profile", "--create-user", "--name", "profile", stdout=out)
    auth = {"X-Api-Key": out.getvalue().strip().splitlines()[-1]}
    handler = get_wsgi_application()
    status, bucket = call(handler, "POST", "/v1/", auth)
    assert status.startswith("200"), bucket
    prefix = f"/v1/{bucket.decode()}/"
    status, body = call(handler, "POST", prefix + "k", auth, b"v" * 100)
    assert status.startswith("200"), body

    def one():
        method, key, body = request_of(op, "product")
        status, answer = call(handler, method, prefix + key, auth, body)
        assert status.startswith("200"), answer

    for _ in range(200):
        one()  # warm: lookups cached, connections open, statements prepared
    if profile:
        from pyinstrument import Profiler

        with Profiler(interval=0.0001) as profiler:
            for _ in range(requests):
                one()
        text = profiler.output_text(unicode=True, color=sys.stdout.isatty(), show_all=show_all)
        print(text)
    return {"bucket": bucket.decode(), "us": per_request_us(one, requests)}


def floor(op: str, requests: int, bucket: str) -> dict:
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.floor.settings"
    import django

    django.setup()
    from django.core.wsgi import get_wsgi_application
    from django.db import connection
    from django.utils import timezone

    from bench.floor import views

    handler = get_wsgi_application()
    prefix = f"/v1/{bucket}/"

    def one():
        method, key, body = request_of(op, "floor")
        status, answer = call(handler, method, prefix + key, {}, body)
        assert status.startswith("200"), answer

    def trips():
        method, key, body = request_of(op, "trips")
        views.redis_trip(bucket, key)
        with connection.cursor() as cursor:
            if method == "GET":
                cursor.execute(views.GET, [bucket, key])
                cursor.fetchone()
            elif method == "POST":
                cursor.execute(views.SET, [bucket, key, body, timezone.now()])
            else:
                cursor.execute(views.INCREMENT, [bucket, key, 1, timezone.now(), 1])
                cursor.fetchone()

    for _ in range(200):
        one()
    return {"us": per_request_us(one, requests), "trips_us": per_request_us(trips, requests)}


OPS = {"get": "GET of one key", "set": "set of a new key", "incr": "increment of a new key"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="per batch (default 2000)")
    parser.add_argument("--op", choices=("get", "set", "incr"), default="get")
    parser.add_argument("--profile", action="store_true", help="pyinstrument's tree of a request")
    parser.add_argument("--all-frames", action="store_true", help="with --profile: no frame hidden")
    parser.add_argument("--floor", help=argparse.SUPPRESS)  # the floor's run, in a subprocess
    args = parser.parse_args()
    os.environ.update(ENV)
    if args.floor:
        print(json.dumps(floor(args.op, args.requests, args.floor)))
        return
    fresh_database()
    mine = product(args.op, args.requests, args.profile, args.all_frames)
    done = subprocess.run(
        [sys.executable, __file__, "--floor", mine["bucket"], "--op", args.op]
        + ["--requests", str(args.requests)],
        capture_output=True,
        text=True,
        check=True,
    )
    theirs = json.loads(done.stdout)
    ours, floors, trips = mine["us"], theirs["us"], theirs["trips_us"]
    print(
        f"{OPS[args.op]} in-process: product {ours['wall']:.0f} us, floor {floors['wall']:.0f} us "
        f"(ratio {floors['wall'] / ours['wall']:.2f}); the process's CPU: product "
        f"{ours['cpu']:.0f} us, floor {floors['cpu']:.0f} us "
        f"(ratio {floors['cpu'] / ours['cpu']:.2f}); the two round trips alone "
        f"{trips['wall']:.0f} us, {trips['cpu']:.0f} us of CPU"
    )


if __name__ == "__main__":
    main()
