"""What must hold whichever node answers: the hourly limit counted once for both, a revoked key
refused by both at once, a write on one node seen by a watcher on the other."""

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.cluster.topology import (
    NGINX,
    WEB_PORTS,
    manage,
    new_account,
    new_bucket,
    node_url,
    upstream_lines,
)
from tests.sse import Stream

pytestmark = pytest.mark.quick


def test_the_hourly_limit_is_exact_across_both_nodes(topology):
    account = new_account()  # 1,000 requests an hour (spec), none sent yet
    before = len(upstream_lines())

    def send(_: int) -> int:
        return httpx.get(f"{NGINX}/v1/", headers=account.headers, timeout=30).status_code

    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(send, range(1100)))

    assert statuses.count(200) == 1000
    assert statuses.count(429) == 100
    nodes = {line.split()[3] for line in upstream_lines()[before:]}
    assert nodes == {f"127.0.0.1:{port}" for port in WEB_PORTS}


def test_a_revoked_key_is_refused_at_once_on_both_nodes(topology):
    account = new_account()
    for port in WEB_PORTS:  # each node has now seen (and cached) the key
        assert httpx.get(f"{node_url(port)}/v1/", headers=account.headers).status_code == 200

    manage(
        "shell",
        "-c",
        "from accounts.models import ApiKey; from api import lifecycle; lifecycle.revoke_api_key("
        f"ApiKey.objects.get(user__username={account.username!r}))",
    )

    for port in WEB_PORTS:
        answer = httpx.get(f"{node_url(port)}/v1/", headers=account.headers)
        assert answer.status_code == 403
        assert answer.text.startswith("this API key has been revoked")


def test_a_write_on_one_node_reaches_a_watcher_on_the_other(topology):
    account = new_account()
    bucket = new_bucket(account, node_url(WEB_PORTS[0]))
    with Stream(WEB_PORTS[1], bucket, key=account.key, timeout=15) as stream:
        assert stream.status == 200, stream.body
        answer = httpx.post(
            f"{node_url(WEB_PORTS[0])}/v1/{bucket}/greeting",
            content=b"hello",
            headers=account.headers,
        )
        assert answer.status_code == 200, answer.text
        event = stream.next_event()
    assert event is not None and event.data is not None
    assert event.data["key"] == "greeting"
