"""Benchmark of the v1 API: prints figures, asserts nothing.

HTTP mode (default): gunicorn serves the platform on 127.0.0.1 on the real PostgreSQL and Redis;
client processes (not threads: the GIL would cap the client, not the server) send set, get,
increment and list-page requests on keep-alive connections, each for --seconds.
--in-process: calls api.operations directly through Django's connection, one statement at a time,
which is the SQL floor under the HTTP figures.

Run from the project root with the project's Python: .venv/bin/python bench/api_bench.py --help
"""

import argparse
import http.client
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import redis
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://root@127.0.0.1:5432/thisdb_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
REDIS_PREFIX = "thisdb-bench"
# Limits that would refuse a benchmark's traffic are turned off or raised: the figures measure
# the work of a request, not the 429s of the spec's 1 write/s per key and 1000 requests/hour.
ENV = {
    "DATABASE_URL": DATABASE_URL,
    "REDIS_URL": REDIS_URL,
    "THISDB_REDIS_PREFIX": REDIS_PREFIX,
    "THISDB_KEY_WRITES_PER_SECOND": "0",
    "THISDB_REQUESTS_PER_HOUR": "100000000",
    "THISDB_MAX_BUCKETS": "1000000",
    "DEBUG": "false",
}
SEED_KEYS = 1000  # keys "seed-NNNNN" that get reads and list pages scan
COUNTERS = 4  # few counters, so concurrent increments contend on their rows
MAX_REQUESTS = 1_000_000  # per client and operation: every loop is bounded in count and time
OPERATIONS = ("set", "get", "increment", "list")


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list (0 if empty)."""
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(p / 100 * len(sorted_values)))]


def report(name: str, latencies: list[float], errors: int, elapsed: float) -> None:
    latencies.sort()
    count = len(latencies) + errors
    rate = count / elapsed if elapsed > 0 else 0.0
    p50, p95, p99 = (percentile(latencies, p) * 1000 for p in (50, 95, 99))
    print(f"{name:<10} {count:>9} {errors:>7} {rate:>10.0f} {p50:>8.2f} {p95:>8.2f} {p99:>8.2f}")


def header(what: str, unit: str) -> None:
    print(
        f"{'operation':<10} {what:>9} {'errors':>7} {unit:>10} {'p50 ms':>8} "
        f"{'p95 ms':>8} {'p99 ms':>8}"
    )


# --- Setup: database, migrations, API key ----------------------------------------------------


def ensure_database() -> None:
    """Create the bench database if missing (CREATE DATABASE cannot run in a transaction)."""
    name = urlsplit(DATABASE_URL).path.lstrip("/")
    maintenance = urlsplit(DATABASE_URL)._replace(path="/postgres").geturl()
    with psycopg.connect(maintenance, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def manage(*args: str) -> str:
    env = {**os.environ, **ENV}
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.exit(f"manage.py {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def versions() -> tuple[str, str]:
    with psycopg.connect(DATABASE_URL) as conn:
        postgres = conn.execute("SHOW server_version").fetchone()[0]
    client = redis.Redis.from_url(REDIS_URL)
    redis_version = client.info("server")["redis_version"]
    client.close()
    return postgres, redis_version


def forget_redis_keys() -> None:
    """Remove the hourly counters this run left under the bench prefix."""
    client = redis.Redis.from_url(REDIS_URL)
    for name in client.scan_iter(match=f"{REDIS_PREFIX}:*", count=1000):
        client.delete(name)
    client.close()


# --- HTTP mode --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(port: int, workers: int, threads: int, log) -> subprocess.Popen:
    options = f"--bind 127.0.0.1:{port} --workers {workers} --threads {threads}".split()
    command = [sys.executable, "-m", "gunicorn", "thisdb_site.wsgi", *options]
    server = subprocess.Popen(
        command, cwd=ROOT, env={**os.environ, **ENV}, stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 20  # bounded wait for the workers to boot
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {server.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/v1/")
            conn.getresponse().read()  # any answer (403 without a key) means it serves
            conn.close()
            return server
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not answer within 20 s")


def stop_gunicorn(server: subprocess.Popen) -> None:
    server.terminate()  # SIGTERM: the master stops its workers gracefully
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def request(port, method, path, api_key, body=None) -> tuple[int, bytes]:
    """One request on a fresh connection, for setup (not measured)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers={"X-Api-Key": api_key})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def client_load(job: tuple) -> tuple[list[float], int, str, float, float]:
    """One client process: `op` requests on one keep-alive connection until the time or count
    runs out. Returns latencies of the 200s, errors, the first error, start and end times."""
    op, port, api_key, bucket, client, clients, seconds, max_requests, value = job
    headers = {"X-Api-Key": api_key, "Content-Type": "application/octet-stream"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    latencies: list[float] = []
    errors, first_error, i = 0, "", 0
    start = time.monotonic()
    deadline = start + seconds
    while i < max_requests and time.monotonic() < deadline:
        n = i * clients + client  # each client its own keys and seed keys
        i += 1
        if op == "seed":
            method, path, body = "POST", f"/v1/{bucket}/seed-{n:05d}", value
        elif op == "set":
            method, path, body = "POST", f"/v1/{bucket}/set-{n}", value
        elif op == "get":
            method, path, body = "GET", f"/v1/{bucket}/seed-{n % SEED_KEYS:05d}", None
        elif op == "increment":
            method, path, body = "PATCH", f"/v1/{bucket}/counter-{n % COUNTERS}", b"+1"
        else:
            method, path, body = "GET", f"/v1/{bucket}?limit=100&prefix=seed-", None
        sent = time.perf_counter()
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            content = response.read()  # read it all, or the connection cannot be reused
            status = response.status
        except (OSError, http.client.HTTPException) as exc:
            status, content = 0, repr(exc).encode()
            conn.close()  # http.client reconnects on the next request
        if status == 200:
            latencies.append(time.perf_counter() - sent)
        else:
            errors += 1
            first_error = first_error or f"{status} {content[:200]!r}"
    conn.close()
    return latencies, errors, first_error, start, time.monotonic()


def run_op(pool, op, args, port, api_key, bucket, seconds, max_requests, value):
    jobs = [
        (op, port, api_key, bucket, c, args.concurrency, seconds, max_requests, value)
        for c in range(args.concurrency)
    ]
    results = pool.map(client_load, jobs)
    latencies = [lat for result in results for lat in result[0]]
    errors = sum(result[1] for result in results)
    elapsed = max(r[4] for r in results) - min(r[3] for r in results)  # monotonic: system-wide
    first_error = next((r[2] for r in results if r[2]), "")
    return latencies, errors, elapsed, first_error


def bench_http(args) -> None:
    port = free_port()
    api_key = manage("createapikey", "bench", "--create-user").strip().splitlines()[-1]
    log = tempfile.TemporaryFile(mode="w+")
    server = start_gunicorn(port, args.workers, args.threads, log)
    bucket = None
    try:
        status, body = request(port, "POST", "/v1/", api_key, b"")
        if status != 200:
            raise RuntimeError(f"creating a bucket: {status} {body!r}")
        bucket = body.decode().strip()
        value = b"v" * args.value_bytes
        print(
            f"server   gunicorn on 127.0.0.1:{port}, {args.workers} workers x "
            f"{args.threads} threads; {args.concurrency} client processes, keep-alive; "
            f"the clients share the {os.cpu_count()} CPUs with the server, PostgreSQL and "
            f"Redis\n"
        )
        with multiprocessing.Pool(args.concurrency) as pool:
            # Seed the keys that get and list read: count-bounded, not measured.
            per_client = -(-SEED_KEYS // args.concurrency)
            _, errors, _, first = run_op(
                pool, "seed", args, port, api_key, bucket, 60, per_client, value
            )
            if errors:
                raise RuntimeError(f"seeding failed: {errors} errors, first {first}")
            header("requests", "req/s")
            increments = 0
            for op in OPERATIONS:
                latencies, errors, elapsed, first = run_op(
                    pool, op, args, port, api_key, bucket, args.seconds, MAX_REQUESTS, value
                )
                report(op, latencies, errors, elapsed)
                if first:
                    print(f"           first error: {first}")
                if op == "increment":
                    increments = len(latencies)
        total = 0
        for c in range(COUNTERS):
            status, body = request(port, "GET", f"/v1/{bucket}/counter-{c}", api_key)
            total += int(body) if status == 200 else 0
        print(f"\ncounters sum to {total}; {increments} increments answered 200")
    except Exception:
        log.seek(0)
        print("gunicorn log (tail):\n" + log.read()[-3000:], file=sys.stderr)
        raise
    finally:
        if bucket:  # the bench database keeps no data between runs
            request(port, "DELETE", f"/v1/{bucket}", api_key)
        stop_gunicorn(server)
        log.close()


# --- In-process mode --------------------------------------------------------------------------


def bench_in_process(args) -> None:
    os.environ.update(ENV)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "thisdb_site.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from api import operations
    from api.models import Bucket

    owner, _ = get_user_model().objects.get_or_create(username="bench")
    bucket = Bucket.objects.create(owner=owner).id
    value = b"v" * args.value_bytes
    try:
        for n in range(SEED_KEYS):
            operations.set_value(bucket, f"seed-{n:05d}", value, None, timezone.now())
        calls = {
            "set": lambda n: operations.set_value(bucket, f"set-{n}", value, None, timezone.now()),
            "get": lambda n: operations.get_value(
                bucket, f"seed-{n % SEED_KEYS:05d}", timezone.now()
            ),
            "increment": lambda n: operations.increment(
                bucket, f"counter-{n % COUNTERS}", 1, None, timezone.now()
            ),
            "list": lambda n: operations.list_page(
                bucket, prefix="seed-", after=None, limit=101, with_values=False, now=timezone.now()
            ),
        }
        print("one thread, Django's connection, autocommit: one statement per call\n")
        header("calls", "stmts/s")
        for op, call in calls.items():
            latencies: list[float] = []
            start = time.monotonic()
            deadline = start + args.seconds
            n = 0
            while n < MAX_REQUESTS and time.monotonic() < deadline:
                sent = time.perf_counter()
                call(n)
                latencies.append(time.perf_counter() - sent)
                n += 1
            report(op, latencies, 0, time.monotonic() - start)
    finally:
        Bucket.objects.filter(id=bucket).delete()  # cascades to its keys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5, help="duration of each operation")
    parser.add_argument("--concurrency", type=int, default=8, help="client processes")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument("--value-bytes", type=int, default=100, help="size of each set value")
    parser.add_argument(
        "--in-process", action="store_true", help="call api.operations directly, no HTTP"
    )
    args = parser.parse_args()
    if min(args.seconds, args.concurrency, args.workers, args.threads, args.value_bytes) <= 0:
        parser.error("every figure must be positive")

    ensure_database()
    manage("migrate", "--noinput")
    postgres, redis_version = versions()
    print(
        f"ThisDB v1 API benchmark ({'in-process' if args.in_process else 'HTTP'}), "
        f"{args.seconds:g} s per operation"
    )
    print(f"machine  {os.cpu_count()} CPUs; PostgreSQL {postgres}; Redis {redis_version}")
    print(f"database {DATABASE_URL}; Redis prefix {REDIS_PREFIX}")
    if not args.in_process:  # in-process calls skip the Redis limits altogether
        print(
            "limits   THISDB_KEY_WRITES_PER_SECOND=0 (1 write/s per key off) and "
            "THISDB_REQUESTS_PER_HOUR=100000000, so no request is refused with 429"
        )
    print(
        f"load     set: new keys, {args.value_bytes}-byte values; get: {SEED_KEYS} seeded keys; "
        f"increment: +1 on {COUNTERS} counters; list: 100 keys by prefix"
    )
    try:
        if args.in_process:
            bench_in_process(args)
        else:
            bench_http(args)
    finally:
        forget_redis_keys()


if __name__ == "__main__":
    main()
