"""The topology of `make cluster` as its tests reach it: nginx, each web node, the platform's
settings (var/cluster/platform.env), `manage.py` against its database, the cluster script's
fault commands, and a steady load that counts every answer."""

import os
import subprocess
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

PROJECT = Path(__file__).resolve().parents[2]
CLUSTER_DIR = Path(os.environ.get("THISDB_CLUSTER_DIR", PROJECT / "var" / "cluster"))
SCRIPT = PROJECT / "deploy" / "cluster" / "cluster.sh"
NGINX = "http://127.0.0.1:8100"
WEB_PORTS = (8101, 8102)
# Straight to PostgreSQL (not through PgBouncer): what was stored, whichever node is primary.
PRIMARY = (
    "host=127.0.0.1,127.0.0.1 port=5441,5442 dbname=thisdb user=thisdb "
    "target_session_attrs=read-write connect_timeout=3"
)


def node_url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def platform_env() -> dict[str, str]:
    """The settings every web node and worker of the topology runs with."""
    lines = (CLUSTER_DIR / "platform.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def manage(*args: str, stdin: str | None = None) -> str:
    """`manage.py ARGS` on the topology's database and Redis; its stdout."""
    done = subprocess.run(
        [str(PROJECT / ".venv" / "bin" / "python"), "manage.py", *args],
        cwd=PROJECT,
        env={**os.environ, **platform_env()},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def cluster(*args: str) -> None:
    """deploy/cluster/cluster.sh COMMAND on the topology (web-stop 8101, postgres-kill pg1...)."""
    command, *rest = args
    subprocess.run(["bash", str(SCRIPT), command, str(CLUSTER_DIR), *rest], check=True, timeout=300)


@dataclass
class Account:
    username: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Api-Key": self.key}


def new_account(requests_per_hour: int | None = None) -> Account:
    """A new user and API key on the topology (`manage.py createapikey`); with
    requests_per_hour, the account's own hourly limit, as staff would raise it."""
    username = f"cluster-{uuid.uuid4().hex[:12]}"
    key = manage("createapikey", username, "--create-user").strip().splitlines()[-1]
    if requests_per_hour is not None:
        manage(
            "shell",
            "-c",
            "from accounts.models import Account; from django.contrib.auth import "
            f"get_user_model as g; u = g().objects.get(username={username!r}); "
            f"Account.objects.update_or_create(user=u, defaults={{'requests_per_hour': "
            f"{requests_per_hour}}})",
        )
    return Account(username, key)


def new_bucket(account: Account, base: str = NGINX) -> str:
    answer = httpx.post(f"{base}/v1/", headers=account.headers, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.text


def stored(bucket: str) -> dict[str, bytes]:
    """A bucket's keys and values as the primary holds them."""
    with psycopg.connect(PRIMARY) as connection:
        rows = connection.execute(
            "SELECT key, value FROM api_item WHERE bucket_id = %s", [bucket]
        ).fetchall()
    return {key: bytes(value) for key, value in rows}


def upstream_lines() -> list[str]:
    """nginx's log of which node answered each request (deploy/cluster/nginx.sh)."""
    return (CLUSTER_DIR / "nginx" / "upstreams.log").read_text().splitlines()


@dataclass
class Answer:
    at: float  # time.monotonic() when it came
    method: str
    status: int  # 0: no HTTP answer (connection refused, reset, timed out)
    retry_after: str | None
    sent: float = 0.0  # time.monotonic() when the request went


@dataclass
class Load:
    """Threads writing new keys and reading back acknowledged ones through `base` until
    stopped, keeping every answer. Each write is a new key, so the per-key write rule never
    answers; the account's hourly limit must be high enough (new_account(requests_per_hour=)).
    """

    account: Account
    bucket: str
    threads: int = 4
    base: str = NGINX
    pause: float = 0.01  # s between two requests of a thread: a steady load, not a flood
    answers: list[Answer] = field(default_factory=list)
    acknowledged: dict[str, bytes] = field(default_factory=dict)
    wrong_reads: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> "Load":
        for n in range(self.threads):
            worker = threading.Thread(target=self._run, args=(n,), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=60)

    def _run(self, n: int) -> None:
        mine: list[str] = []
        with httpx.Client(base_url=self.base, headers=self.account.headers, timeout=20) as client:
            i = 0
            while not self._stop.is_set():
                i += 1
                key, value = f"t{n}-{i}", f"value {n} {i} {uuid.uuid4().hex}".encode()
                status, _ = self._send(client, "POST", f"/v1/{self.bucket}/{key}", value)
                if status == 200:
                    with self._lock:
                        self.acknowledged[key] = value
                    mine.append(key)
                if mine:
                    read = mine[i % len(mine)]
                    status, body = self._send(client, "GET", f"/v1/{self.bucket}/{read}")
                    if status == 200 and body != self.acknowledged[read]:
                        self.wrong_reads.append(read)
                time.sleep(self.pause)

    def _send(
        self, client: httpx.Client, method: str, path: str, body: bytes = b""
    ) -> tuple[int, bytes]:
        """The answer's status (0: none) and body, the answer kept."""
        content = b""
        sent = time.monotonic()
        try:
            answer = client.request(method, path, content=body or None)
            status, retry_after = answer.status_code, answer.headers.get("Retry-After")
            content = answer.content
        except httpx.HTTPError:
            status, retry_after = 0, None
        with self._lock:
            self.answers.append(Answer(time.monotonic(), method, status, retry_after, sent))
        return status, content

    def statuses(self, method: str | None = None, since: float = 0.0) -> Counter:
        with self._lock:
            return Counter(
                a.status
                for a in self.answers
                if (method is None or a.method == method) and a.at >= since
            )

    def wait_for_answers(self, count: int, timeout: float = 60) -> None:
        """Until `count` more answers came (the load is running)."""
        target = len(self.answers) + count
        deadline = time.monotonic() + timeout
        while len(self.answers) < target:
            assert time.monotonic() < deadline, f"the load got {len(self.answers)} answers"
            time.sleep(0.05)
