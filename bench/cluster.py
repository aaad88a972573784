"""`make bench-cluster`: the topology of `make cluster` (docs/scaling.md) measured from loopback.

GET of one key and SET of new keys through nginx, with both web nodes in its upstream and then
with one stopped (nginx sends everything to the other), in interleaved rounds (2, 1, 2, 1...);
and pgbench's read-only transactions straight to the PostgreSQL primary against the same
through its PgBouncer (transaction mode, simple protocol). Prints a table; asserts nothing.
Run it with the topology up; it leaves it as it found it.

    .venv/bin/python bench/cluster.py --help
"""

import argparse
import re
import statistics
import subprocess
import sys
from pathlib import Path

import httpx

# Run as a script: the project's root on the path, for the bench and tests packages.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.load import Figures, wrk  # noqa: E402
from tests.cluster.topology import (  # noqa: E402
    NGINX,
    WEB_PORTS,
    cluster,
    new_account,
    new_bucket,
)

NGINX_PORT = int(NGINX.rsplit(":", 1)[1])


def web_nodes(count: int) -> None:
    """Both web nodes up, or the second stopped."""
    if count == 2:
        cluster("web-start", str(WEB_PORTS[1]))
    else:
        cluster("web-stop", str(WEB_PORTS[1]))


def pgbench(port: int, seconds: int, clients: int) -> float:
    """pgbench's read-only transactions per second on 127.0.0.1:port (database pgbench)."""
    out = subprocess.run(
        [
            "pgbench",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-U",
            "postgres",
            "-S",
            "-M",
            "simple",
            "-n",
            "-c",
            str(clients),
            "-j",
            "1",
            "-T",
            str(seconds),
            "pgbench",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"tps = ([\d.]+)", out)
    assert match, out
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="per wrk run (default 10)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of 2 then 1 node")
    parser.add_argument("--connections", type=int, default=16, help="wrk's (default 16)")
    args = parser.parse_args()

    # The spec's 1,000 requests an hour would stop a benchmark at once: raised for this account.
    account = new_account(requests_per_hour=1_000_000_000)
    bucket = new_bucket(account)
    httpx.post(f"{NGINX}/v1/{bucket}/k", content=b"v" * 100, headers=account.headers)
    figures: dict[tuple[str, int], list[Figures]] = {}
    try:
        for round_ in range(args.rounds):
            for nodes in (2, 1):
                web_nodes(nodes)
                for name, path, script in (
                    ("GET", f"/v1/{bucket}/k", None),
                    ("SET", f"/v1/{bucket}", "set.lua"),
                ):
                    run = wrk(
                        NGINX_PORT,
                        path,
                        args.seconds,
                        args.connections,
                        account.headers,
                        script=script,
                        tag=f"{name}-{nodes}-{round_}",
                    )
                    figures.setdefault((name, nodes), []).append(run)
    finally:
        web_nodes(2)

    print(
        f"\nThrough nginx, wrk -t1 -c{args.connections}, {args.rounds} rounds of "
        f"{args.seconds} s (requests/s, mean; p50 and p99 ms of the last round; non-2xx):"
    )
    for name in ("GET", "SET"):
        one, two = figures[(name, 1)], figures[(name, 2)]
        rps1 = statistics.mean(r["rps"] for r in one)
        rps2 = statistics.mean(r["rps"] for r in two)
        print(
            f"  {name}: 1 node {rps1:,.0f} (p50 {one[-1]['p50']:.1f}, p99 {one[-1]['p99']:.1f}),"
            f" 2 nodes {rps2:,.0f} (p50 {two[-1]['p50']:.1f}, p99 {two[-1]['p99']:.1f}),"
            f" x{rps2 / rps1:.2f}; errors {sum(r['errors'] for r in one + two)}"
        )

    members = httpx.get("http://127.0.0.1:8441/cluster", timeout=5).json()["members"]
    primary_port = next(m["port"] for m in members if m["role"] == "leader")
    bouncer_port = 6441 if primary_port == 5441 else 6442
    exists = subprocess.run(
        [
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(primary_port),
            "-U",
            "postgres",
            "-qAt",
            "-c",
            "SELECT 1 FROM pg_database WHERE datname = 'pgbench'",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not exists:
        subprocess.run(
            ["createdb", "-h", "127.0.0.1", "-p", str(primary_port), "-U", "postgres", "pgbench"],
            check=True,
        )
        subprocess.run(
            [
                "pgbench",
                "-h",
                "127.0.0.1",
                "-p",
                str(primary_port),
                "-U",
                "postgres",
                "-i",
                "-q",
                "pgbench",
            ],
            check=True,
            capture_output=True,
        )
    direct = pgbench(primary_port, args.seconds, args.connections)
    pooled = pgbench(bouncer_port, args.seconds, args.connections)
    print(
        f"  pgbench -S -M simple -c{args.connections}: PostgreSQL directly {direct:,.0f} tps, "
        f"through PgBouncer {pooled:,.0f} tps (x{pooled / direct:.2f})"
    )


if __name__ == "__main__":
    main()
