"""Bulk transfers (the export and the streamed import) on the product alone, against
PostgreSQL's own COPY of rows of the same shape, in the same run:

- The floor: COPY ... FROM STDIN of 100,000 rows (a key, a 10-byte bytea value, ...) into a
  copy of api_item's definition (its indexes and defaults: CREATE TABLE ... LIKE ... INCLUDING
  ALL), and COPY ... TO STDOUT of the same rows in key order; rows/s each, the best of a few
  trials (the data is made before the clock starts: what is timed is PostgreSQL's work and the
  bytes on the socket).
- Import: 10,000 and then 1,000,000 keys of 10-byte values, each in ONE request whose body is
  sent chunked from a generator (http.client), timed from the request's first byte to its
  answer; keys/s, and its ratio to COPY in.
- Export: the same two buckets through the export route, timed from the request to its last
  byte; keys/s, and its ratio to COPY out.
- The web workers' resident size (VmRSS) sampled every few ms during each of those four: the
  peak during 1,000,000 keys against the peak during 10,000.
- GET of one key by another account (its own API key and bucket), with wrk, while another
  import of 1,000,000 keys runs: the p99 of one wrk run from the import's start to its end,
  against a run as long right after it (as the sweep's: a longer run meets more of the
  machine's stalls, bench/NOTES.md items 10 and 13).

The upload's chunks are made before the clock starts too, so the bench's own process, on the
same 2 cores, spends its time sending rather than formatting.
"""

import argparse
import http.client
import json
import os
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import TypedDict

from bench.load import Figures, checkpoint, wrk
from bench.memory import rss_mib
from bench.stack import call, database_connection, manage

SMALL = 10_000  # keys of the first import and export, for memory
LARGE = 1_000_000  # keys of the measured import and export
VALUE_BYTES = 10
COPY_ROWS = 100_000
COPY_TRIALS = 3  # the best of them: a trial moves by 20% or more on the shared 2 cores
LINES_PER_CHUNK = 1000  # an upload chunk: about 40 KB
SAMPLE_EVERY = 0.01  # s between two readings of the workers' resident size
WARM_UP = 100  # keys imported and exported before anything is measured (code loaded, pools)
EXPORT_QUERY = "?format=ndjson&values=true&all=true"
# The import's rows, as COPY takes them (the columns the import writes; id and version come
# from the table's defaults, as for the import).
COPY_COLUMNS = "bucket_id, key, value, expires_at, updated_at"
COPY_TABLE = "bench_copy"
UPDATED_AT = "2025-01-01 00:00:00+00"
TARGETS = {
    "import_keys_per_s": 50_000.0,
    "export_keys_per_s": 100_000.0,
    "rss_growth": 0.10,  # the peak with 1,000,000 keys over the peak with 10,000, at most
    "p99_ratio": 2.0,  # the other account's GET p99 during an import over without, at most
}


class Transfer(TypedDict):
    keys: int
    seconds: float
    keys_per_s: float
    rss_before: dict[int, float]  # MiB by worker, just before
    rss_peak: dict[int, float]  # MiB by worker, the highest reading during it


class Bulk(TypedDict):
    copy_rows: int
    copy_in: float  # rows/s
    copy_out: float  # rows/s
    imports: dict[str, Transfer]  # "10000", "1000000"
    exports: dict[str, Transfer]
    beside: Transfer  # the import while wrk GETs another account's key
    get_during: Figures
    get_without: Figures
    load: tuple[float, float]  # the machine's 1-minute load average at the start and the end
    targets: dict[str, float]


def key(i: int) -> str:
    return f"k{i:07d}"


def value(i: int) -> str:
    return f"{i:0{VALUE_BYTES}d}"[-VALUE_BYTES:]


def ndjson_chunks(count: int) -> list[bytes]:
    """An import body of `count` keys of VALUE_BYTES-byte values, in chunks of LINES_PER_CHUNK
    lines (whole lines: a chunk's end is no line's middle, though the server does not need
    that)."""
    return [
        "".join(
            f'{{"key":"{key(i)}","value":"{value(i)}"}}\n'
            for i in range(start, min(start + LINES_PER_CHUNK, count))
        ).encode()
        for start in range(0, count, LINES_PER_CHUNK)
    ]


def copy_chunks(bucket: str, count: int) -> list[bytes]:
    """The same rows as COPY's text format takes them (bytea as \\x hex; no expiry)."""
    return [
        "".join(
            f"{bucket}\t{key(i)}\t\\\\x{value(i).encode().hex()}\t\\N\t{UPDATED_AT}\n"
            for i in range(start, min(start + LINES_PER_CHUNK, count))
        ).encode()
        for start in range(0, count, LINES_PER_CHUNK)
    ]


def growth(small: Transfer, large: Transfer) -> float:
    """How much higher the workers' peak resident size was with the large transfer than with
    the small one (the highest worker's, each time: the one that served it)."""
    return max(large["rss_peak"].values()) / max(small["rss_peak"].values()) - 1


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


class Sampler:
    """The workers' resident size every SAMPLE_EVERY seconds, in a thread, while in the `with`:
    the highest reading of each."""

    def __init__(self, pids: list[int]):
        self.pids = pids
        self.before = {pid: rss_mib(pid) for pid in pids}
        self.peak = dict(self.before)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "Sampler":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()
        self._read()  # and once more at the end

    def _run(self) -> None:
        while not self.done.wait(SAMPLE_EVERY):
            self._read()

    def _read(self) -> None:
        for pid in self.pids:
            self.peak[pid] = max(self.peak[pid], rss_mib(pid))


def transfer(pids: list[int], keys: int, run: Callable[[], int]) -> Transfer:
    """run() (a whole import or export, returning the keys it moved) timed, with the workers'
    resident size sampled meanwhile."""
    with Sampler(pids) as rss:
        started = time.perf_counter()
        moved = run()
        seconds = time.perf_counter() - started
    if moved != keys:
        raise RuntimeError(f"{moved:,} keys moved of {keys:,}")
    return {
        "keys": keys,
        "seconds": seconds,
        "keys_per_s": keys / seconds,
        "rss_before": rss.before,
        "rss_peak": rss.peak,
    }


def upload(port: int, auth: dict[str, str], bucket: str, chunks: list[bytes]) -> int:
    """One import request whose body is the chunks, sent chunked as they come from a
    generator; the keys the answer says were imported."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        conn.request(
            "POST",
            f"/v1/{bucket}",
            body=iter(chunks),
            headers={**auth, "Content-Type": "application/x-ndjson", "Accept": "application/json"},
            encode_chunked=True,
        )
        response = conn.getresponse()
        answer = response.read()
    finally:
        conn.close()
    if response.status != 200:
        raise RuntimeError(f"import: {response.status} {answer[:300]!r}")
    return int(json.loads(answer)["imported"])


def download(port: int, auth: dict[str, str], bucket: str) -> int:
    """One export of the bucket, read to its end in pieces; the lines it held."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    lines = 0
    try:
        conn.request("GET", f"/v1/{bucket}{EXPORT_QUERY}", headers=auth)
        response = conn.getresponse()
        if response.status != 200:
            raise RuntimeError(f"export: {response.status} {response.read()[:300]!r}")
        while piece := response.read1(1 << 20):
            lines += piece.count(b"\n")
    finally:
        conn.close()
    return lines


def copy_floor(bucket: str) -> tuple[float, float]:
    """COPY in and COPY out of COPY_ROWS rows, rows/s each: the best of COPY_TRIALS."""
    data = copy_chunks(bucket, COPY_ROWS)
    ins, outs = [], []
    with database_connection() as conn:
        conn.execute(f"DROP TABLE IF EXISTS {COPY_TABLE}")
        conn.execute(f"CREATE TABLE {COPY_TABLE} (LIKE api_item INCLUDING ALL)")
        try:
            for _ in range(COPY_TRIALS):
                conn.execute(f"TRUNCATE {COPY_TABLE}")
                checkpoint()
                started = time.perf_counter()
                with conn.cursor().copy(f"COPY {COPY_TABLE} ({COPY_COLUMNS}) FROM STDIN") as copy:
                    for chunk in data:
                        copy.write(chunk)
                ins.append(COPY_ROWS / (time.perf_counter() - started))
                conn.execute(f"VACUUM ANALYZE {COPY_TABLE}")
                rows = 0
                started = time.perf_counter()
                # What an export reads: one bucket's keys in key order, with what a line says.
                with conn.cursor().copy(
                    f"COPY (SELECT key, value, expires_at, version FROM {COPY_TABLE} "
                    "WHERE bucket_id = %s ORDER BY key) TO STDOUT",
                    [bucket],
                ) as copy:
                    for row in copy:
                        rows += bytes(row).count(b"\n")
                outs.append(COPY_ROWS / (time.perf_counter() - started))
                if rows != COPY_ROWS:
                    raise RuntimeError(f"COPY TO gave {rows:,} rows of {COPY_ROWS:,}")
        finally:
            conn.execute(f"DROP TABLE {COPY_TABLE}")
    return max(ins), max(outs)


class Background:
    """A function run in a thread; wait() joins it (wrk's `until`: it runs as long)."""

    def __init__(self, function: Callable[[], Transfer]):
        self.result: Transfer | None = None
        self.error: BaseException | None = None

        def run() -> None:
            try:
                self.result = function()
            except BaseException as exc:  # handed to the caller by wait()
                self.error = exc

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def wait(self) -> Transfer:
        self.thread.join()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def new_bucket(port: int, auth: dict[str, str]) -> str:
    status, body, _ = call(port, "POST", "/v1/", auth, b"default_ttl=0")
    if status != 200:
        raise RuntimeError(f"new bucket: {status} {body[:200]!r}")
    return body.decode()


def bulk(port: int, pids: list[int], auth: dict[str, str], args: argparse.Namespace) -> Bulk:
    # The 2 cores are shared: the load says how far the figures are this code's.
    load_before = os.getloadavg()[0]
    print(f"\nbulk (product alone), load average {load_before:.2f}")
    small_body, large_body = ndjson_chunks(SMALL), ndjson_chunks(LARGE)
    buckets = {n: new_bucket(port, auth) for n in (SMALL, LARGE)}
    copy_in, copy_out = copy_floor(buckets[LARGE])
    print(
        f"COPY of {COPY_ROWS:,} rows (best of {COPY_TRIALS}): {copy_in:,.0f} rows/s in, "
        f"{copy_out:,.0f} rows/s out"
    )
    warm = new_bucket(port, auth)
    for _ in range(4):  # the workers' first bulk requests load their code
        upload(port, auth, warm, ndjson_chunks(WARM_UP))
        download(port, auth, warm)

    imports: dict[str, Transfer] = {}
    exports: dict[str, Transfer] = {}
    print(
        f"{'':<8} {'keys':>10} {'seconds':>8} {'keys/s':>9} {'/ COPY':>7}  "
        "worker RSS MiB before -> peak"
    )
    for n in (SMALL, LARGE):
        checkpoint()
        body = small_body if n == SMALL else large_body
        imports[str(n)] = transfer(pids, n, partial(upload, port, auth, buckets[n], body))
        print_transfer("import", imports[str(n)], copy_in)
    with database_connection() as conn:
        # The export reads a settled table, as PostgreSQL's autovacuum leaves it in time (its
        # statistics and visibility map up to date), not one written a moment ago.
        conn.execute("VACUUM ANALYZE api_item")
    for n in (SMALL, LARGE):
        checkpoint()
        exports[str(n)] = transfer(pids, n, partial(download, port, auth, buckets[n]))
        print_transfer("export", exports[str(n)], copy_out)

    # Another account's GETs while an import runs, and as long right after.
    other_key = (
        manage("createapikey", "bulk-other", "--create-user", "--name", "bench")
        .strip()
        .splitlines()[-1]
    )
    other = {"X-Api-Key": other_key}
    other_bucket = new_bucket(port, other)
    status, answer, _ = call(port, "POST", f"/v1/{other_bucket}/k", other, b"v" * 100)
    if status != 200:
        raise RuntimeError(f"set: {status} {answer[:200]!r}")
    get_path = f"/v1/{other_bucket}/k"
    beside_bucket = new_bucket(port, auth)
    checkpoint()
    running = Background(
        lambda: transfer(pids, LARGE, lambda: upload(port, auth, beside_bucket, large_body))
    )
    during = wrk(port, get_path, 3600, args.connections, other, tag="bulk", until=running)
    beside = running.wait()
    without = wrk(port, get_path, max(2, round(beside["seconds"])), args.connections, other)
    print_transfer("beside", beside, copy_in)
    result: Bulk = {
        "copy_rows": COPY_ROWS,
        "copy_in": copy_in,
        "copy_out": copy_out,
        "imports": imports,
        "exports": exports,
        "beside": beside,
        "get_during": during,
        "get_without": without,
        "load": (load_before, os.getloadavg()[0]),
        "targets": TARGETS,
    }
    print(f"load average at the end {result['load'][1]:.2f}")
    for line in summary(result):
        print(line)
    return result


def print_transfer(what: str, t: Transfer, floor: float) -> None:
    before = ", ".join(f"{v:.0f}" for v in t["rss_before"].values())
    peak = ", ".join(f"{v:.0f}" for v in t["rss_peak"].values())
    print(
        f"{what:<8} {t['keys']:>10,} {t['seconds']:>8.2f} {t['keys_per_s']:>9,.0f} "
        f"{t['keys_per_s'] / floor:>7.2f}  {before} -> {peak}"
    )


def summary(r: Bulk) -> list[str]:
    """The figures against their targets, as the table and RESULTS.md say them."""
    t = r["targets"]
    imported, exported = r["imports"][str(LARGE)], r["exports"][str(LARGE)]
    import_growth = growth(r["imports"][str(SMALL)], imported)
    export_growth = growth(r["exports"][str(SMALL)], exported)
    during, without = r["get_during"]["p99"], r["get_without"]["p99"]
    return [
        f"import of {LARGE:,} keys in one streamed request: {imported['keys_per_s']:,.0f} keys/s, "
        f"{imported['keys_per_s'] / r['copy_in']:.2f} of COPY in "
        f"({r['copy_in']:,.0f} rows/s); target >= {t['import_keys_per_s']:,.0f} keys/s: "
        f"{met(imported['keys_per_s'] >= t['import_keys_per_s'])}",
        f"export of {LARGE:,} keys: {exported['keys_per_s']:,.0f} keys/s, "
        f"{exported['keys_per_s'] / r['copy_out']:.2f} of COPY out "
        f"({r['copy_out']:,.0f} rows/s); target >= {t['export_keys_per_s']:,.0f} keys/s: "
        f"{met(exported['keys_per_s'] >= t['export_keys_per_s'])}",
        f"workers' peak resident size, {LARGE:,} keys against {SMALL:,}: import "
        f"{import_growth:+.1%}, export {export_growth:+.1%}; target within "
        f"{t['rss_growth']:.0%}: "
        f"{met(max(abs(import_growth), abs(export_growth)) <= t['rss_growth'])}",
        f"another account's GET p99 while an import of {LARGE:,} keys runs: {during:.2f} ms, "
        f"against {without:.2f} ms in a run as long right after ({during / without:.2f}x; the "
        f"import meanwhile {r['beside']['keys_per_s']:,.0f} keys/s); target within "
        f"{t['p99_ratio']:g}x: {met(during <= t['p99_ratio'] * without)}",
    ]
