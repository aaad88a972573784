"""The tests of the topology of `make cluster` (docs/scaling.md), run by `make test-cluster`
against it: over HTTP through nginx or to one web node, and with its own `manage.py`."""

import httpx
import pytest

from tests.cluster.topology import NGINX, WEB_PORTS, node_url


@pytest.fixture(scope="session")
def topology() -> None:
    """The topology answers: nginx and both web nodes ready (`make test-cluster` starts it)."""
    for base in (NGINX, *map(node_url, WEB_PORTS)):
        try:
            answer = httpx.get(f"{base}/readyz", timeout=10)
        except httpx.HTTPError as error:
            raise AssertionError(f"{base} does not answer ({error}): run `make cluster`") from None
        assert answer.status_code == 200, f"{base}/readyz: {answer.status_code} {answer.text}"
