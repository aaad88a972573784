"""Time one request in-process, through Django's WSGI handler (no server, no HTTP), for the
product and for the floor (bench/floor), on the bench's PostgreSQL and Redis; and the two round
trips alone. The request is a GET of one key, a set of a new key or an increment of a new key
(--op). With --profile, pyinstrument's view of where the product's request spends its time.
With --instructions, the instructions each side's process executes per request, counted by
valgrind's callgrind: the same figure to within 0.5% however busy the machine is (the waits on
PostgreSQL and Redis, and the kernel's work, are not counted). With --opcodes, the Python opcodes
each side executes per request (sys.settrace's opcode events), and the functions where they
differ most.

    .venv/bin/python bench/profile.py [--op get|set|incr] [--requests N] [--profile [--all-frames]]
    .venv/bin/python bench/profile.py --instructions [--op get|set|incr]
    .venv/bin/python bench/profile.py --opcodes [--op get|set|incr]
"""

import argparse
import collections
import io
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.stack import ENV, fresh_database  # noqa: E402


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


SETTINGS = {"product": "thisdb_site.settings", "floor": "bench.floor.settings"}


def setup() -> tuple:
    """The product's database, an API key and a bucket holding the key "k" (100 bytes): the
    WSGI handler, the key's header, the bucket."""
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS["product"]
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
    status, body = call(handler, "POST", f"/v1/{bucket.decode()}/k", auth, b"v" * 100)
    assert status.startswith("200"), body
    return handler, auth, bucket.decode()


def product(op: str, requests: int, profile: bool, show_all: bool) -> dict:
    handler, auth, bucket = setup()
    prefix = f"/v1/{bucket}/"

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
    return {"bucket": bucket, "us": per_request_us(one, requests)}


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


def counted(side: str, op: str, requests: int, bucket: str, opcodes: bool = False) -> None:
    """The process callgrind counts: 30 requests of one side to warm up, then `requests` more
    (its keys apart from every other count's, so that each run makes the same new keys). With
    `opcodes`, Python counts the opcodes of those requests itself and prints them (JSON)."""
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS[side]
    import django

    django.setup()
    from django.core.wsgi import get_wsgi_application

    handler = get_wsgi_application()
    auth = {"X-Api-Key": os.environ["BENCH_API_KEY"]} if side == "product" else {}

    def one():
        method, key, body = request_of(op, f"{side}-{requests}")
        status, answer = call(handler, method, f"/v1/{bucket}/{key}", auth, body)
        assert status.startswith("200"), answer

    for _ in range(30):
        one()
    if not opcodes:
        for _ in range(requests):
            one()
        return
    ops: collections.Counter = collections.Counter()
    calls: collections.Counter = collections.Counter()

    def tracer(frame, event, arg):
        code = frame.f_code
        where = f"{short_path(code.co_filename)}:{code.co_firstlineno} {code.co_name}"
        if event == "call":
            calls[where] += 1
            frame.f_trace_opcodes = True  # then an "opcode" event for each opcode of the frame
        elif event == "opcode":
            ops[where] += 1
        return tracer

    sys.settrace(tracer)
    try:
        for _ in range(requests):
            one()
    finally:
        sys.settrace(None)
    print(json.dumps({"ops": ops, "calls": calls}))


def count_command(side: str, op: str, requests: int, bucket: str) -> list[str]:
    """The command of one side's counted run (counted()); the API key goes in BENCH_API_KEY."""
    counts = ["--count", side, "--op", op, "--requests", str(requests), "--bucket", bucket]
    return [sys.executable, __file__, *counts]


def short_path(filename: str) -> str:
    for root in ("site-packages/", "/lib/python3", str(ROOT) + "/"):
        if root in filename:
            return filename.split(root, 1)[1]
    return filename


def opcodes(op: str, requests: int = 200) -> None:
    """Python opcodes a request, each side, and the functions where they differ most."""
    fresh_database()
    _, auth, bucket = setup()
    counts = {}
    for side in ("product", "floor"):
        done = subprocess.run(
            count_command(side, op, requests, bucket) + ["--opcodes"],
            env={**os.environ, "BENCH_API_KEY": auth["X-Api-Key"]},
            capture_output=True,
            text=True,
            check=True,
        )
        counts[side] = json.loads(done.stdout.splitlines()[-1])
    ours, theirs = counts["product"], counts["floor"]
    print(
        f"{OPS[op]} in-process, Python opcodes a request: product "
        f"{sum(ours['ops'].values()) / requests:,.0f} in "
        f"{sum(ours['calls'].values()) / requests:,.0f} calls, floor "
        f"{sum(theirs['ops'].values()) / requests:,.0f} in "
        f"{sum(theirs['calls'].values()) / requests:,.0f} calls\n"
    )
    print(f"{'product':>8} {'floor':>8} {'more':>6}  calls  function (the 30 that differ most)")
    names = set(ours["ops"]) | set(theirs["ops"])
    more = {name: ours["ops"].get(name, 0) - theirs["ops"].get(name, 0) for name in names}
    for name in sorted(names, key=lambda n: -abs(more[n]))[:30]:
        mine, floors = ours["ops"].get(name, 0), theirs["ops"].get(name, 0)
        print(
            f"{mine / requests:8.0f} {floors / requests:8.0f} {more[name] / requests:+6.0f}  "
            f"{ours['calls'].get(name, 0) / requests:5.1f}  {name}"
        )


# Two counts of each side, whose difference is the requests alone: Python's start, Django's
# setup and the warm-up cancel out. 200 requests take about a minute under callgrind.
FEW, MANY = 20, 220


def instructions(op: str) -> None:
    if not shutil.which("valgrind"):
        sys.exit("valgrind is missing: apt-get install valgrind (Debian's package)")
    fresh_database()
    _, auth, bucket = setup()
    per_request = {}
    with tempfile.TemporaryDirectory() as scratch:
        for side in ("product", "floor"):
            totals = {}
            for requests in (FEW, MANY):
                out = Path(scratch) / f"{side}.{requests}"
                subprocess.run(
                    ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
                    + count_command(side, op, requests, bucket),
                    # One hash seed: dicts and sets then lay out alike in every run.
                    env={**os.environ, "BENCH_API_KEY": auth["X-Api-Key"], "PYTHONHASHSEED": "0"},
                    capture_output=True,
                    check=True,
                )
                lines = out.read_text().splitlines()
                totals[requests] = next(int(x.split()[1]) for x in lines if x.startswith("totals:"))
            per_request[side] = (totals[MANY] - totals[FEW]) / (MANY - FEW)
    ours, theirs = per_request["product"], per_request["floor"]
    print(
        f"{OPS[op]} in-process, instructions a request (callgrind): product {ours:,.0f}, "
        f"floor {theirs:,.0f} (ratio {theirs / ours:.3f})"
    )


OPS = {"get": "GET of one key", "set": "set of a new key", "incr": "increment of a new key"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="per batch (default 2000)")
    parser.add_argument("--op", choices=("get", "set", "incr"), default="get")
    parser.add_argument("--profile", action="store_true", help="pyinstrument's tree of a request")
    parser.add_argument("--all-frames", action="store_true", help="with --profile: no frame hidden")
    parser.add_argument(
        "--instructions", action="store_true", help="callgrind's instruction counts instead"
    )
    parser.add_argument(
        "--opcodes", action="store_true", help="Python's opcode counts, by function, instead"
    )
    parser.add_argument("--floor", help=argparse.SUPPRESS)  # the floor's run, in a subprocess
    parser.add_argument("--count", help=argparse.SUPPRESS)  # a side's run under callgrind
    parser.add_argument("--bucket", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.update(ENV)
    if args.floor:
        print(json.dumps(floor(args.op, args.requests, args.floor)))
        return
    if args.count:
        counted(args.count, args.op, args.requests, args.bucket, args.opcodes)
        return
    if args.instructions:
        instructions(args.op)
        return
    if args.opcodes:
        opcodes(args.op)
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
