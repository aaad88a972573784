"""`make bench`: the API's speed on the production web tier, against its floor.

Starts `make serve` (the product) and the same server on bench.floor (a bare Django view doing
one pipelined Redis round trip and one SQL statement), both on PostgreSQL and Redis, loads data,
and drives each scenario with wrk from loopback, floor and product interleaved (A/B/A/B), so the
ratios compare figures of the same minutes. Then: the sweep of 1,000,000 expired keys (with GET's
p99 while it runs), the resident size of the web workers, keys and ops per second by transactions
against single sets, watch streams (latency, memory, the requests beside them), and bulk
transfers (export and import against PostgreSQL's COPY). Prints a
table and writes bench/RESULTS.md. Asserts nothing: targets are reported, not tested.

    .venv/bin/python bench/bench.py --help
"""

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

# Run as a script (`make bench`): the project's root on the path, for the bench package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bulk import bulk  # noqa: E402
from bench.load import Figures, interleaved, wrk  # noqa: E402
from bench.memory import memory  # noqa: E402
from bench.metrics import metrics_cost  # noqa: E402
from bench.results import (  # noqa: E402
    BASELINE,
    CONTROL,
    RESULTS,
    TARGETS,
    print_header,
    print_row,
    write_results,
)
from bench.serving import compare_servers, pool_sizes, scaling  # noqa: E402
from bench.stack import (  # noqa: E402
    ROOT,
    VALUE,
    call,
    database_connection,
    fill,
    forget_redis_keys,
    fresh_database,
    manage,
    serving,
)
from bench.sweep import sweep  # noqa: E402
from bench.transactions import transactions  # noqa: E402
from bench.watch import watch  # noqa: E402

SECTIONS = (
    "requests",
    "memory",
    "sweep",
    "transactions",
    "watch",
    "bulk",
    "servers",
    "workers",
    "pool",
    "metrics",
)
# Run only when asked (`--only metrics`): its figures are printed, not written to RESULTS.md.
ON_REQUEST = ("metrics",)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5, help="per wrk run (default 5)")
    # Four rounds: with two, a ratio moved by up to 0.05 from run to run on 2 cores.
    parser.add_argument("--rounds", type=int, default=4, help="A/B rounds per scenario (4)")
    # The scenarios with a target, and the floor-against-floor control, take twice as many: even
    # two identical floors measured 0.95 to 1.03 of each other in 4 rounds (bench/NOTES.md).
    parser.add_argument(
        "--target-rounds",
        type=int,
        default=8,
        help="A/B rounds of get, set, incr, A/A and transactions (8)",
    )
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument(
        "--threads", type=int, default=2, help="per worker (default 2, as make serve)"
    )
    parser.add_argument(
        "--only",
        default=",".join(s for s in SECTIONS if s not in ON_REQUEST),
        help=f"comma-separated sections to run, of {','.join(SECTIONS)} (default: all but "
        f"{','.join(ON_REQUEST)})",
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
    report: dict[str, Any] = {"args": vars(args), "scenarios": {}}

    with (
        serving("thisdb_site.asgi:application", args.workers, args.threads, log) as (port, pids),
        serving("bench.floor.asgi:application", args.workers, args.threads, log) as (floor, _),
        # A second floor, for the control: how far a ratio moves when nothing differs.
        serving("bench.floor.asgi:application", args.workers, args.threads, log) as (floor2, _),
    ):
        auth = {"X-Api-Key": key}
        buckets: dict[str, str] = {}
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

        def scenario(
            name: str,
            path: str,
            script: str | None = None,
            headers: dict[str, str] | None = None,
            against: int | None = None,
        ) -> None:
            rounds = args.target_rounds if name in TARGETS or against else args.rounds

            def run(port_: int, n: int, who: str) -> Figures:
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
        if "transactions" in only:
            report["transactions"] = transactions(port, auth, args)
        if "watch" in only:
            report["watch"] = watch(port, floor, pids, auth, buckets, args)
        if "bulk" in only:
            report["bulk"] = bulk(port, pids, auth, args)
        if "metrics" in only:
            report["metrics"] = metrics_cost(port, auth, buckets, args, log)
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
    # The run's figures as data too, to write RESULTS.md again without running again.
    (ROOT / "var" / "bench-report.json").write_text(json.dumps(report, indent=1))
    if only - set(ON_REQUEST):
        write_results(report, only)
        print(f"\nwritten: {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
