"""`manage.py createapikey USERNAME [--name N] [--create-user]`: an API key for a user, printed
once as the last line of stdout."""

import os
import re
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client

from accounts import keys
from accounts.models import ApiKey

KEY_RE = re.compile(r"tdb_[0-9A-Za-z]{46}")
MANAGE_PY = Path(__file__).parents[2] / "manage.py"


def create_key(*args) -> tuple[str, str]:
    """Run the command; return its stdout and stderr."""
    out, err = StringIO(), StringIO()
    call_command("createapikey", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def test_it_prints_a_key_as_the_last_line_of_stdout(alice):
    out, _ = create_key("alice")
    secret = last_line(out)
    assert KEY_RE.fullmatch(secret), out
    api_key = ApiKey.objects.get(prefix=keys.parse(secret))
    assert api_key.user == alice.user
    assert api_key.hashed_secret == keys.hash_secret(secret)


def test_the_printed_key_works_against_the_api(alice):
    secret = last_line(create_key("alice")[0])
    response = Client(headers={"X-Api-Key": secret}).post("/v1/")
    assert response.status_code == 200, response.content
    assert len(response.content) == 20  # a bucket id


def test_each_run_makes_another_key(alice):
    first = last_line(create_key("alice")[0])
    second = last_line(create_key("alice")[0])
    assert first != second
    assert alice.user.api_keys.count() == 3  # the persona's, and these two


def test_the_notice_goes_to_stderr_and_does_not_hold_the_key(alice):
    out, err = create_key("alice")
    assert "API key for alice" in err
    assert "not shown again" in err
    assert last_line(out) not in err


def test_name_is_stored(alice):
    secret = last_line(create_key("alice", "--name", "ci runner")[0])
    assert ApiKey.objects.get(prefix=keys.parse(secret)).name == "ci runner"


def test_without_name_the_name_is_blank(alice):
    secret = last_line(create_key("alice")[0])
    assert ApiKey.objects.get(prefix=keys.parse(secret)).name == ""


def test_an_unknown_user_is_a_command_error(db):
    with pytest.raises(CommandError) as raised:
        create_key("nobody")
    message = str(raised.value)
    assert "no user named 'nobody'" in message
    assert "--create-user" in message
    assert not get_user_model().objects.filter(username="nobody").exists()
    assert not ApiKey.objects.exists()


def test_create_user_creates_the_user_and_its_key(db):
    out, _ = create_key("carol", "--create-user", "--name", "ci")
    user = get_user_model().objects.get(username="carol")
    api_key = ApiKey.objects.get(prefix=keys.parse(last_line(out)))
    assert api_key.user == user
    assert api_key.name == "ci"
    response = Client(headers={"X-Api-Key": last_line(out)}).post("/v1/")
    assert response.status_code == 200


def test_create_user_with_an_existing_user_reuses_it(alice):
    out, _ = create_key("alice", "--create-user")
    assert get_user_model().objects.filter(username="alice").count() == 1
    assert ApiKey.objects.get(prefix=keys.parse(last_line(out))).user == alice.user


def test_it_runs_as_a_real_command(tmp_path):
    # A temporary SQLite file, so the subprocess never touches the test or the project database.
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path}/db.sqlite3"

    def manage(*args):
        return subprocess.run(
            [sys.executable, str(MANAGE_PY), *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )

    migrated = manage("migrate", "--noinput")
    assert migrated.returncode == 0, migrated.stderr
    assert (tmp_path / "db.sqlite3").exists()

    created = manage("createapikey", "carol", "--create-user", "--name", "ci")
    assert created.returncode == 0, created.stderr
    assert KEY_RE.fullmatch(last_line(created.stdout)), created.stdout
    assert "API key for carol" in created.stderr

    refused = manage("createapikey", "dave")
    assert refused.returncode != 0
    assert "--create-user" in refused.stderr
