"""The results: the table printed as the scenarios run, and bench/RESULTS.md."""

import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import redis

from bench.bulk import LARGE, SMALL
from bench.bulk import summary as bulk_summary
from bench.load import Comparison
from bench.serving import slow_summary
from bench.stack import REDIS_URL, database_connection, one_value
from bench.transactions import SIDES, summary
from bench.watch import BESIDE_RUNS
from bench.watch import summary as watch_summary

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
BASELINE = Path(__file__).resolve().parent / "baseline.json"
NOTES = Path(__file__).resolve().parent / "NOTES.md"  # its first line is a heading
TARGETS = {"get": 0.85, "set": 0.85, "incr": 0.8}
CONTROL = "get A/A"  # the floor against a second floor: the noise of a ratio, with no difference


def print_header() -> None:
    print(
        f"{'scenario':<10} {'floor r/s':>10} {'p50':>7} {'p99':>7}   {'API r/s':>9} {'p50':>7} "
        f"{'p99':>7}  {'ratio':>6}  {'rounds':>9}  errors"
    )


def print_row(name: str, r: Comparison) -> None:
    f, p = r["floor"], r["product"]
    print(
        f"{name:<10} {f['rps']:>10.0f} {f['p50']:>6.2f}ms {f['p99']:>6.2f}ms  {p['rps']:>9.0f} "
        f"{p['p50']:>6.2f}ms {p['p99']:>6.2f}ms  {r['ratio']:>6.2f}  {spread(r):>9}  "
        f"{p['errors'] + f['errors']}"
    )


def spread(r: Comparison) -> str:
    """The lowest and highest of the rounds' own ratios."""
    return f"{min(r['round_ratios']):.2f}-{max(r['round_ratios']):.2f}"


def machine() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    with database_connection() as conn:
        postgres = one_value(conn, "SHOW server_version")
    client = redis.Redis.from_url(REDIS_URL)
    server = client.info("server")
    # redis-py types its answers as its asyncio client's too; this client's are plain values
    assert isinstance(server, dict), server
    redis_version = server["redis_version"]
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


WATCH_HEADING = "## Watching"
BULK_HEADING = "## Bulk transfers"


def write_results(report: dict[str, Any], only: set[str] | None = None) -> None:
    """RESULTS.md from this run; a run of the watch or the bulk section alone (`--only watch`,
    `--only bulk`) replaces that section of the file and leaves the rest as the last full run
    wrote it."""
    if only == {"watch"} and RESULTS.exists():
        return splice(WATCH_HEADING, watch_section(report))
    if only == {"bulk"} and RESULTS.exists():
        return splice(BULK_HEADING, bulk_section(report))
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
        f"{report['args']['seconds']:g} s per scenario "
        f"({report['args']['target_rounds']} for the scenarios "
        "with a target and the control), a PostgreSQL checkpoint before each. The ratio is the "
        "product's mean requests/s over the floor's; rounds: the lowest and highest of the "
        f"rounds' own ratios. `{CONTROL}` is the control: the floor against a second floor "
        "server (its figures in the API columns), the same GET; its ratio is how far a ratio "
        "of this run moves when nothing differs.",
        "",
        "| scenario | floor req/s | floor p50 / p99 ms | API req/s | API p50 / p99 ms | ratio "
        "| rounds | target |" + (" before |" if before else ""),
        "|---|---|---|---|---|---|---|---|" + ("---|" if before else ""),
    ]
    for name, r in report["scenarios"].items():
        f, p = r["floor"], r["product"]
        target = TARGETS.get(name)
        row = (
            f"| {name} | {f['rps']:,.0f} | {f['p50']:.2f} / {f['p99']:.2f} | {p['rps']:,.0f} | "
            f"{p['p50']:.2f} / {p['p99']:.2f} | **{r['ratio']:.2f}** | {spread(r)} | "
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
            f"statements, median {s['median'] * 1000:.0f} ms, the longest "
            f"{s['longest'] * 1000:.0f} ms (target 250; statement {s['longest_at']}, the next "
            f"longest {s['next'] * 1000:.0f} ms); {s['checkpoints']} checkpoints fell "
            f"inside it. GET p99: {s['get_p99_during']:.2f} ms over the whole sweep (one wrk run "
            f"from its start to its end), {s['get_p99_without']:.2f} ms in a run as long right "
            "after it (target: within 2x)."
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
    if "transactions" in report:
        t = report["transactions"]
        lines += [
            f"Transactions against single sets (`POST /v1/<bucket>/<key>`, `wrk/set.lua`), on the "
            f"product alone, wrk -t1 -c{t['connections']}, the three taking turns for "
            f"{t['rounds']} rounds of {report['args']['seconds']:g} s; every write to a new key:",
            "",
            "| request | req/s | p50 / p99 ms | keys written or ops done /s | errors |",
            "|---|---|---|---|---|",
        ]
        for name, side in SIDES.items():
            f = t[name]
            lines.append(
                f"| {side.label} | {f['rps']:,.0f} | {f['p50']:.2f} / {f['p99']:.2f} | "
                f"{f['rps'] * side.per_request:,.0f} {side.unit} | {f['errors']} |"
            )
        lines += [""] + [f"{line}." for line in summary(t)]
        lines += ["", "```"] + [t[name]["command"] for name in SIDES]
        lines += ["```", ""]
    if "servers" in report:
        lines += [
            f"Server candidates, {report['args']['workers']} workers, Django in "
            f"{report['args']['threads']} threads each where the server has threads (the pool "
            "as large), the candidates taking turns round by round; then each one with 200 "
            "slow-header and 200 slow-body connections open while a normal client reads:",
            "",
            "| server | GET req/s | GET p99 ms | SET req/s | SET p99 ms | under slow clients |",
            "|---|---|---|---|---|---|",
        ]
        for name, row in report["servers"].items():
            lines.append(
                f"| {name} | {row['get']['rps']:,.0f} | {row['get']['p99']:.1f} | "
                f"{row['set']['rps']:,.0f} | {row['set']['p99']:.1f} | "
                f"{slow_summary(row['slow'])} |"
            )
        lines += ["", "```"] + [row["command"] for row in report["servers"].values()]
        lines += ["```", ""]
    if "scaling" in report:
        sc = report["scaling"]
        one, two = sc["by_workers"][1], sc["by_workers"][2]
        lines.append(
            f"Workers: GET of one key at {one['product']['rps']:,.0f} req/s from 1 worker "
            f"(floor {one['floor']['rps']:,.0f}) and {two['product']['rps']:,.0f} from 2 "
            f"(floor {two['floor']['rps']:,.0f}): x{sc['growth']:.2f} (floor "
            f"x{sc['floor_growth']:.2f}), with wrk, PostgreSQL and Redis on the same 2 cores."
        )
        lines.append("")
    if "pool" in report:
        lines += [
            "Threads (and pool size) per worker, "
            f"{report['args']['workers']} workers; connections PostgreSQL held after the run:",
            "",
            "| threads | GET req/s | GET p99 ms | SET req/s | SET p99 ms | connections |",
            "|---|---|---|---|---|---|",
        ]
        for threads, row in report["pool"].items():
            lines.append(
                f"| {threads} | {row['get']['rps']:,.0f} | {row['get']['p99']:.1f} | "
                f"{row['set']['rps']:,.0f} | {row['set']['p99']:.1f} | {row['connections']} |"
            )
        lines.append("")
    if "watch" in report:
        lines += watch_section(report)
    if "bulk" in report:
        lines += bulk_section(report)
    lines += ["Commands (product; the floor's are the same on its port):", "", "```"]
    lines += [r["product"]["command"] for n, r in report["scenarios"].items() if n != CONTROL]
    lines += ["```", ""]
    if NOTES.exists():
        lines += [NOTES.read_text().strip(), ""]
    RESULTS.write_text("\n".join(lines))


def watch_section(report: dict[str, Any]) -> list[str]:
    w = report["watch"]
    info = machine()
    lines = [
        WATCH_HEADING,
        "",
        f"Watch streams (`GET /v1/<bucket>?watch=true`, Server-Sent Events) on the product "
        f"alone, `make serve` with {report['args']['workers']} workers; the streams are held by "
        "two reader processes on raw epoll (`bench/watchers.py`), on the same machine "
        f"({info['cores']} cores, {info['model']}).",
        "",
        "Latency from a write's 200 (at the writer) to its event's arrival in a timed stream's "
        "socket (the kernel's time), over every write and timed stream; each write sets a new key "
        "of the watched prefix. Up to 250 streams are timed, drawn at random; every stream's "
        "events are counted:",
        "",
        "| streams | writes | p50 ms | p99 ms | max ms | events arrived | latencies | "
        "write's own p50 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in w["latency"]:
        lines.append(
            f"| {row['watchers']:,} | {row['writes']} at {row['rate']:g}/s | {row['p50']:.1f} | "
            f"**{row['p99']:.1f}** | {row['max']:.1f} | {row['deliveries']:,} of "
            f"{row['expected']:,} | {row.get('timed', row['deliveries']):,} | "
            f"{row['write_p50']:.1f} |"
        )
    b = w["beside"]
    lines += [
        "",
        f"Workers' resident size (VmRSS summed over the workers): "
        f"{sum(w['rss_without'].values()):.1f} MiB with no stream open, "
        f"{sum(w['rss_with'].values()):.1f} MiB with {w['idle_watchers']:,} idle ones "
        f"(descriptors by worker: {', '.join(str(n) for n in w['fds_with'].values())}).",
        "",
        f"GET and SET against their floor, {report['args']['target_rounds']} interleaved rounds "
        f"of {report['args']['seconds']:g} s each, without streams and with "
        f"{w['ratio_watchers']:,} idle ones open on the product:",
        "",
        "| scenario | ratio without | rounds | ratio with streams | rounds | API req/s without "
        "/ with | API p99 ms without / with |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ("get", "set"):
        a, c = w["ratios_without"][name], w["ratios_with"][name]
        lines.append(
            f"| {name} | {a['ratio']:.2f} | {spread(a)} | **{c['ratio']:.2f}** | {spread(c)} | "
            f"{a['product']['rps']:,.0f} / {c['product']['rps']:,.0f} | "
            f"{a['product']['p99']:.2f} / {c['product']['p99']:.2f} |"
        )
    lines += [
        "",
        "GET of one key beside idle streams (wrk -t1 "
        f"-c{report['args']['connections']}, the mean of {BESIDE_RUNS} runs of "
        f"{report['args']['seconds']:g} s each):",
        "",
        "| | req/s | p50 ms | p99 ms |",
        "|---|---|---|---|",
    ]
    for label, f in (
        ("no stream open", b["without"]),
        (f"{b['watchers']:,} idle streams open", b["with_watchers"]),
        ("after they closed", b["after"]),
    ):
        lines.append(f"| {label} | {f['rps']:,.0f} | {f['p50']:.2f} | {f['p99']:.2f} |")
    lines += ["", "Against the targets:", ""]
    lines += [f"- {line}." for line in watch_summary(w)]
    lines += [
        "",
        "A latency can be below 0: the event is sent as the write commits, and may reach its "
        "stream before the write's own answer reaches the writer.",
        "",
    ]
    return lines


def bulk_section(report: dict[str, Any]) -> list[str]:
    b = report["bulk"]
    info = machine()
    lines = [
        BULK_HEADING,
        "",
        f"Exports (`GET /v1/<bucket>?format=ndjson&values=true&all=true`) and imports (`POST "
        f"/v1/<bucket>`, `Content-Type: application/x-ndjson`, one request whose body is sent "
        f"chunked) on the product alone, `make serve` with {report['args']['workers']} workers "
        f"({info['cores']} cores, {info['model']}, shared with PostgreSQL, Redis and the "
        "bench's client); keys of 8 bytes, values of 10. The floor is PostgreSQL's own `COPY` "
        f"of {b['copy_rows']:,} rows of the same shape into a copy of `api_item`'s definition "
        "(its indexes and defaults), and `COPY (SELECT ... ORDER BY key) TO STDOUT` of them, "
        f"in the same run: {b['copy_in']:,.0f} rows/s in, {b['copy_out']:,.0f} rows/s out "
        "(the best of 3). Worker resident size: VmRSS of each worker just before, and the "
        "highest sampled (every 10 ms) during the transfer. The machine's load average (1 "
        f"minute): {b['load'][0]:.2f} when the section began, {b['load'][1]:.2f} when it ended.",
        "",
        "| transfer | keys | seconds | keys/s | ratio to COPY | worker RSS MiB before | peak |",
        "|---|---|---|---|---|---|---|",
    ]
    sizes = (str(SMALL), str(LARGE))
    rows = [("import", b["imports"][n], b["copy_in"]) for n in sizes]
    rows += [("export", b["exports"][n], b["copy_out"]) for n in sizes]
    rows.append(("import beside GETs", b["beside"], b["copy_in"]))
    for label, t, floor in rows:
        lines.append(
            f"| {label} | {t['keys']:,} | "
            f"{t['seconds']:.2f} | **{t['keys_per_s']:,.0f}** | {t['keys_per_s'] / floor:.2f} | "
            f"{', '.join(f'{v:.0f}' for v in t['rss_before'].values())} | "
            f"{', '.join(f'{v:.0f}' for v in t['rss_peak'].values())} |"
        )
    d, w = b["get_during"], b["get_without"]
    lines += [
        "",
        f"Another account's GET of one key (its own API key and bucket), wrk -t1 "
        f"-c{report['args']['connections']}: p50 / p99 {d['p50']:.2f} / {d['p99']:.2f} ms "
        f"({d['rps']:,.0f} req/s) over a whole import of {LARGE:,} keys (one wrk run from its "
        f"start to its end), {w['p50']:.2f} / {w['p99']:.2f} ms ({w['rps']:,.0f} req/s) in a "
        "run as long right after it.",
        "",
        "Against the targets:",
        "",
    ]
    lines += [f"- {line}." for line in bulk_summary(b)]
    lines.append("")
    return lines


def splice(heading: str, lines: list[str]) -> None:
    """This run's section in place of the one RESULTS.md has (or before the notes), and the
    notes as NOTES.md has them now."""
    text = RESULTS.read_text()
    notes_heading = "\n" + NOTES.read_text().splitlines()[0] + "\n"
    notes = text.find(notes_heading)
    if notes >= 0:
        text = text[: notes + 1] + NOTES.read_text().strip() + "\n"
    section = "\n".join(lines) + "\n"
    start = text.find(heading + "\n")
    if start >= 0:
        end = text.find("\n## ", start + 1)
        end = len(text) if end < 0 else end + 1
    else:
        start = end = len(text) if notes < 0 else notes + 1
    RESULTS.write_text(text[:start] + section + text[end:].lstrip("\n"))
