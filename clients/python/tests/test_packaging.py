"""The installed client as a type checker sees it: `pip install -e clients/python` (what
`make install` runs) must leave the package where mypy looks, with its types (py.typed)."""

import os
import subprocess
import sys

PROGRAM = """\
import thisdb


def count(db: thisdb.Client, bucket: str) -> str:
    return db.increment(bucket, "visits")  # an int: the one error mypy must report


with thisdb.Client("tdb_x", base_url="http://127.0.0.1:9") as db:
    value: bytes = db.get("b" * 20, "k")
"""


def test_mypy_finds_the_editable_install(tmp_path):
    program = tmp_path / "program.py"
    program.write_text(PROGRAM)
    env = {k: v for k, v in os.environ.items() if k not in ("MYPYPATH", "PYTHONPATH")}
    checked = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--cache-dir",
            str(tmp_path / "cache"),
            "program.py",
        ],
        cwd=tmp_path,  # away from the checkout: only the installed package can be found
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert "import-not-found" not in checked.stdout, checked.stdout
    assert checked.stdout.splitlines() == [
        'program.py:5: error: Incompatible return value type (got "int", expected "str")  '
        "[return-value]",
        "Found 1 error in 1 file (checked 1 source file)",
    ]
