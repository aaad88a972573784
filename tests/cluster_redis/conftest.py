"""A Redis Cluster of the tests' own (deploy/cluster/redis-cluster.sh: three masters with a
replica each, on ports 7101-7106), and the settings that put the platform on it.

Settings are read when a process starts: a served process (tests.serving) gets its own
environment (cluster_environment), and this process switches its settings for a test with
pytest-django's `settings` (on_cluster), as the other tests switch theirs.
"""

import subprocess
from pathlib import Path

import pytest
from django.core.cache import caches
from redis.cluster import RedisCluster

from api import limits
from tests.conftest import RUN_PREFIX, clear_cache
from thisdb_site.settings import redis_cache

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "cluster" / "redis-cluster.sh"
BASE_PORT = 7101
# Celery cannot use a Redis Cluster (settings.py refuses to start without a broker of its own):
# RabbitMQ, which runs on these machines.
BROKER_URL = "amqp://guest:guest@127.0.0.1:5672//"


def run_script(action: str, folder: Path) -> str:
    done = subprocess.run(
        ["bash", str(SCRIPT), action, str(folder), str(BASE_PORT)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


class Cluster:
    def __init__(self, folder: Path, url: str):
        self.folder = folder
        self.url = url
        self.client = RedisCluster.from_url(url)
        self.ports = range(BASE_PORT, BASE_PORT + 6)

    def keyslot(self, name: str) -> int:
        """The slot as the cluster itself says (CLUSTER KEYSLOT)."""
        return int(self.client.execute_command("CLUSTER KEYSLOT", name))

    def master_port(self, name: str) -> int:
        """The port of the master that holds `name`'s slot, as the cluster says now."""
        self.client.nodes_manager.initialize()
        node = self.client.get_node_from_key(name)
        assert node is not None
        return int(node.port)

    def pid(self, port: int) -> int:
        return int((self.folder / str(port) / "redis.pid").read_text())

    def start(self) -> None:
        """Start what is not running (a killed node rejoins as a replica)."""
        run_script("start", self.folder)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    folder = tmp_path_factory.mktemp("redis-cluster")
    url = run_script("start", folder).strip().splitlines()[-1]
    assert url == f"redis://127.0.0.1:{BASE_PORT}"
    made = Cluster(folder, url)
    yield made
    made.client.close()
    run_script("stop", folder)


def cluster_environment(cluster: Cluster, **more: str) -> dict:
    """A served process's settings on the cluster (tests.serving.served)."""
    return {
        "REDIS_URL": cluster.url,
        "REDIS_CLUSTER": "true",
        "CELERY_BROKER_URL": BROKER_URL,
        "THISDB_REDIS_PREFIX": RUN_PREFIX,
        **more,
    }


@pytest.fixture
def on_cluster(settings, cluster):
    """This process's settings on the cluster for one test: the limits, the cache."""
    settings.REDIS_URL = cluster.url
    settings.REDIS_CLUSTER = True
    settings.CACHES = {"default": {**redis_cache(cluster.url, True), "KEY_PREFIX": RUN_PREFIX}}
    limits.reset()
    assert caches["default"].key_prefix == RUN_PREFIX
    clear_cache()
    yield cluster
    limits.reset()
