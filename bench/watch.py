"""Watching (GET /v1/<bucket>?watch=true, Server-Sent Events) on the product alone: how soon a
write reaches its watchers, what an idle stream costs a web worker, and whether open streams slow
the other requests down.

- Latency: with 1, 100 and 5,000 streams on one prefix, a writer sets new keys of that prefix at
  a steady pace over one keep-alive connection; each write's key names its sequence number. The
  writer notes when each write's 200 arrives, the kernel when each event reaches a timed
  stream's socket (CLOCK_REALTIME, one clock for the machine's processes): latency = the event's
  arrival - the write's 200, over every write and timed stream (all of them up to TIMED, then
  TIMED drawn at random; every stream's events are counted). It can be below 0: the event is
  sent as the write commits, and may reach its stream before the write's answer reaches the
  writer.
- Memory: the web workers' resident size (VmRSS, summed over granian's workers) with no stream
  open and with 5,000 idle ones: the difference over 5,000, per stream.
- GET and SET against their floor (the requests section's scenarios, the same interleaved
  rounds), without streams and with 1,000 idle ones open on the product.
- GET of one key with wrk, without streams, with 5,000 idle ones open, and after they closed.

The streams are held and read by child processes on raw epoll (bench.watchers), so that the
5,000 streams' reading measures the server, not the reader: reading them all as events came
took the readers nearly half of the 2 cores here.
"""

import argparse
import resource
import statistics
import time
from pathlib import Path
from typing import TypedDict

from bench.load import Comparison, Figures, interleaved, mean, wrk
from bench.memory import rss_mib
from bench.stack import call
from bench.watchers import Readers

COUNTS = (1, 100, 5000)  # streams on the written prefix, for the latency
WRITES = 300  # per count
RATE = 20.0  # writes per second
# The largest count again at a quarter of the pace: 5,000 streams at 20 writes/s are 100,000
# events a second to send and to read, on the 2 cores the client shares with the server.
SLOW_RATE = 5.0
SLOW_WRITES = 150
IDLE_MEMORY = 5000  # streams open while the workers' resident size is taken
IDLE_RATIOS = 1000  # streams open while GET and SET run against their floor
IDLE_BESIDE = 5000  # streams open while wrk GETs one key
BESIDE_RUNS = 3  # wrk runs of GET for each of without, with and after
PREFIX = "w/"
# Streams timed at most (at random among those open, bench.watchers); the others' events are
# counted. 250 streams of 5,000 give 75,000 latencies for 300 writes.
TIMED = 250
TARGETS = {"latency_p99_ms": 100.0, "kib_per_watcher": 20.0, "ratio": 0.85}


class Latency(TypedDict):
    watchers: int
    writes: int
    rate: float
    deliveries: int  # events that arrived, of watchers x writes
    timed: int  # of which timed (the latencies)
    expected: int
    p50: float  # ms
    p99: float
    max: float
    write_p50: float  # ms, the writes' own answers
    open_seconds: float  # opening the streams


class Beside(TypedDict):
    without: Figures
    with_watchers: Figures
    after: Figures
    watchers: int


class Watch(TypedDict):
    latency: list[Latency]
    rss_without: dict[int, float]  # MiB by worker
    rss_with: dict[int, float]
    fds_with: dict[int, int]  # open descriptors by worker, with the idle streams
    idle_watchers: int
    kib_per_watcher: float
    ratios_without: dict[str, Comparison]
    ratios_with: dict[str, Comparison]
    ratio_watchers: int
    beside: Beside
    targets: dict[str, float]
    rate: float
    writes: int


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def timed(count: int) -> float:
    """The chance that each of `count` streams is timed."""
    return min(1.0, TIMED / count)


def raise_open_files() -> None:
    """This process holds every stream's socket: its open-files limit up to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = max(COUNTS) + IDLE_MEMORY + 1000
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, needed * 2), hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        raise SystemExit(f"watch: {needed} open files needed, the hard limit is {hard}")


def fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def watch(
    port: int,
    floor: int,
    pids: list[int],
    auth: dict[str, str],
    buckets: dict[str, str],
    args: argparse.Namespace,
) -> Watch:
    raise_open_files()
    status, body, _ = call(port, "POST", "/v1/", auth, b"default_ttl=0")
    assert status == 200, body
    bucket = body.decode()
    get_path = f"/v1/{buckets['get']}/k"

    def get(tag: str) -> Figures:
        return mean(
            [
                wrk(port, get_path, args.seconds, args.connections, auth, tag=f"{tag}{n}")
                for n in range(BESIDE_RUNS)
            ]
        )

    def ratios(tag: str) -> dict[str, Comparison]:
        def scenario(path: str, script: str | None) -> Comparison:
            def run(port_: int, n: int, who: str) -> Figures:
                return wrk(
                    port_, path, args.seconds, args.connections, auth, script, tag=f"{tag}{who}{n}"
                )

            return interleaved(floor, port, args.target_rounds, run)

        return {
            "get": scenario(get_path, None),
            "set": scenario(f"/v1/{buckets['set']}", "set.lua"),
        }

    print(
        f"\nwatching (product alone): latency from a write's 200 to the event, {WRITES} writes "
        f"at {RATE:g}/s for each count of streams on one prefix\n"
        f"{'streams':>8} {'writes':>7} {'p50':>8} {'p99':>8} {'max':>8}  {'events':>17}  "
        f"{'write p50':>9}  opened in"
    )
    crowd = Readers(port, auth)
    watch_path = f"/v1/{bucket}?watch=true&prefix={PREFIX}"
    try:
        latency: list[Latency] = []
        first = 0

        def measure(count: int, rate: float = RATE, writes: int = WRITES) -> None:
            nonlocal first
            opened = crowd.open(count - crowd.open_streams, watch_path, timed(count))
            time.sleep(2)  # the last streams join their feed
            found, took, delivered = crowd.measure(bucket, PREFIX, first, writes, rate)
            first += writes
            row: Latency = {
                "watchers": count,
                "writes": writes,
                "rate": rate,
                "deliveries": delivered,
                "timed": len(found),
                "expected": count * writes,
                "p50": percentile(found, 50) * 1000,
                "p99": percentile(found, 99) * 1000,
                "max": max(found) * 1000,
                "write_p50": statistics.median(took) * 1000,
                "open_seconds": opened,
            }
            latency.append(row)
            print(
                f"{count:>8,} {rate:>5g}/s {row['p50']:>6.1f}ms {row['p99']:>6.1f}ms "
                f"{row['max']:>6.1f}ms  "
                f"{row['deliveries']:>8,}/{row['expected']:<8,}  {row['write_p50']:>7.1f}ms  "
                f"{opened:.1f} s"
            )

        for count in COUNTS[:-1]:
            measure(count)
            crowd.close()
        # The rest with the streams idle, then the largest count's latency.
        ratios_without = ratios("nw-")
        beside_without = get("bw-")
        without = {pid: rss_mib(pid) for pid in pids}
        crowd.open(IDLE_MEMORY, watch_path, timed(COUNTS[-1]))  # the largest count's, next
        time.sleep(3)
        with_ = {pid: rss_mib(pid) for pid in pids}
        fds_with = {pid: fds(pid) for pid in pids}
        kib = (sum(with_.values()) - sum(without.values())) * 1024 / IDLE_MEMORY
        print(
            f"workers' resident size: {sum(without.values()):.1f} MiB without streams, "
            f"{sum(with_.values()):.1f} MiB with {IDLE_MEMORY:,} idle ones "
            f"(descriptors by worker: {', '.join(str(n) for n in fds_with.values())}): "
            f"{kib:.1f} KiB a stream (target <= {TARGETS['kib_per_watcher']:g})"
        )
        beside_with = get("bs-")
        measure(COUNTS[-1])
        measure(COUNTS[-1], SLOW_RATE, SLOW_WRITES)
        crowd.close(crowd.open_streams - IDLE_RATIOS)
        ratios_with = ratios("ws-")
        crowd.close()
        beside_after = get("ba-")
    finally:
        crowd.stop()
    result: Watch = {
        "latency": latency,
        "rss_without": without,
        "rss_with": with_,
        "fds_with": fds_with,
        "idle_watchers": IDLE_MEMORY,
        "kib_per_watcher": kib,
        "ratios_without": ratios_without,
        "ratios_with": ratios_with,
        "ratio_watchers": IDLE_RATIOS,
        "beside": {
            "without": beside_without,
            "with_watchers": beside_with,
            "after": beside_after,
            "watchers": IDLE_BESIDE,
        },
        "targets": TARGETS,
        "rate": RATE,
        "writes": WRITES,
    }
    for line in summary(result):
        print(line)
    return result


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def summary(r: Watch) -> list[str]:
    """The figures against their targets, as the table and RESULTS.md say them."""
    largest = next(row for row in r["latency"] if row["watchers"] == max(COUNTS))
    lines = [
        f"latency p99 with {largest['watchers']:,} streams at {largest['rate']:g} writes/s: "
        f"{largest['p99']:.1f} ms; target <= "
        f"{r['targets']['latency_p99_ms']:g} ms: "
        f"{met(largest['p99'] <= r['targets']['latency_p99_ms'])}",
        f"memory: {r['kib_per_watcher']:.1f} KiB per idle stream; target <= "
        f"{r['targets']['kib_per_watcher']:g} KiB: "
        f"{met(r['kib_per_watcher'] <= r['targets']['kib_per_watcher'])}",
    ]
    for name in ("get", "set"):
        without, with_ = r["ratios_without"][name], r["ratios_with"][name]
        lines.append(
            f"{name.upper()} over its floor: {without['ratio']:.2f} without streams (rounds "
            f"{spread(without)}), {with_['ratio']:.2f} with {r['ratio_watchers']:,} idle ones "
            f"(rounds {spread(with_)}); target >= {r['targets']['ratio']:g}: "
            f"{met(with_['ratio'] >= r['targets']['ratio'])}"
        )
    b = r["beside"]
    lines.append(
        f"GET beside streams (wrk, {BESIDE_RUNS} runs each): p50 / p99 "
        f"{b['without']['p50']:.2f} / {b['without']['p99']:.2f} ms without, "
        f"{b['with_watchers']['p50']:.2f} / {b['with_watchers']['p99']:.2f} ms with "
        f"{b['watchers']:,} idle ones, {b['after']['p50']:.2f} / {b['after']['p99']:.2f} ms "
        f"after they closed; {b['without']['rps']:,.0f}, {b['with_watchers']['rps']:,.0f} and "
        f"{b['after']['rps']:,.0f} req/s"
    )
    return lines


def spread(r: Comparison) -> str:
    return f"{min(r['round_ratios']):.2f}-{max(r['round_ratios']):.2f}"
