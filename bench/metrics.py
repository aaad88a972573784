"""`--only metrics`: what measuring costs the hot path. The API with THISDB_METRICS_TOKEN set (the
metrics middleware, every request counted and timed, thisdb_site.metrics) against the same API
without it, GET and SET, interleaved rounds (off/on, then on/off, ...) so that both see the same
minutes of the machine; the ratio is on's requests/s over off's (target: 0.97 or more)."""

from pathlib import Path
from typing import Any

from bench.load import Figures, interleaved, wrk
from bench.results import print_header, print_row
from bench.stack import ROOT, serving

TARGET = 0.97  # measuring may cost at most 3% of GET's and SET's requests/s


def metrics_cost(port: int, auth: dict[str, str], buckets: dict[str, str], args, log: Path) -> Any:
    """GET and SET against `port` (metrics off) and a second server with them on."""
    env = {
        "THISDB_METRICS_TOKEN": "bench-metrics",
        # Its own folder: `make serve` empties the folder of the server it starts.
        "PROMETHEUS_MULTIPROC_DIR": str(ROOT / "var" / "bench-metrics"),
    }
    app = "thisdb_site.asgi:application"
    report: dict[str, Any] = {}
    with serving(app, args.workers, args.threads, log, env) as (measured, _):
        print(f"\nmetrics on against off: {args.target_rounds} rounds of {args.seconds:g} s")
        print_header()
        for name, path, script in (
            ("get", f"/v1/{buckets['get']}/k", None),
            ("set", f"/v1/{buckets['set']}", "set.lua"),
        ):

            def run(port_: int, n: int, who: str, path=path, script=script) -> Figures:
                side = "off" if who == "floor" else "on"
                return wrk(port_, path, args.seconds, args.connections, auth, script, f"m{side}{n}")

            # interleaved() calls its first side the floor: here, metrics off.
            result = interleaved(port, measured, args.target_rounds, run)
            report[name] = result
            print_row(f"{name} on/off", result)
    worst = min(r["ratio"] for r in report.values())
    print(f"metrics on/off: worst ratio {worst:.3f} (target: {TARGET} or more)")
    return report
