"""Runs of the `thisdb` tool: its main() in this process, or the installed script in a process
of its own."""

import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from thisdb.cli.main import main

THISDB = str(Path(sys.executable).with_name("thisdb"))  # the console script


@dataclass
class Result:
    """What a run of the `thisdb` tool gave."""

    status: int
    out: bytes
    err: bytes

    @property
    def text(self) -> str:
        return self.out.decode()

    @property
    def lines(self) -> list[str]:
        return self.text.splitlines()


def run_main(monkeypatch, args: list[str], stdin: bytes = b"") -> Result:
    """The tool's main() in this process, with stdin, stdout and stderr swapped for buffers."""
    out, err = io.BytesIO(), io.BytesIO()
    with monkeypatch.context() as patch:
        patch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
        patch.setattr(sys, "stdout", io.TextIOWrapper(out, encoding="utf-8", write_through=True))
        patch.setattr(sys, "stderr", io.TextIOWrapper(err, encoding="utf-8", write_through=True))
        status = main(args)
        sys.stdout.flush()
        sys.stderr.flush()
        return Result(status, out.getvalue(), err.getvalue())


def script(*args: str, stdin: bytes = b"", env: dict | None = None) -> Result:
    """The installed `thisdb` in its own process."""
    done = subprocess.run(
        [THISDB, *args], input=stdin, capture_output=True, env=env or os.environ, timeout=60
    )
    return Result(done.returncode, done.stdout, done.stderr)
