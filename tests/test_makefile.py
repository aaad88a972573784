"""The Makefile installs what each command needs: running the platform (`run`, `serve`, `worker`,
`beat`) the project alone, without the test and check tools of its `dev` extras; the tests,
checks and bench everything; `make install` everything, for developers."""

import subprocess

import pytest

from tests.serving import PROJECT

RUNNING = ["run", "serve", "worker", "beat"]
DEVELOPING = ["install", "test", "check", "bench", "screenshots", "format", "migrations"]
DEV_TOOLS = ["pytest", "ruff", "mypy", "schemathesis", "pyinstrument", "thisdb"]


def make(*args: str) -> str:
    done = subprocess.run(
        ["make", *args], cwd=PROJECT, capture_output=True, text=True, timeout=600, check=True
    )
    return done.stdout


def installs(target: str, venv) -> list[str]:
    """The pip installs `make <target>` would run on a fresh clone (make -n runs nothing)."""
    lines = make("-n", target, f"VENV={venv}").splitlines()
    return [line for line in lines if "-m pip install" in line and "--upgrade pip" not in line]


@pytest.mark.parametrize("target", RUNNING)
def test_running_the_platform_installs_the_project_without_its_dev_extras(target, tmp_path):
    assert [line.split("install --quiet ")[1] for line in installs(target, tmp_path)] == ["-e ."]


@pytest.mark.parametrize("target", DEVELOPING)
def test_developing_installs_the_dev_extras_and_the_client(target, tmp_path):
    commands = [line.split("install --quiet ")[1] for line in installs(target, tmp_path)]
    assert commands == ["-e .", "-e '.[dev]' -e 'clients/python[cli]'"]


def test_the_running_install_has_the_servers_and_none_of_the_dev_tools(tmp_path):
    """For real, into a new virtualenv: what `make serve` installs on a fresh clone."""
    venv = tmp_path / "venv"
    make("-s", f"VENV={venv}", f"{venv}/.installed-run-stamp")
    present = {path.name for path in (venv / "bin").iterdir()}
    assert {"granian", "celery", "honcho", "gunicorn"} <= present
    assert present.isdisjoint(DEV_TOOLS), present & set(DEV_TOOLS)
    imports = "import django, rest_framework, psycopg_pool, allauth, csp; print('ok')"
    check = subprocess.run([venv / "bin" / "python", "-c", imports], capture_output=True, text=True)
    assert check.stdout == "ok\n", check.stderr
