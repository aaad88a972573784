"""Serving: the server candidates (each also under slow clients), GET from 1 and from 2 workers,
and the threads and pool size per worker."""

import argparse
import http.client
import socket
import statistics
import time
from pathlib import Path
from typing import Any, TypedDict

from bench.load import Comparison, Figures, interleaved, wrk
from bench.stack import ROOT, children, database_connection, free_port, one_value, running, serving

GUNICORN = str(ROOT / ".venv" / "bin" / "gunicorn")
GRANIAN = str(ROOT / ".venv" / "bin" / "granian")


class SlowProbe(TypedDict):
    """What a normal client met while slow clients held connections open (slow_clients())."""

    opened: int  # the slow connections the server accepted
    requests: int  # the normal client's
    failures: int
    slowest_ms: float | None  # None when no request was answered


class Speed(TypedDict):
    rps: float
    p99: float  # ms


class CandidateSpeed(Speed):
    errors: int  # over the candidate's rounds


class Candidate(TypedDict):
    """A server candidate's row: its slow-client probe, its command, its GET and SET."""

    slow: SlowProbe
    command: str
    get: CandidateSpeed
    set: CandidateSpeed


class PoolSize(TypedDict):
    """GET and SET at one number of threads (and pool size) per worker, and the connections
    PostgreSQL held after them."""

    get: Speed
    set: Speed
    connections: int


def candidates(
    port: int, workers: int, threads: int
) -> dict[str, tuple[list[str], dict[str, str]]]:
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


def slow_clients(
    port: int, auth: dict[str, str], path: str, count: int = 200, seconds: float = 12
) -> SlowProbe:
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
    latencies: list[float] = []
    failures = 0
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


def compare_servers(
    auth: dict[str, str], buckets: dict[str, str], args: argparse.Namespace, log: Path
) -> dict[str, Candidate]:
    """GET and SET on each candidate, the candidates taking turns round by round, then each
    one's slow-client probe."""
    names = list(candidates(0, args.workers, args.threads))
    figures: dict[str, dict[str, list[Figures]]] = {name: {"get": [], "set": []} for name in names}
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
    results: dict[str, Candidate] = {}
    print(f"\n{'server':<38} {'GET r/s':>8} {'p99':>7}  {'SET r/s':>8} {'p99':>7}  slow clients")
    for name in names:
        port = free_port()
        command, env = candidates(port, args.workers, args.threads)[name]
        with running(command, port, log, env, children):
            probe = slow_clients(port, auth, f"/v1/{buckets['get']}/k")
        row: Candidate = {
            "slow": probe,
            "command": " ".join(command).replace(str(ROOT) + "/", ""),
            "get": candidate_speed(figures[name]["get"]),
            "set": candidate_speed(figures[name]["set"]),
        }
        results[name] = row
        print(
            f"{name:<38} {row['get']['rps']:>8.0f} {row['get']['p99']:>5.1f}ms  "
            f"{row['set']['rps']:>8.0f} {row['set']['p99']:>5.1f}ms  {slow_summary(probe)}"
        )
    return results


def candidate_speed(runs: list[Figures]) -> CandidateSpeed:
    """A candidate's mean rate and p99 over its rounds, and its errors."""
    return {
        "rps": statistics.fmean(r["rps"] for r in runs),
        "p99": statistics.fmean(r["p99"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
    }


def slow_summary(probe: SlowProbe) -> str:
    if probe["failures"] == probe["requests"]:
        return f"{probe['opened']} slow: a normal client got no answer"
    return (
        f"{probe['opened']} slow: normal client's slowest {probe['slowest_ms']:.0f} ms, "
        f"{probe['failures']} of {probe['requests']} failed"
    )


def scaling(
    auth: dict[str, str], buckets: dict[str, str], args: argparse.Namespace, log: Path
) -> dict[str, Any]:
    """GET from 1 and from 2 workers, product and floor."""
    results: dict[int, Comparison] = {}
    for workers in (1, 2):
        with (
            serving("thisdb_site.asgi:application", workers, args.threads, log) as (port, _),
            serving("bench.floor.asgi:application", workers, args.threads, log) as (floor, _),
        ):

            def run(port_: int, n: int, who: str) -> Figures:
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


def pool_sizes(
    auth: dict[str, str], buckets: dict[str, str], args: argparse.Namespace, log: Path
) -> dict[int, PoolSize]:
    """GET and SET at several threads per worker (the pool is as large), and the connections
    PostgreSQL saw."""
    results: dict[int, PoolSize] = {}
    print(f"\n{'threads':>7} {'GET r/s':>8} {'p99':>7}  {'SET r/s':>8} {'p99':>7}  connections")
    for threads in (1, 2, 3, 4, 8):
        with serving("thisdb_site.asgi:application", args.workers, threads, log) as (port, _):
            speeds: dict[str, Speed] = {}
            for scenario, path, script in (
                ("get", f"/v1/{buckets['get']}/k", None),
                ("set", f"/v1/{buckets['set']}", "set.lua"),
            ):
                r = wrk(port, path, args.seconds, args.connections, auth, script)
                speeds[scenario] = {"rps": r["rps"], "p99": r["p99"]}
            with database_connection() as conn:
                connections = one_value(
                    conn,
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid()",
                )
        row: PoolSize = {"get": speeds["get"], "set": speeds["set"], "connections": connections}
        results[threads] = row
        print(
            f"{threads:>7} {row['get']['rps']:>8.0f} {row['get']['p99']:>5.1f}ms  "
            f"{row['set']['rps']:>8.0f} {row['set']['p99']:>5.1f}ms  {row['connections']}"
        )
    return results
