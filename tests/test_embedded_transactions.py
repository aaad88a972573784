"""The transaction engine on the embedded default (SQLite, no Redis): its ops run one by one
through the single writes, in one database transaction, with the same answers."""

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.serving import PLATFORM_SETTINGS

PROJECT = Path(__file__).parents[1]

# Run in a process of its own: the test process's database is PostgreSQL.
SCRIPT = """
import json
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.contrib.auth import get_user_model
from accounts.models import ApiKey
from api import principals, scoping, statements, transactions
from api.errors import ApiError
from api.models import Bucket

user = get_user_model().objects.create_user("u", "u@example.com", "a long password 9")
_, secret = ApiKey.objects.create_key(user, name="t")
principal = principals.principal_for_api_key(secret)
bucket = Bucket.objects.create(owner=user, default_ttl=0).id
info = scoping.owned_bucket(principal, bucket)
statements.set_value(bucket, "tmp:1", b"x", 0)
statements.set_value(bucket, "old", b"x", 0)
statements.set_value(bucket, "big", b"9223372036854775807", 0)


def run(body):
    try:
        return transactions.run(
            principal, info, transactions.parse(json.dumps(body).encode()), create=True
        )
    except transactions.Conflict as exc:
        return exc.body
    except ApiError as exc:
        return {"error": str(exc.detail), "q": statements.get_value(bucket, "q")}


answers = [
    run({"checks": [{"key": "a", "version": None}], "ops": [
        {"op": "set", "key": "a", "value": "1"},
        {"op": "increment", "key": "n", "by": 5},
        {"op": "get", "key": "a"},
        {"op": "count", "prefix": ""},
        {"op": "delete_prefix", "prefix": "tmp:"},
        {"op": "delete", "key": "old"},
        {"op": "set", "key": "bin", "value": "/w==", "encoding": "base64"},
        {"op": "get", "key": "bin"},
    ]}),
    run({"checks": [{"key": "a", "version": None}], "ops": []}),
    run({"ops": [{"op": "set", "key": "q", "value": "1"},
                 {"op": "increment", "key": "big", "by": 1}]}),
]
print(json.dumps(answers))
"""


def test_a_transaction_on_the_embedded_default(tmp_path):
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in PLATFORM_SETTINGS and not name.startswith("THISDB_")
    }
    env["DATABASE_URL"] = f"sqlite:///{tmp_path}/db.sqlite3"
    env["DJANGO_SETTINGS_MODULE"] = "thisdb_site.settings"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=PROJECT, env=env, capture_output=True, check=True
    )
    applied, conflict, refused = json.loads(done.stdout.splitlines()[-1])
    results = applied["results"]
    assert results[1] == {"key": "n", "value": 5, "version": results[1]["version"]}
    assert results[2] == {"key": "a", "value": "1", "version": results[0]["version"]}
    assert results[3:6] == [
        {"prefix": "", "count": 5, "more": False},
        {"prefix": "tmp:", "deleted": 1},
        {"key": "old", "deleted": True},
    ]
    assert results[7] == {
        "key": "bin",
        "value": "/w==",
        "encoding": "base64",
        "version": results[6]["version"],
    }
    assert conflict == {"ok": False, "failed": [0], "versions": {"a": results[0]["version"]}}
    assert refused == {
        "error": "ops[1]: the result would not fit in a 64-bit integer; nothing was applied",
        "q": None,
    }
