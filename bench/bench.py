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
    with open(log, "ab") as output:
        server = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, **ENV},
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
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{app} did not answer; see {log}") from None
                time.sleep(0.2)
        yield port, worker_pids(server.pid)
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


def children(pid: int) -> list[int]:
    done = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(child) for child in done.stdout.split()]


def worker_pids(make: int) -> list[int]:
    """granian's worker processes: make runs granian (its shell exec's into it), granian its
    workers."""
    return [worker for granian in children(make) for worker in children(granian)]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# --- wrk ----------------------------------------------------------------------------------------


def wrk(
    port: int, path: str, seconds: float, connections: int, headers: dict, script=None, tag="run"
) -> dict:
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{int(seconds)}s",
        "--latency",
        "--timeout",
        "10s",
    ]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    if script:
        command += ["-s", str(WRK / script)]
    command.append(f"http://127.0.0.1:{port}{path}")
    done = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "BENCH_TAG": tag}
    )
    out = done.stdout
    if "Requests/sec" not in out:
        raise RuntimeError(f"wrk failed: {' '.join(command)}\n{out}{done.stderr}")
    figures = {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "errors": int(m.group(1))
        if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out))
        else 0,
        "command": " ".join(command),
    }
    for p in (50, 99):
        value, unit = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out).groups()
        figures[f"p{p}"] = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    return figures


def interleaved(floor_port, product_port, rounds, run) -> dict:
    """run(port, round, who) for floor and product, A/B then B/A, ...; their mean figures."""
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
    return merged


# --- The run ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5, help="per wrk run (default 5)")
    parser.add_argument("--rounds", type=int, default=2, help="A/B rounds per scenario")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="no 1M-key bucket, sweep or memory")
    parser.add_argument(
        "--save-baseline",
        action="store_true",
        help="keep this run's figures as the 'before' of later runs",
    )
    args = parser.parse_args()
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
            if not args.quick:
                fill(conn, buckets["list1m"], 1_000_000)
            conn.execute("ANALYZE api_item")
        print(
            f"product and floor: granian, {args.workers} workers x {args.threads} threads; "
            f"wrk -t1 -c{args.connections}, {args.rounds} rounds of {args.seconds:g} s each\n"
        )

        def scenario(name, path, script=None, headers=None):
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

            result = interleaved(floor, port, args.rounds, run)
            report["scenarios"][name] = result
            print_row(name, result)

        print_header()
        scenario("get", f"/v1/{buckets['get']}/k")
        scenario("set", f"/v1/{buckets['set']}", "set.lua")
        scenario("incr", f"/v1/{buckets['incr']}", "incr.lua")
        scenario("mixed", f"/v1/{buckets['mixed']}", "mixed.lua")
        scenario("token get", f"/v1/{buckets['get']}/k", headers={"X-Token": token.decode()})
        scenario("list 10k", f"/v1/{buckets['list10k']}?values=true&limit=1000")
        if not args.quick:
            scenario("list 1M", f"/v1/{buckets['list1m']}?values=true&limit=1000")
            report["list_ratio"] = (
                report["scenarios"]["list 10k"]["product"]["rps"]
                / report["scenarios"]["list 1M"]["product"]["rps"]
            )
            print(
                f"\nlisting the 1,000,000-key bucket takes {report['list_ratio']:.2f}x the time of "
                "the 10,000-key one (target: within 1.5x)"
            )
            report["memory"] = memory(port, pids, auth, buckets["list1m"], args)
            report["sweep"] = sweep(port, auth, buckets, args)
    report["seconds"] = time.time() - started
    forget_redis_keys()
    if args.save_baseline:
        BASELINE.write_text(json.dumps(report, indent=1))
    write_results(report)
    print(f"\nwritten: {RESULTS.relative_to(ROOT)}")


def print_header() -> None:
    print(
        f"{'scenario':<10} {'floor r/s':>10} {'p50':>7} {'p99':>7}   {'API r/s':>9} {'p50':>7} "
        f"{'p99':>7}  {'ratio':>6}  errors"
    )


def print_row(name: str, r: dict) -> None:
    f, p = r["floor"], r["product"]
    print(
        f"{name:<10} {f['rps']:>10.0f} {f['p50']:>6.2f}ms {f['p99']:>6.2f}ms  {p['rps']:>9.0f} "
        f"{p['p50']:>6.2f}ms {p['p99']:>6.2f}ms  {r['ratio']:>6.2f}  {p['errors'] + f['errors']}"
    )


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
import json, os, time, django
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
                  "statements": len(times), "longest": max(times)}))
"""


def sweep(port, auth, buckets, args) -> dict:
    """Sweep 1,000,000 expired keys as beat's task does, while GETs run beside it."""
    with database_connection() as conn:
        fill(conn, buckets["sweep"], 1_000_000, prefix="x", expired=True)
        conn.execute("ANALYZE api_item")
    path = f"/v1/{buckets['get']}/k"
    baseline = [wrk(port, path, 2, args.connections, auth)["p99"] for _ in range(3)]
    process = subprocess.Popen(
        [sys.executable, "-c", SWEEP_CODE],
        cwd=ROOT,
        env={**os.environ, **ENV},
        stdout=subprocess.PIPE,
        text=True,
    )
    during = []
    while process.poll() is None:
        during.append(wrk(port, path, 2, args.connections, auth)["p99"])
    result = json.loads(process.stdout.read())
    result["rows_per_second"] = result["deleted"] / result["seconds"]
    result["get_p99_without"] = statistics.median(baseline)
    result["get_p99_during"] = max(during) if during else None
    print(
        f"\nsweep: {result['deleted']:,} expired keys in {result['seconds']:.1f} s = "
        f"{result['rows_per_second']:,.0f} rows/s (target 50,000), {result['statements']} "
        f"statements, the longest {result['longest'] * 1000:.0f} ms (target 250); GET p99 "
        f"{result['get_p99_without']:.2f} ms without, up to "
        f"{result['get_p99_during'] or 0:.2f} ms during it (target: within 2x)"
    )
    return result


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
        f"{report['args']['seconds']:g} s per scenario.",
        "",
        "| scenario | floor req/s | floor p50 / p99 ms | API req/s | API p50 / p99 ms | ratio "
        "| target |" + (" before |" if before else ""),
        "|---|---|---|---|---|---|---|" + ("---|" if before else ""),
    ]
    for name, r in report["scenarios"].items():
        f, p = r["floor"], r["product"]
        target = TARGETS.get(name)
        row = (
            f"| {name} | {f['rps']:,.0f} | {f['p50']:.2f} / {f['p99']:.2f} | {p['rps']:,.0f} | "
            f"{p['p50']:.2f} / {p['p99']:.2f} | **{r['ratio']:.2f}** | "
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
            f"statements, the longest {s['longest'] * 1000:.0f} ms (target 250). GET p99: "
            f"{s['get_p99_without']:.2f} ms without the sweep, at most "
            f"{s['get_p99_during'] or 0:.2f} ms during it (target: within 2x)."
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
    lines += ["Commands (product; the floor's are the same on its port):", "", "```"]
    lines += [r["product"]["command"] for r in report["scenarios"].values()]
    lines += ["```", ""]
    extra = Path(__file__).resolve().parent / "NOTES.md"
    if extra.exists():
        lines += [extra.read_text().strip(), ""]
    RESULTS.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
