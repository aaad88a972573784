"""PostgreSQL servers of a test's own: initdb into a temporary folder, on a free port (never the
shared server), and streaming standbys of them (pg_basebackup -R), which a test may stop,
start and promote."""

import glob
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from tests.serving import free_port

PG_BIN = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1])


class PrivatePostgres:
    def __init__(self, *settings: str, standby_of: "PrivatePostgres | None" = None):
        """A new server (initdb), or a standby of a running one; `settings` are its `-c`
        options (e.g. "log_statement=all")."""
        self.settings = settings
        self.folder = Path(tempfile.mkdtemp(prefix="thisdb-pg-"))
        shutil.chown(self.folder, "postgres")
        self.data = self.folder / "data"
        self.port = free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/thisdb"
        if standby_of is None:
            self._as_postgres(
                PG_BIN / "initdb",
                "-D",
                self.data,
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-instructions",
            )
        else:
            # A copy of the primary that streams its changes from then on (-R: standby.signal
            # and primary_conninfo written for it); initdb's rules trust replication on loopback.
            self._as_postgres(
                PG_BIN / "pg_basebackup",
                "-D",
                self.data,
                "-R",
                "-X",
                "stream",
                "--checkpoint=fast",  # a spread one took 97 s here for a few MB
                "-h",
                "127.0.0.1",
                "-p",
                standby_of.port,
                "-U",
                "postgres",
            )

    def _as_postgres(self, *command) -> None:
        # initdb and postgres refuse to run as root.
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *map(str, command)],
            check=True,
            capture_output=True,
            timeout=120,
        )

    @property
    def log(self) -> Path:
        return self.folder / "log"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
        options += "".join(f" -c {setting}" for setting in self.settings)
        self._as_postgres(
            PG_BIN / "pg_ctl", "-D", self.data, "-o", options, "-l", self.log, "-w", "start"
        )

    def stop(self) -> None:
        self._as_postgres(PG_BIN / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")

    def promote(self) -> None:
        """A standby becomes a primary (what Patroni does on a failover)."""
        self._as_postgres(PG_BIN / "pg_ctl", "-D", self.data, "-w", "promote")

    def connect(self, dbname: str = "thisdb"):
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname=dbname, autocommit=True
        )

    def wait_for_standby(self, timeout: float = 30) -> None:
        """Until a standby streams from this server."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.connect("postgres") as conn:
                query = "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"
                if conn.execute(query).fetchone()[0]:
                    return
            time.sleep(0.2)
        raise AssertionError(f"no standby streams from port {self.port} after {timeout} s")

    def remove(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(self.folder, ignore_errors=True)
