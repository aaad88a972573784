"""The load: wrk's runs and their figures, PostgreSQL's checkpoints around them, and the
interleaved rounds (A/B, then B/A, ...) that compare the product with its floor."""

import os
import re
import signal
import statistics
import subprocess
from pathlib import Path

from bench.stack import database_connection

WRK = Path(__file__).resolve().parent / "wrk"


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
