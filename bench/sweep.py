"""The sweep of 1,000,000 expired keys by the function beat's task calls, every statement timed,
with GET's p99 while it runs against a run as long after it."""

import argparse
import json
import os
import subprocess
import sys
from typing import Any

from bench.load import checkpoint, checkpoints_so_far, wrk
from bench.stack import ENV, ROOT, database_connection, fill

SWEEP_CODE = """
import json, os, statistics, time, django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "thisdb_site.settings")
django.setup()
from django.db import connection
from django.utils import timezone
from api import statements
times = []
def timed(execute, sql, params, many, context):
    start = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        times.append(time.perf_counter() - start)
started = time.perf_counter()
with connection.execute_wrapper(timed):
    deleted = statements.sweep_expired_items(timezone.now())
print(json.dumps({"deleted": deleted, "seconds": time.perf_counter() - started,
                  "statements": len(times), "longest": max(times),
                  "longest_at": times.index(max(times)) + 1, "next": sorted(times)[-2:][0],
                  "median": statistics.median(times)}))
"""


def sweep(
    port: int, auth: dict[str, str], buckets: dict[str, str], args: argparse.Namespace
) -> dict[str, Any]:
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
    out, _ = process.communicate()  # its one line of JSON, once it has ended
    result = json.loads(out)
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
