"""The web workers' resident size: at start, after 100,000 requests, and after listing the
1,000,000-key bucket page by page with values."""

import argparse
from pathlib import Path
from typing import Any

from bench.load import wrk
from bench.stack import call


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def memory(
    port: int, pids: list[int], auth: dict[str, str], bucket: str, args: argparse.Namespace
) -> dict[str, Any]:
    """Workers' resident size now, after 100,000 requests in all, and after listing the
    1,000,000-key bucket page by page."""
    before = {pid: rss_mib(pid) for pid in pids}
    served = 0
    while served < 100_000:
        served += wrk(port, f"/v1/{bucket}?limit=10", 10, args.connections, auth)["requests"]
    after_requests = {pid: rss_mib(pid) for pid in pids}
    pages, cursor, keys = 0, None, 0
    path = f"/v1/{bucket}?values=true&limit=1000"
    while True:
        status, body, cursor = call(
            port, "GET", path + (f"&cursor={cursor}" if cursor else ""), auth
        )
        assert status == 200, body[:200]
        pages += 1
        keys += body.count(b"\n") + 1
        if not cursor:
            break
    after_listing = {pid: rss_mib(pid) for pid in pids}
    growth = max(after_listing[p] / after_requests[p] for p in pids) - 1
    print(
        f"\nworker RSS: {', '.join(f'{v:.0f}' for v in before.values())} MiB at start, "
        f"{', '.join(f'{v:.0f}' for v in after_requests.values())} MiB after {served:,} requests, "
        f"{', '.join(f'{v:.0f}' for v in after_listing.values())} MiB after listing {keys:,} keys "
        f"in {pages} pages: {growth:+.1%} (target: within 10%)"
    )
    return {
        "before": before,
        "after_requests": after_requests,
        "requests": served,
        "after_listing": after_listing,
        "pages": pages,
        "keys": keys,
        "growth": growth,
    }
