"""Transactions: keys written per second by transactions of 100 sets against single sets, and
a transaction of 10 mixed ops against one single set, on the product alone (the floor has no
transactions). The three take turns round by round (A/B/C, B/C/A, ...), so the ratios compare
figures of the same minutes; each writes new keys into its own bucket, so the one-write-per-second
rule stays on and never refuses one."""

import argparse
import json
from typing import NamedTuple, TypedDict

from bench.load import Figures, mean, rotated, wrk
from bench.stack import call, database_connection, fill

BATCH = 100  # sets per transaction (wrk/txn100.lua)
# Ops per mixed transaction (wrk/txn10.lua): 4 sets and 3 increments of new keys, the delete of
# a seeded key, the get of one and the count of a prefix of 100 keys.
MIXED = 10
DELETES_PER_ROUND = 20_000  # seeded keys to delete per round, as wrk/txn10.lua
TARGET = 20.0  # keys/s by transactions of 100 sets over keys/s by single sets


class Side(NamedTuple):
    label: str
    script: str  # in bench/wrk/
    per_request: int  # keys written (single, batch) or ops done (mixed) by one request
    unit: str


SIDES = {
    "single": Side("single set", "set.lua", 1, "keys"),
    "batch": Side(f"{BATCH} sets", "txn100.lua", BATCH, "keys"),
    "mixed": Side(f"{MIXED} mixed ops", "txn10.lua", MIXED, "ops"),
}


class Transactions(TypedDict):
    """Each side's mean figures over the rounds, and the ratios: keys/s of transactions of 100
    sets over single sets, ops/s of the mixed transaction over single sets (of the means, and
    round by round)."""

    single: Figures
    batch: Figures
    mixed: Figures
    keys_ratio: float
    keys_round_ratios: list[float]
    ops_ratio: float
    ops_round_ratios: list[float]
    target: float
    deletes: int  # the mixed transactions' deletes that found their seeded key
    connections: int
    rounds: int


def transactions(port: int, auth: dict[str, str], args: argparse.Namespace) -> Transactions:
    buckets = {}
    for name in SIDES:
        status, body, _ = call(port, "POST", "/v1/", auth, b"default_ttl=0")
        assert status == 200, body
        buckets[name] = body.decode()
    seeded = args.target_rounds * DELETES_PER_ROUND
    with database_connection() as conn:
        fill(conn, buckets["mixed"], 1000, prefix="c")  # c0000000..c0000999: get and count
        fill(conn, buckets["mixed"], seeded, prefix="d")  # d0000000..: one delete each
        conn.execute("ANALYZE api_item")
    check_answers(port, auth, buckets["mixed"])

    def runner(name: str):
        def run(n: int) -> Figures:
            return wrk(
                port,
                f"/v1/{buckets[name]}",
                args.seconds,
                args.connections,
                auth,
                SIDES[name].script,
                tag=f"{name}{n}",
            )

        return run

    print(
        f"\ntransactions against single sets (POST /v1/<bucket>/<key>), product alone, "
        f"wrk -t1 -c{args.connections}, {args.target_rounds} rounds of {args.seconds:g} s each, "
        "the three taking turns\n"
        f"{'':<14} {'req/s':>8} {'p50':>8} {'p99':>8}  {'written or done':>18}  errors"
    )
    runs = rotated({name: runner(name) for name in SIDES}, args.target_rounds)
    figures = {name: mean(runs[name]) for name in SIDES}
    single, batch, mixed = figures["single"], figures["batch"], figures["mixed"]
    with database_connection() as conn:
        row = conn.execute(
            "SELECT count(*) FROM api_item WHERE bucket_id = %s AND key LIKE 'd%%'",
            [buckets["mixed"]],
        ).fetchone()
        left = row[0] if row else 0
    result: Transactions = {
        "single": single,
        "batch": batch,
        "mixed": mixed,
        "keys_ratio": batch["rps"] * BATCH / single["rps"],
        "keys_round_ratios": [
            b["rps"] * BATCH / s["rps"] for s, b in zip(runs["single"], runs["batch"], strict=True)
        ],
        "ops_ratio": mixed["rps"] * MIXED / single["rps"],
        "ops_round_ratios": [
            m["rps"] * MIXED / s["rps"] for s, m in zip(runs["single"], runs["mixed"], strict=True)
        ],
        "target": TARGET,
        "deletes": seeded - int(left),
        "connections": args.connections,
        "rounds": args.target_rounds,
    }
    for name, f in figures.items():
        side = SIDES[name]
        print(
            f"{side.label:<14} {f['rps']:>8.0f} {f['p50']:>6.2f}ms {f['p99']:>6.2f}ms  "
            f"{f['rps'] * side.per_request:>11,.0f} {side.unit}/s  {f['errors']}"
        )
    for line in summary(result):
        print(line)
    return result


def summary(r: Transactions) -> list[str]:
    """The ratios, as the table and RESULTS.md say them."""
    met = "met" if r["keys_ratio"] >= r["target"] else "not met"
    keys_spread = f"{min(r['keys_round_ratios']):.1f}-{max(r['keys_round_ratios']):.1f}"
    ops_spread = f"{min(r['ops_round_ratios']):.1f}-{max(r['ops_round_ratios']):.1f}"
    return [
        f"keys written per second, transactions of {BATCH} sets over single sets: "
        f"{r['keys_ratio']:.1f}x (rounds {keys_spread}); target >= {r['target']:g}x: {met}",
        f"ops per second, transactions of {MIXED} mixed ops over single sets: "
        f"{r['ops_ratio']:.1f}x (rounds {ops_spread}); requests per second "
        f"{r['mixed']['rps'] / r['single']['rps']:.2f}x; their deletes removed "
        f"{r['deletes']:,} seeded keys for {r['mixed']['requests']:,} answers counted (wrk "
        f"leaves out the up to {r['connections']} requests of a run still in flight at its end)",
    ]


def check_answers(port: int, auth: dict[str, str], bucket: str) -> None:
    """One mixed transaction as txn10.lua sends them, answered 200 with one result per op
    (wrk counts only the statuses)."""
    ops: list[dict[str, str | int]] = [
        {"op": "set", "key": f"check-s{i}", "value": "value-1"} for i in range(4)
    ]
    ops += [{"op": "increment", "key": f"check-i{i}", "by": 1} for i in range(3)]
    ops += [
        {"op": "delete", "key": "check-gone"},
        {"op": "get", "key": "c0000000"},
        {"op": "count", "prefix": "c00000"},
    ]
    body = json.dumps({"ops": ops}).encode()
    headers = {**auth, "Content-Type": "application/json"}
    status, answer, _ = call(port, "POST", f"/v1/{bucket}", headers, body)
    assert status == 200, answer
    results = json.loads(answer)["results"]
    assert len(results) == MIXED and results[-1]["count"] == 100, results
