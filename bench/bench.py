"""`make bench`: the API's speed on the production web tier, against its floor.

Starts `make serve` (the product) and the same server on bench.floor (a bare Django view doing
one pipelined Redis round trip and one SQL statement), both on PostgreSQL and Redis, loads data,
and drives each scenario with wrk from loopback, floor and product interleaved (A/B/A/B), so the
ratios compare figures of the same minutes. Then: the sweep of 1,000,000 expired keys (with GET's
p99 while it runs) and the resident size of the web workers. Prints a table and writes
bench/RESULTS.md. Asserts nothing: targets are reported, not tested.

    .venv/bin/python bench/bench.py --help
"""

import argparse
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import redis
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
WRK = Path(__file__).resolve().parent / "wrk"
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
BASELINE = Path(__file__).resolve().parent / "baseline.json"
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://root@127.0.0.1:5432/thisdb_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
REDIS_PREFIX = "thisdb-bench"
VALUE = b"v" * 100  # every seeded value: 100 bytes
ENV = {
    "DATABASE_URL": DATABASE_URL,
    "REDIS_URL": REDIS_URL,
    "THISDB_REDIS_PREFIX": REDIS_PREFIX,
    # The hourly limit would refuse a benchmark's traffic: raised out of the way. The write
    # rule stays on (1 per key per second): every write goes to a new key.
    "THISDB_REQUESTS_PER_HOUR": "1000000000",
    "THISDB_MAX_KEYS_PER_BUCKET": "100000000",
    "THISDB_MAX_STORED_BYTES": str(1 << 40),
    "DEBUG": "false",
}
TARGETS = {"get": 0.85, "set": 0.85, "incr": 0.8}
CONTROL = "get A/A"  # the floor against a second floor: the noise of a ratio, with no difference
SECTIONS = ("requests", "memory", "sweep", "servers", "workers", "pool")


# --- Setup ------------------------------------------------------------------------------------


def database_connection(dbname: str | None = None):
    url = urlsplit(DATABASE_URL)
    if dbname:
        url = url._replace(path=f"/{dbname}")
    return psycopg.connect(url.geturl(), autocommit=True)


def fresh_database() -> None:
    name = urlsplit(DATABASE_URL).path.lstrip("/")
    with database_connection("postgres") as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def manage(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, **ENV},
        capture_output=True,
        text=True,
    )
    if done.returncode:
        sys.exit(f"manage.py {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def fill(conn, bucket: str, count: int, prefix: str = "k", expired: bool = False) -> None:
    """`count` keys <prefix>0000000.. of 100 bytes, in one INSERT ... SELECT."""
    expires = "now() - interval '1 minute'" if expired else "NULL"
    conn.execute(
        "INSERT INTO api_item (bucket_id, key, value, expires_at, updated_at) "
        f"SELECT %s, %s || lpad(i::text, 7, '0'), %s, {expires}, now() "
        "FROM generate_series(0, %s - 1) AS i",
        [bucket, prefix, VALUE, count],
    )


def forget_redis_keys() -> None:
    client = redis.Redis.from_url(REDIS_URL)
    for name in client.scan_iter(match=f"{REDIS_PREFIX}:*", count=1000):
        client.delete(name)
    client.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(port: int, method: str, path: str, headers: dict, body: bytes | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read(), response.getheader("X-Next-Cursor")
    finally:
        conn.close()


@contextmanager
def serving(app: str, workers: int, threads: int, log: Path):
    """`make serve` with SERVE_APP=app; yields (port, the workers' pids)."""
    port = free_port()
    command = [
        "make",
        "-s",
        "serve",
        f"ADDR=127.0.0.1:{port}",
        f"WEB_WORKERS={workers}",
        f"WEB_THREADS={threads}",
        f"SERVE_APP={app}",
    ]
    # make runs granian (its shell exec's into it), granian its workers.
    with running(command, port, log, {}, lambda pid: grandchildren(pid)) as pids:
        yield port, pids


@contextmanager
def running(command: list[str], port: int, log: Path, env: dict, workers):
    """Runs a server until it answers on `port`; yields workers(its pid)."""
    with open(log, "ab") as output:
        server = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, **ENV, **env},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if call(port, "GET", "/v1/x", {})[0]:
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"{command[0]} did not answer; see {log}") from None
                time.sleep(0.2)
        yield workers(server.pid)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=45)  # granian gives its workers 30 s (--workers-kill-timeout)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def children(pid: int) -> list[int]:
    done = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(child) for child in done.stdout.split()]


def grandchildren(pid: int) -> list[int]:
    return [grandchild for child in children(pid) for grandchild in children(child)]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# --- wrk ----------------------------------------------------------------------------------------


def wrk(
    port: int,
    path: str,
    seconds: float,
    connections: int,
    headers: dict,
    script=None,
    tag="run",
    until: subprocess.Popen | None = None,
) -> dict:
    """wrk's figures for `seconds`, or, with `until`, for as long as that process runs (wrk
    stops at SIGINT and still reports)."""
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{int(seconds)}s",
        "--latency",
        "--timeout",
        "10s",
    ]
    shown = list(command)  # the command as RESULTS.md prints it: no secret, no port
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
        shown += ["-H", f"'{name}: ${name.upper().replace('-', '_')}'"]
    if script:
        command += ["-s", str(WRK / script)]
        shown += ["-s", f"bench/wrk/{script}"]
    command.append(f"http://127.0.0.1:{port}{path}")
    shown.append(f"'http://127.0.0.1:$PORT{path}'")
    runner = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "BENCH_TAG": tag},
    )
    if until is not None:
        until.wait()
        runner.send_signal(signal.SIGINT)
    out, err = runner.communicate()
    if "Requests/sec" not in out:
        raise RuntimeError(f"wrk failed: {' '.join(command)}\n{out}{err}")
    figures = {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "errors": int(m.group(1))
        if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out))
        else 0,
        "command": " ".join(shown),
    }
    for p in (50, 99):
        value, unit = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out).groups()
        figures[f"p{p}"] = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    return figures


def checkpoint() -> None:
    """A PostgreSQL checkpoint now, so that none falls inside the next runs (its timer restarts:
    checkpoint_timeout is 5 minutes by default) and the WAL of earlier scenarios is written out.
    A checkpoint inside one side's run would slow that side alone."""
    with database_connection() as conn:
        conn.execute("CHECKPOINT")


def checkpoints_so_far() -> int:
    """How many checkpoints PostgreSQL has made (timed or requested) since its statistics began."""
    with database_connection() as conn:
        row = conn.execute(
            "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter"
        ).fetchone()
    return int(row[0])


def interleaved(floor_port, product_port, rounds, run) -> dict:
    """run(port, round, who) for floor and product, A/B then B/A, ...; their mean figures, the
    ratio of the means and each round's own ratio (how far the rounds agree)."""
    checkpoint()
    results = {"floor": [], "product": []}
    for n in range(rounds):
        order = [("floor", floor_port), ("product", product_port)]
        if n % 2:
            order.reverse()
        for who, port in order:
            results[who].append(run(port, n, who))
    merged = {}
    for who, runs in results.items():
        merged[who] = {key: statistics.fmean(r[key] for r in runs) for key in ("rps", "p50", "p99")}
        merged[who]["errors"] = sum(r["errors"] for r in runs)
        merged[who]["requests"] = sum(r["requests"] for r in runs)
        merged[who]["command"] = runs[0]["command"]
    merged["ratio"] = merged["product"]["rps"] / merged["floor"]["rps"]
    merged["round_ratios"] = [
        p["rps"] / f["rps"] for f, p in zip(results["floor"], results["product"], strict=True)
    ]
    return merged


# --- The run ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5, help="per wrk run (default 5)")
    # Four rounds: with two, a ratio moved by up to 0.05 from run to run on 2 cores.
    parser.add_argument("--rounds", type=int, default=4, help="A/B rounds per scenario (4)")
    # The scenarios with a target, and the floor-against-floor control, take twice as many: even
    # two identical floors measured 0.95 to 1.03 of each other in 4 rounds (bench/NOTES.md).
    parser.add_argument(
        "--target-rounds", type=int, default=8, help="A/B rounds of get, set, incr and A/A (8)"
    )
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument(
        "--threads", type=int, default=2, help="per worker (default 2, as make serve)"
    )
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to run, of {','.join(SECTIONS)} (default: all)",
    )
    parser.add_argument("--quick", action="store_true", help="--only requests")
    parser.add_argument(
        "--save-baseline",
        action="store_true",
        help="keep this run's figures as the 'before' of later runs",
    )
    args = parser.parse_args()
    only = {"requests"} if args.quick else set(args.only.split(","))
    if only - set(SECTIONS):
        parser.error(f"unknown sections: {', '.join(sorted(only - set(SECTIONS)))}")
    big = bool(only & {"requests", "memory"}) and not args.quick  # the 1,000,000-key bucket
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: apt-get install wrk (Debian's package)")

    started = time.time()
    fresh_database()
    manage("migrate", "--noinput")
    key = (
        manage("createapikey", "bench", "--create-user", "--name", "bench").strip().splitlines()[-1]
    )
    forget_redis_keys()
    log = ROOT / "var" / "bench-server.log"
    log.parent.mkdir(exist_ok=True)
    log.write_bytes(b"")
    report: dict = {"args": vars(args), "scenarios": {}}

    with (
        serving("thisdb_site.asgi:application", args.workers, args.threads, log) as (port, pids),
        serving("bench.floor.asgi:application", args.workers, args.threads, log) as (floor, _),
        # A second floor, for the control: how far a ratio moves when nothing differs.
        serving("bench.floor.asgi:application", args.workers, args.threads, log) as (floor2, _),
    ):
        auth = {"X-Api-Key": key}
        buckets = {}
        for name in ("get", "set", "incr", "mixed", "list10k", "list1m", "sweep"):
            status, body, _ = call(port, "POST", "/v1/", auth, b"default_ttl=0")
            assert status == 200, body
            buckets[name] = body.decode()
        status, token, _ = call(
            port,
            "POST",
            "/v1/tokens",
            auth,
            f"bucket={buckets['get']}&prefix=&permissions=read&ttl=86400".encode(),
        )
        assert status == 200, token
        with database_connection() as conn:
            conn.execute(
                "INSERT INTO api_item (bucket_id, key, value, updated_at) "
                "VALUES (%s, 'k', %s, now())",
                [buckets["get"], VALUE],
            )
            fill(conn, buckets["mixed"], 1000, prefix="m")
            conn.execute(
                "UPDATE api_item SET key = 'm' || right(key, 4) WHERE bucket_id = %s",
                [buckets["mixed"]],
            )
            fill(conn, buckets["list10k"], 10_000)
            if big:
                fill(conn, buckets["list1m"], 1_000_000)
            conn.execute("ANALYZE api_item")
        print(
            f"product and floor: granian, {args.workers} workers x {args.threads} threads; "
            f"wrk -t1 -c{args.connections}, {args.rounds} rounds of {args.seconds:g} s each "
            f"({args.target_rounds} for the scenarios with a target and the control)\n"
        )

        def scenario(name, path, script=None, headers=None, against=None):
            rounds = args.target_rounds if name in TARGETS or against else args.rounds
            def run(port_, n, who):
                return wrk(
                    port_,
                    path,
                    args.seconds,
                    args.connections,
                    headers or auth,
                    script,
                    tag=f"{who}{n}",
                )

            result = interleaved(floor, against or port, rounds, run)
            report["scenarios"][name] = result
            print_row(name, result)

        if "requests" in only:
            print_header()
            scenario("get", f"/v1/{buckets['get']}/k")
            # The control: the floor against a second floor, the same GET (the key is read by
            # SQL, so the API key's header is only sent along).
            scenario(CONTROL, f"/v1/{buckets['get']}/k", against=floor2)
            scenario("set", f"/v1/{buckets['set']}", "set.lua")
            scenario("incr", f"/v1/{buckets['incr']}", "incr.lua")
            scenario("mixed", f"/v1/{buckets['mixed']}", "mixed.lua")
            scenario("token get", f"/v1/{buckets['get']}/k", headers={"X-Token": token.decode()})
            scenario("list 10k", f"/v1/{buckets['list10k']}?values=true&limit=1000")
        if "requests" in only and big:
            scenario("list 1M", f"/v1/{buckets['list1m']}?values=true&limit=1000")
            report["list_ratio"] = (
                report["scenarios"]["list 10k"]["product"]["rps"]
                / report["scenarios"]["list 1M"]["product"]["rps"]
            )
            print(
                f"\nlisting the 1,000,000-key bucket takes {report['list_ratio']:.2f}x the time of "
                "the 10,000-key one (target: within 1.5x)"
            )
        if "memory" in only and big:
            report["memory"] = memory(port, pids, auth, buckets["list1m"], args)
        if "sweep" in only:
            report["sweep"] = sweep(port, auth, buckets, args)
    if "servers" in only:
        report["servers"] = compare_servers(auth, buckets, args, log)
    if "workers" in only:
        report["scaling"] = scaling(auth, buckets, args, log)
    if "pool" in only:
        report["pool"] = pool_sizes(auth, buckets, args, log)
    report["seconds"] = time.time() - started
    forget_redis_keys()
    if args.save_baseline:
        BASELINE.write_text(json.dumps(report, indent=1))
    write_results(report)
    print(f"\nwritten: {RESULTS.relative_to(ROOT)}")


def print_header() -> None:
    print(
        f"{'scenario':<10} {'floor r/s':>10} {'p50':>7} {'p99':>7}   {'API r/s':>9} {'p50':>7} "
        f"{'p99':>7}  {'ratio':>6}  {'rounds':>9}  errors"
    )


def print_row(name: str, r: dict) -> None:
    f, p = r["floor"], r["product"]
    print(
        f"{name:<10} {f['rps']:>10.0f} {f['p50']:>6.2f}ms {f['p99']:>6.2f}ms  {p['rps']:>9.0f} "
        f"{p['p50']:>6.2f}ms {p['p99']:>6.2f}ms  {r['ratio']:>6.2f}  {spread(r):>9}  "
        f"{p['errors'] + f['errors']}"
    )


def spread(r: dict) -> str:
    """The lowest and highest of the rounds' own ratios."""
    return f"{min(r['round_ratios']):.2f}-{max(r['round_ratios']):.2f}"


def memory(port, pids, auth, bucket, args) -> dict:
    """Workers' resident size now, after 100,000 requests in all, and after listing the
    1,000,000-key bucket page by page."""
    before = {pid: rss_mib(pid) for pid in pids}
    served = 0
    while served < 100_000:
        served += wrk(port, f"/v1/{bucket}?limit=10", 10, args.connections, auth)["requests"]
    after_requests = {pid: rss_mib(pid) for pid in pids}
    pages, cursor, keys = 0, None, 0
    path = f"/v1/{bucket}?values=true&limit=1000"
    while True:
        status, body, cursor = call(
            port, "GET", path + (f"&cursor={cursor}" if cursor else ""), auth
        )
        assert status == 200, body[:200]
        pages += 1
        keys += body.count(b"\n") + 1
        if not cursor:
            break
    after_listing = {pid: rss_mib(pid) for pid in pids}
    growth = max(after_listing[p] / after_requests[p] for p in pids) - 1
    print(
        f"\nworker RSS: {', '.join(f'{v:.0f}' for v in before.values())} MiB at start, "
        f"{', '.join(f'{v:.0f}' for v in after_requests.values())} MiB after {served:,} requests, "
        f"{', '.join(f'{v:.0f}' for v in after_listing.values())} MiB after listing {keys:,} keys "
        f"in {pages} pages: {growth:+.1%} (target: within 10%)"
    )
    return {
        "before": before,
        "after_requests": after_requests,
        "requests": served,
        "after_listing": after_listing,
        "pages": pages,
        "keys": keys,
        "growth": growth,
    }


SWEEP_CODE = """
import json, os, statistics, time, django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "thisdb_site.settings")
django.setup()
from django.db import connection
from django.utils import timezone
from api import operations
times = []
def timed(execute, sql, params, many, context):
    start = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        times.append(time.perf_counter() - start)
started = time.perf_counter()
with connection.execute_wrapper(timed):
    deleted = operations.sweep_expired_items(timezone.now())
print(json.dumps({"deleted": deleted, "seconds": time.perf_counter() - started,
                  "statements": len(times), "longest": max(times),
                  "longest_at": times.index(max(times)) + 1, "next": sorted(times)[-2:][0],
                  "median": statistics.median(times)}))
"""


def sweep(port, auth, buckets, args) -> dict:
    """Sweep 1,000,000 expired keys as beat's task does, while GETs run beside it."""
    with database_connection() as conn:
        fill(conn, buckets["sweep"], 1_000_000, prefix="x", expired=True)
        conn.execute("ANALYZE api_item")
    checkpoint()  # the fill's WAL is written out: the sweep pays for its own writes only
    checkpoints = checkpoints_so_far()
    path = f"/v1/{buckets['get']}/k"
    process = subprocess.Popen(
        [sys.executable, "-c", SWEEP_CODE],
        cwd=ROOT,
        env={**os.environ, **ENV},
        stdout=subprocess.PIPE,
        text=True,
    )
    # One wrk run from the sweep's start to its end: the p99 of every GET made meanwhile.
    during = wrk(port, path, 3600, args.connections, auth, until=process)
    result = json.loads(process.stdout.read())
    result["checkpoints"] = checkpoints_so_far() - checkpoints
    result["rows_per_second"] = result["deleted"] / result["seconds"]
    # Then as long again without the sweep: a p99 is compared with one of a run as long (a
    # longer run meets more stalls, sweep or none: bench/NOTES.md, items 10 and 13).
    seconds = max(2, round(result["seconds"]))
    result["get_p99_without"] = wrk(port, path, seconds, args.connections, auth)["p99"]
    result["get_p99_during"] = during["p99"]
    print(
        f"\nsweep: {result['deleted']:,} expired keys in {result['seconds']:.1f} s = "
        f"{result['rows_per_second']:,.0f} rows/s (target 50,000), {result['statements']} "
        f"statements (median {result['median'] * 1000:.0f} ms), the longest "
        f"{result['longest'] * 1000:.0f} ms (target 250; statement {result['longest_at']}, "
        f"the next longest {result['next'] * 1000:.0f} ms); GET p99 "
        f"{result['get_p99_without']:.2f} ms without, {result['get_p99_during']:.2f} ms over "
        f"the whole sweep (target: within 2x); {result['checkpoints']} checkpoints meanwhile"
    )
    return result


# --- Serving: server candidates, workers, pool size -----------------------------------------

GUNICORN = str(ROOT / ".venv" / "bin" / "gunicorn")
GRANIAN = str(ROOT / ".venv" / "bin" / "granian")


def candidates(port: int, workers: int, threads: int) -> dict:
    """Each server under the defences the hardening asks for, where it has them: name ->
    (command, environment). The pool is sized to the threads each one runs Django in."""
    bind = f"127.0.0.1:{port}"
    granian = [GRANIAN, "--http", "1", "--no-ws", "--host", "127.0.0.1", "--port", str(port)]
    granian += ["--workers", str(workers), "--runtime-threads", "1", "--log-level", "warning"]
    granian += ["--http1-header-read-timeout", "5000"]
    gunicorn = [GUNICORN, "-b", bind, "-w", str(workers), "--timeout", "30", "--log-level"]
    gunicorn += ["warning"]
    pool = {"THISDB_WEB_THREADS": str(threads)}
    return {
        "gunicorn sync": (
            [*gunicorn, "-k", "sync", "thisdb_site.wsgi:application"],
            {"THISDB_WEB_THREADS": "1"},
        ),
        "gunicorn gthread": (
            [*gunicorn, "-k", "gthread", "--threads", str(threads), "thisdb_site.wsgi:application"],
            pool,
        ),
        "granian WSGI": (
            [*granian, "--interface", "wsgi", "--blocking-threads", str(threads)]
            + ["thisdb_site.wsgi:application"],
            pool,
        ),
        "granian ASGI, Django's handler": (
            [*granian, "--interface", "asgi", "bench.django_asgi:application"],
            pool,
        ),
        "make serve (granian ASGI, our front)": (
            [*granian, "--interface", "asgi", "thisdb_site.asgi:application"],
            pool,
        ),
    }


def slow_clients(port: int, auth: dict, path: str, count: int = 200, seconds: float = 12) -> dict:
    """`count` connections sending their request head a byte every 2 s and `count` sending
    their body so; meanwhile a normal client GETs `path` on fresh connections. Its slowest
    answer and its failures."""
    slow = []
    for n in range(2 * count):
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            break
        if n % 2:
            sock.sendall(
                f"PUT {path}x{n} HTTP/1.1\r\nHost: b\r\nContent-Length: 1000\r\n".encode()
                + b"".join(f"{k}: {v}\r\n".encode() for k, v in auth.items())
                + b"\r\n"
            )
        else:
            sock.sendall(b"GET / HTTP/1.1\r\n")
        slow.append(sock)
    drip = b"X-A: 1\r\n"
    latencies, failures = [], 0
    started = last_drip = time.monotonic()
    while time.monotonic() - started < seconds:
        if time.monotonic() - last_drip >= 2:
            last_drip = time.monotonic()
            for n, sock in enumerate(slow):
                try:
                    sock.send(b"x" if n % 2 else drip[:1])
                except OSError:
                    pass
        start = time.monotonic()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", path, headers=auth)
            if conn.getresponse().status != 200:
                failures += 1
            conn.close()
            latencies.append(time.monotonic() - start)
        except OSError:
            failures += 1
        time.sleep(0.1)
    for sock in slow:
        sock.close()
    return {
        "opened": len(slow),
        "requests": len(latencies) + failures,
        "failures": failures,
        "slowest_ms": max(latencies) * 1000 if latencies else None,
    }


def compare_servers(auth, buckets, args, log) -> dict:
    """GET and SET on each candidate, the candidates taking turns round by round, then each
    one's slow-client probe."""
    names = list(candidates(0, args.workers, args.threads))
    figures: dict = {name: {"get": [], "set": []} for name in names}
    # Two rounds at most: the candidates differ by up to 3x, not by the 0.02 the ratios need.
    for n in range(min(args.rounds, 2)):
        for name in names if n % 2 == 0 else reversed(names):
            port = free_port()
            command, env = candidates(port, args.workers, args.threads)[name]
            with running(command, port, log, env, children):
                for scenario, path, script in (
                    ("get", f"/v1/{buckets['get']}/k", None),
                    ("set", f"/v1/{buckets['set']}", "set.lua"),
                ):
                    figures[name][scenario].append(
                        wrk(port, path, args.seconds, args.connections, auth, script, f"s{n}")
                    )
    results = {}
    print(f"\n{'server':<38} {'GET r/s':>8} {'p99':>7}  {'SET r/s':>8} {'p99':>7}  slow clients")
    for name in names:
        port = free_port()
        command, env = candidates(port, args.workers, args.threads)[name]
        with running(command, port, log, env, children):
            probe = slow_clients(port, auth, f"/v1/{buckets['get']}/k")
        row = {"slow": probe, "command": " ".join(command).replace(str(ROOT) + "/", "")}
        for scenario, runs in figures[name].items():
            row[scenario] = {k: statistics.fmean(r[k] for r in runs) for k in ("rps", "p99")}
            row[scenario]["errors"] = sum(r["errors"] for r in runs)
        results[name] = row
        print(
            f"{name:<38} {row['get']['rps']:>8.0f} {row['get']['p99']:>5.1f}ms  "
            f"{row['set']['rps']:>8.0f} {row['set']['p99']:>5.1f}ms  {slow_summary(probe)}"
        )
    return results


def slow_summary(probe: dict) -> str:
    if probe["failures"] == probe["requests"]:
        return f"{probe['opened']} slow: a normal client got no answer"
    return (
        f"{probe['opened']} slow: normal client's slowest {probe['slowest_ms']:.0f} ms, "
        f"{probe['failures']} of {probe['requests']} failed"
    )


def scaling(auth, buckets, args, log) -> dict:
    """GET from 1 and from 2 workers, product and floor."""
    results = {}
    for workers in (1, 2):
        with (
            serving("thisdb_site.asgi:application", workers, args.threads, log) as (port, _),
            serving("bench.floor.asgi:application", workers, args.threads, log) as (floor, _),
        ):

            def run(port_, n, who):
                path = f"/v1/{buckets['get']}/k"
                return wrk(port_, path, args.seconds, args.connections, auth, tag=f"{who}{n}")

            results[workers] = interleaved(floor, port, args.rounds, run)
    growth = results[2]["product"]["rps"] / results[1]["product"]["rps"]
    floor_growth = results[2]["floor"]["rps"] / results[1]["floor"]["rps"]
    print(
        f"\nGET with 1 worker: {results[1]['product']['rps']:,.0f} r/s (floor "
        f"{results[1]['floor']['rps']:,.0f}); with 2: {results[2]['product']['rps']:,.0f} r/s "
        f"(floor {results[2]['floor']['rps']:,.0f}): x{growth:.2f} (floor x{floor_growth:.2f})"
    )
    return {"by_workers": results, "growth": growth, "floor_growth": floor_growth}


def pool_sizes(auth, buckets, args, log) -> dict:
    """GET and SET at several threads per worker (the pool is as large), and the connections
    PostgreSQL saw."""
    results = {}
    print(f"\n{'threads':>7} {'GET r/s':>8} {'p99':>7}  {'SET r/s':>8} {'p99':>7}  connections")
    for threads in (1, 2, 3, 4, 8):
        with serving("thisdb_site.asgi:application", args.workers, threads, log) as (port, _):
            row = {}
            for scenario, path, script in (
                ("get", f"/v1/{buckets['get']}/k", None),
                ("set", f"/v1/{buckets['set']}", "set.lua"),
            ):
                r = wrk(port, path, args.seconds, args.connections, auth, script)
                row[scenario] = {"rps": r["rps"], "p99": r["p99"]}
            with database_connection() as conn:
                row["connections"] = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid()"
                ).fetchone()[0]
        results[threads] = row
        print(
            f"{threads:>7} {row['get']['rps']:>8.0f} {row['get']['p99']:>5.1f}ms  "
            f"{row['set']['rps']:>8.0f} {row['set']['p99']:>5.1f}ms  {row['connections']}"
        )
    return results


# --- bench/RESULTS.md -------------------------------------------------------------------------


def machine() -> dict:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    with database_connection() as conn:
        postgres = conn.execute("SHOW server_version").fetchone()[0]
    client = redis.Redis.from_url(REDIS_URL)
    redis_version = client.info("server")["redis_version"]
    client.close()
    import django
    import granian
    import rest_framework

    wrk_version = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout
    return {
        "cores": os.cpu_count(),
        "model": model,
        "python": platform.python_version(),
        "django": django.get_version(),
        "drf": rest_framework.VERSION,
        "granian": granian.__version__,
        "psycopg": psycopg.__version__,
        "redis-py": redis.__version__,
        "postgresql": postgres,
        "redis": redis_version,
        "wrk": wrk_version.split("[")[0].strip(),
    }


def write_results(report: dict) -> None:
    info = machine()
    before = json.loads(BASELINE.read_text()) if BASELINE.exists() else None
    lines = [
        "# Benchmark results",
        "",
        "Written by `make bench` (bench/bench.py); see bench/README.md for what is measured.",
        "",
        f"Machine: {info['cores']} cores, {info['model']}. Python {info['python']}, Django "
        f"{info['django']}, DRF {info['drf']}, granian {info['granian']}, psycopg "
        f"{info['psycopg']}, redis-py {info['redis-py']}, PostgreSQL {info['postgresql']}, Redis "
        f"{info['redis']}, {info['wrk']}.",
        "",
        f"Both servers: `make serve` (granian, {report['args']['workers']} workers x "
        f"{report['args']['threads']} threads), product `thisdb_site.asgi`, floor "
        f"`bench.floor.asgi`; {report['args']['rounds']} interleaved rounds of "
        f"{report['args']['seconds']:g} s per scenario "
        f"({report['args']['target_rounds']} for the scenarios "
        "with a target and the control), a PostgreSQL checkpoint before each. The ratio is the "
        "product's mean requests/s over the floor's; rounds: the lowest and highest of the "
        f"rounds' own ratios. `{CONTROL}` is the control: the floor against a second floor "
        "server (its figures in the API columns), the same GET; its ratio is how far a ratio "
        "of this run moves when nothing differs.",
        "",
        "| scenario | floor req/s | floor p50 / p99 ms | API req/s | API p50 / p99 ms | ratio "
        "| rounds | target |" + (" before |" if before else ""),
        "|---|---|---|---|---|---|---|---|" + ("---|" if before else ""),
    ]
    for name, r in report["scenarios"].items():
        f, p = r["floor"], r["product"]
        target = TARGETS.get(name)
        row = (
            f"| {name} | {f['rps']:,.0f} | {f['p50']:.2f} / {f['p99']:.2f} | {p['rps']:,.0f} | "
            f"{p['p50']:.2f} / {p['p99']:.2f} | **{r['ratio']:.2f}** | {spread(r)} | "
            f"{f'>= {target}' if target else '-'} |"
        )
        if before:
            old = before["scenarios"].get(name)
            row += f" {old['ratio']:.2f} |" if old else " - |"
        lines.append(row)
    lines.append("")
    if "list_ratio" in report:
        lines.append(
            f"Listing 1,000 keys with values from the 1,000,000-key bucket takes "
            f"{report['list_ratio']:.2f}x the time of the 10,000-key bucket (target 1.5x)."
        )
        lines.append("")
    if "sweep" in report:
        s = report["sweep"]
        lines.append(
            f"Sweep: {s['deleted']:,} expired keys in {s['seconds']:.1f} s = "
            f"{s['rows_per_second']:,.0f} rows/s (target 50,000) in {s['statements']} "
            f"statements, median {s['median'] * 1000:.0f} ms, the longest "
            f"{s['longest'] * 1000:.0f} ms (target 250; statement {s['longest_at']}, the next "
            f"longest {s['next'] * 1000:.0f} ms); {s['checkpoints']} checkpoints fell "
            f"inside it. GET p99: {s['get_p99_during']:.2f} ms over the whole sweep (one wrk run "
            f"from its start to its end), {s['get_p99_without']:.2f} ms in a run as long right "
            "after it (target: within 2x)."
        )
        lines.append("")
    if "memory" in report:
        m = report["memory"]
        lines.append(
            "Worker resident size (MiB, each worker): "
            f"{', '.join(f'{v:.0f}' for v in m['before'].values())} at start; "
            f"{', '.join(f'{v:.0f}' for v in m['after_requests'].values())} after "
            f"{m['requests']:,} requests; "
            f"{', '.join(f'{v:.0f}' for v in m['after_listing'].values())} after listing "
            f"{m['keys']:,} keys in {m['pages']} pages: {m['growth']:+.1%} (target: within 10%)."
        )
        lines.append("")
    if "servers" in report:
        lines += [
            f"Server candidates, {report['args']['workers']} workers, Django in "
            f"{report['args']['threads']} threads each where the server has threads (the pool "
            "as large), the candidates taking turns round by round; then each one with 200 "
            "slow-header and 200 slow-body connections open while a normal client reads:",
            "",
            "| server | GET req/s | GET p99 ms | SET req/s | SET p99 ms | under slow clients |",
            "|---|---|---|---|---|---|",
        ]
        for name, row in report["servers"].items():
            lines.append(
                f"| {name} | {row['get']['rps']:,.0f} | {row['get']['p99']:.1f} | "
                f"{row['set']['rps']:,.0f} | {row['set']['p99']:.1f} | "
                f"{slow_summary(row['slow'])} |"
            )
        lines += ["", "```"] + [row["command"] for row in report["servers"].values()]
        lines += ["```", ""]
    if "scaling" in report:
        sc = report["scaling"]
        one, two = sc["by_workers"][1], sc["by_workers"][2]
        lines.append(
            f"Workers: GET of one key at {one['product']['rps']:,.0f} req/s from 1 worker "
            f"(floor {one['floor']['rps']:,.0f}) and {two['product']['rps']:,.0f} from 2 "
            f"(floor {two['floor']['rps']:,.0f}): x{sc['growth']:.2f} (floor "
            f"x{sc['floor_growth']:.2f}), with wrk, PostgreSQL and Redis on the same 2 cores."
        )
        lines.append("")
    if "pool" in report:
        lines += [
            "Threads (and pool size) per worker, "
            f"{report['args']['workers']} workers; connections PostgreSQL held after the run:",
            "",
            "| threads | GET req/s | GET p99 ms | SET req/s | SET p99 ms | connections |",
            "|---|---|---|---|---|---|",
        ]
        for threads, row in report["pool"].items():
            lines.append(
                f"| {threads} | {row['get']['rps']:,.0f} | {row['get']['p99']:.1f} | "
                f"{row['set']['rps']:,.0f} | {row['set']['p99']:.1f} | {row['connections']} |"
            )
        lines.append("")
    lines += ["Commands (product; the floor's are the same on its port):", "", "```"]
    lines += [r["product"]["command"] for n, r in report["scenarios"].items() if n != CONTROL]
    lines += ["```", ""]
    extra = Path(__file__).resolve().parent / "NOTES.md"
    if extra.exists():
        lines += [extra.read_text().strip(), ""]
    RESULTS.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
