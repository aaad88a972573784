"""The Python client and the `thisdb` tool against the platform over real HTTP (live_platform.py:
the one the environment names, or gunicorn serving a scratch database, started once per test
session), and without it (stand_in.py, or nothing listening).

Each test makes its own users and API keys (personas), so rate-limit counters and caches of the
server never carry over from one test to the next; rows the tests make stay until the end of
the session.
"""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import thisdb
from live_platform import Persona, Platform, running_platform


@pytest.fixture(scope="session")
def platform() -> Iterator[Platform]:
    with running_platform() as running:
        yield running


@pytest.fixture(scope="session")
def server(platform) -> str:
    """The platform's URL, with the per-key write limit off (tests write a key twice quickly)."""
    return platform.url


@pytest.fixture(scope="session")
def strict_server(platform) -> str:
    """The platform's URL with the spec's one write per second per key."""
    if platform.strict_url is None:
        pytest.skip("THISDB_TEST_STRICT_URL is not set: no server with the per-key write limit")
    return platform.strict_url


@pytest.fixture
def carol(platform) -> Persona:
    return platform.persona("carol")


@pytest.fixture
def db_client(server, carol) -> Iterator[thisdb.Client]:
    with thisdb.Client(carol.key, base_url=server) as client:
        yield client


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fresh HOME and XDG folders (profile file, shell history), and no THISDB_* settings."""
    for name in ("THISDB_URL", "THISDB_API_KEY", "THISDB_TOKEN", "THISDB_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return tmp_path


def has_bulk_routes(platform: Platform, url: str) -> bool:
    """Whether the server at `url` streams whole exports (`X-Thisdb-Export: all`), and so takes
    NDJSON imports: the bulk routes, which a server of an older version does not have (nor
    one run with THISDB_BULK=false)."""
    owner = platform.persona("bulk-probe")
    bucket = platform.new_bucket(owner)
    answer = httpx.get(
        f"{url}/v1/{bucket}",
        params={"format": "ndjson", "values": "true", "all": "true"},
        headers={"X-Api-Key": owner.key},
        timeout=30,
    )
    answer.raise_for_status()
    return answer.headers.get("X-Thisdb-Export", "").lower() == "all"


@pytest.fixture(scope="session")
def bulk_routes(platform) -> bool:
    """Whether the platform's main server has the bulk routes."""
    return has_bulk_routes(platform, platform.url)


@pytest.fixture
def with_bulk_routes(bulk_routes) -> None:
    """For the tests of the bulk routes themselves: skipped against a server without them."""
    if not bulk_routes:
        pytest.skip("the server has no bulk routes (no X-Thisdb-Export: all on an export)")


@pytest.fixture(scope="session")
def older_server(platform, bulk_routes) -> str:
    """A server without the bulk routes, with the spec's one write per second per key: for the
    tests of the client's fallbacks (paging, one write per key). The platform started by the
    tests serves itself so with THISDB_BULK=false (live_platform.py); a named one, at
    THISDB_TEST_OLDER_URL, or its strict server when it is of a version without the routes."""
    url = platform.older_url
    if url is None and not bulk_routes:
        url = platform.strict_url
    if url is None:
        pytest.skip(
            "THISDB_TEST_OLDER_URL is not set: no server without the bulk routes (THISDB_BULK="
            "false) to test the client's fallbacks against"
        )
    # A server that has the routes would test the bulk path twice and the fallback never.
    assert not has_bulk_routes(platform, url), f"{url} has the bulk routes: is THISDB_BULK=false?"
    return url


@pytest.fixture(params=["bulk routes", "without them"])
def either_server(request, server) -> str:
    """The platform's URL with the bulk routes, then a server without them (older_server): a
    test of what must be the same either way (the client falls back to paging and one write
    per key) runs against both."""
    if request.param == "bulk routes":
        return server
    url: str = request.getfixturevalue("older_server")
    return url


@pytest.fixture
def either_client(either_server, carol) -> Iterator[thisdb.Client]:
    with thisdb.Client(carol.key, base_url=either_server) as client:
        yield client
