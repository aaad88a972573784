"""The load: wrk's runs and their figures, PostgreSQL's checkpoints around them, and the
interleaved rounds (A/B, then B/A, ...) that compare the product with its floor."""

import os
import re
import signal
import statistics
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypedDict

from bench.stack import database_connection, one_value

WRK = Path(__file__).resolve().parent / "wrk"


class Figures(TypedDict):
    """wrk's figures of one run, or the mean of one side's rounds (interleaved())."""

    rps: float
    requests: int
    errors: int  # answers other than 2xx and 3xx
    command: str  # as RESULTS.md prints it
    p50: float  # ms
    p99: float  # ms


class Waitable(Protocol):
    """What a wrk run can last as long as: a process, or a thread's work (bench.bulk)."""

    def wait(self) -> object: ...


class Comparison(TypedDict):
    """Floor and product over the same rounds: their mean figures, the ratio of the means
    (product over floor) and each round's own ratio."""

    floor: Figures
    product: Figures
    ratio: float
    round_ratios: list[float]


def wrk(
    port: int,
    path: str,
    seconds: float,
    connections: int,
    headers: dict[str, str],
    script: str | None = None,
    tag: str = "run",
    until: Waitable | None = None,
) -> Figures:
    """wrk's figures for `seconds`, or, with `until`, until its wait() returns (wrk
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
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)  # absent when there were none
    return {
        "rps": float(found(r"Requests/sec:\s+([\d.]+)", out, command).group(1)),
        "requests": int(found(r"(\d+) requests in", out, command).group(1)),
        "errors": int(errors.group(1)) if errors else 0,
        "command": " ".join(shown),
        "p50": latency_ms(50, out, command),
        "p99": latency_ms(99, out, command),
    }


def found(pattern: str, out: str, command: list[str]) -> re.Match[str]:
    """`pattern` in wrk's output, or an error that shows the command and the output."""
    match = re.search(pattern, out)
    if match is None:
        raise RuntimeError(f"wrk's output has no {pattern!r}: {' '.join(command)}\n{out}")
    return match


def latency_ms(percentile: int, out: str, command: list[str]) -> float:
    """A percentile of wrk's latency distribution (--latency), in milliseconds."""
    value, unit = found(rf"\s{percentile}%\s+([\d.]+)(us|ms|s)", out, command).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def checkpoint() -> None:
    """A PostgreSQL checkpoint now, so that none falls inside the next runs (its timer restarts:
    checkpoint_timeout is 5 minutes by default) and the WAL of earlier scenarios is written out.
    A checkpoint inside one side's run would slow that side alone."""
    with database_connection() as conn:
        conn.execute("CHECKPOINT")


def checkpoints_so_far() -> int:
    """How many checkpoints PostgreSQL has made (timed or requested) since its statistics began."""
    with database_connection() as conn:
        return int(
            one_value(conn, "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter")
        )


def interleaved(
    floor_port: int, product_port: int, rounds: int, run: Callable[[int, int, str], Figures]
) -> Comparison:
    """run(port, round, who) for floor and product, A/B then B/A, ...; their mean figures, the
    ratio of the means and each round's own ratio (how far the rounds agree)."""
    checkpoint()
    results: dict[str, list[Figures]] = {"floor": [], "product": []}
    for n in range(rounds):
        order = [("floor", floor_port), ("product", product_port)]
        if n % 2:
            order.reverse()
        for who, port in order:
            results[who].append(run(port, n, who))
    floor, product = mean(results["floor"]), mean(results["product"])
    return {
        "floor": floor,
        "product": product,
        "ratio": product["rps"] / floor["rps"],
        "round_ratios": [
            p["rps"] / f["rps"] for f, p in zip(results["floor"], results["product"], strict=True)
        ],
    }


def mean(runs: list[Figures]) -> Figures:
    """One side's figures over its rounds: the mean rate and latencies, the errors and requests
    summed, the first round's command."""
    return {
        "rps": statistics.fmean(r["rps"] for r in runs),
        "p50": statistics.fmean(r["p50"] for r in runs),
        "p99": statistics.fmean(r["p99"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
        "requests": sum(r["requests"] for r in runs),
        "command": runs[0]["command"],
    }


def rotated(sides: dict[str, Callable[[int], Figures]], rounds: int) -> dict[str, list[Figures]]:
    """side(round) for each side, round after round, the order turning by one each round (A/B/C,
    B/C/A, ...), after a checkpoint: every side's figures, round by round."""
    checkpoint()
    names = list(sides)
    runs: dict[str, list[Figures]] = {name: [] for name in names}
    for n in range(rounds):
        turn = n % len(names)
        for name in names[turn:] + names[:turn]:
            runs[name].append(sides[name](n))
    return runs
