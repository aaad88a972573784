"""The installed client as others see it: a type checker (the package where mypy looks, with its
types), and an install of the SDK alone (`pip install thisdb`, without the extra `cli`)."""

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest
import thisdb
from packaging.requirements import Requirement
from stand_in import answering
from tool_runs import THISDB

PROGRAM = """\
import thisdb


def count(db: thisdb.Client, bucket: str) -> str:
    return db.increment(bucket, "visits")  # an int: the one error mypy must report


with thisdb.Client("tdb_x", base_url="http://127.0.0.1:9") as db:
    value: bytes = db.get("b" * 20, "k")
"""


def test_mypy_finds_the_editable_install(tmp_path):
    """Editable (`pip install -e`, as `make install` does) or not, the package is where mypy
    looks, with its types (py.typed)."""
    pytest.importorskip("mypy")  # the test extra
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


def sdk_alone(folder: Path) -> dict[str, str]:
    """The environment of a Python that has the SDK as `pip install thisdb` installs it: run
    with -S (no site-packages), it finds in PYTHONPATH only thisdb and what its requirements
    without an extra bring (httpx, anyio and theirs), linked from this installation."""
    folder.mkdir()
    (folder / "thisdb").symlink_to(Path(thisdb.__file__).parent)
    wanted, todo = set(), ["thisdb"]
    while todo:
        for text in importlib.metadata.requires(todo.pop()) or []:
            requirement = Requirement(text)
            if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
                continue
            if requirement.name not in wanted:
                wanted.add(requirement.name)
                todo.append(requirement.name)
    for name in wanted:
        distribution = importlib.metadata.distribution(name)
        tops = {Path(file).parts[0] for file in distribution.files or []}
        for top in tops:
            if top not in ("..", "__pycache__") and not top.endswith((".dist-info", ".pth")):
                (folder / top).symlink_to(distribution.locate_file(top))
    assert not {"click", "rich", "prompt_toolkit", "tomli_w"} & {p.name for p in folder.iterdir()}
    return {**os.environ, "PYTHONPATH": str(folder)}


def test_the_sdk_works_without_the_tools_packages(tmp_path):
    program = """if True:
        import asyncio, sys, thisdb
        with thisdb.Client("tdb_x", base_url=sys.argv[1]) as db:
            print(db.get("b" * 20, "k"))
        async def main():
            async with thisdb.AsyncClient("tdb_x", base_url=sys.argv[1]) as db:
                print(await db.get("b" * 20, "k"))
        asyncio.run(main())
    """
    text = {"Content-Type": "text/plain"}
    with answering([(200, text, b"sync"), (200, text, b"async")]) as url:
        done = subprocess.run(
            [sys.executable, "-S", "-c", program, url],
            env=sdk_alone(tmp_path / "site"),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["b'sync'", "b'async'"]


def test_the_script_without_the_tools_packages_says_to_install_them(tmp_path):
    env = sdk_alone(tmp_path / "site")
    said = "error: the command-line tool needs click, rich, prompt_toolkit, tomli_w: "
    said += "pip install 'thisdb[cli]'\n"
    for command in ([THISDB], ["-m", "thisdb"]):  # the installed script, and python -m thisdb
        done = subprocess.run(
            [sys.executable, "-S", *command, "get", "b" * 20, "k"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert (done.returncode, done.stdout, done.stderr) == (2, "", said)
