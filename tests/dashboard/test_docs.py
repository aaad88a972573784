"""The docs page: every endpoint with curl, Python and JavaScript examples, carrying the reader's
base URL and a real bucket id when logged in, never a secret."""

import os
import re
import shutil
import subprocess
import sys

import pytest

from api import statements
from api.models import Bucket
from dashboard.docs import endpoints
from tests.conftest import Persona

ENDPOINTS = [
    "POST /v1/",
    "GET /v1/",
    "GET /v1/&lt;bucket&gt;",
    "GET /v1/&lt;bucket&gt;?watch=true",
    "GET /v1/&lt;bucket&gt;?all=true",
    "PATCH /v1/&lt;bucket&gt;",
    "DELETE /v1/&lt;bucket&gt;",
    "GET /v1/&lt;bucket&gt;/&lt;key&gt;",
    "POST /v1/&lt;bucket&gt;/&lt;key&gt;",
    "PATCH /v1/&lt;bucket&gt;/&lt;key&gt;",
    "DELETE /v1/&lt;bucket&gt;/&lt;key&gt;",
    "POST /v1/&lt;bucket&gt;",
    "POST /v1/tokens",
]


def flat(html: str) -> str:
    return " ".join(
        html.replace('<span class="method">', "")
        .replace('</span> <span class="endpoint">', " ")
        .split()
    )


def test_every_endpoint_has_three_examples(client, db):
    response = client.get("/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    for endpoint in ENDPOINTS:
        assert endpoint in flat(html), endpoint
    sections = len(FIRST_SESSION)  # versions and conditional writes share get's and set's path
    assert html.count('data-language="curl"><pre>') == sections
    assert html.count('data-language="python"><pre>') == sections
    assert html.count('data-language="js"><pre>') == sections
    assert "YOUR_BUCKET_ID" in html
    assert "/api/docs/" in html  # the OpenAPI UI
    for status in ("304", "400", "403", "404", "406", "409", "412", "413", "429", "503"):
        assert f"<code>{status}</code>" in html


def test_logged_in_the_examples_carry_my_base_url_and_bucket_never_my_key(alice, bob):
    mine = alice.new_bucket()
    bob.new_bucket()
    html = alice.browser.get("/docs/", HTTP_HOST="db.example.org").content.decode()
    assert f"http://db.example.org/v1/{mine}" in html
    assert "YOUR_BUCKET_ID" not in html
    assert alice.key not in html and alice.key[:12] not in html
    assert "$THISDB_API_KEY" in html
    assert Bucket.objects.exclude(pk=mine).get().id not in html  # not bob's


FIRST_SESSION = [
    "create-bucket",
    "set",
    "get",
    "list",
    "export",
    "increment",
    "versions",
    "conditional",
    "transactions",
    "import",
    "watch",
    "delete",
    "tokens",
    "list-buckets",
    "update-bucket",
    "delete-bucket",
]


def test_the_examples_follow_a_first_session(client, db):
    html = client.get("/docs/").content.decode()
    sections = re.findall(r'<section class="card" id="([\w-]+)">', html)
    assert sections == FIRST_SESSION


def test_examples_that_change_or_delete_a_bucket_never_name_mine(alice):
    mine = alice.new_bucket()
    for endpoint in endpoints("http://db.example.org", mine):
        examples = (endpoint.curl, endpoint.python, endpoint.js)
        if endpoint.anchor in ("update-bucket", "delete-bucket"):
            assert all(mine not in example for example in examples), endpoint.anchor
        elif endpoint.path.startswith("/v1/<bucket>") or endpoint.anchor == "tokens":
            assert all(mine in example for example in examples), endpoint.anchor
    html = alice.browser.get("/docs/").content.decode()
    assert "$BUCKET_TO_DELETE" in html and "$BUCKET_TO_CHANGE" in html


def run(language: str, code: str, env: dict) -> subprocess.CompletedProcess:
    if language == "python":
        command = [sys.executable, "-c", code]
    else:
        if shutil.which("node") is None:
            pytest.fail("install Debian's nodejs (.ci/run does): it runs the JavaScript examples")
        command = ["node", "--input-type=module", "-e", code]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("language", ["python", "js"])
def test_the_examples_run_in_order_and_raise_on_an_error(live_server_url, language):
    base_url, _ = live_server_url
    alice = Persona("alice")
    mine, to_change, to_delete = alice.new_bucket(), alice.new_bucket(), alice.new_bucket()
    env = {
        **os.environ,
        "THISDB_API_KEY": alice.key,
        "BUCKET_TO_CHANGE": to_change,
        "BUCKET_TO_DELETE": to_delete,
    }
    examples = {e.anchor: getattr(e, language) for e in endpoints(base_url, mine)}
    printed = {}
    for anchor in FIRST_SESSION:
        if anchor == "watch" and language == "js":
            continue  # a browser's EventSource: run in chromium (tests/test_browser_live.py)
        done = run(language, examples[anchor], env)
        assert done.returncode == 0, (anchor, done.stderr)
        printed[anchor] = done.stdout

    # The versioned examples took their successful paths.
    assert "unchanged since" in printed["versions"]
    assert "new version" in printed["conditional"]
    assert "user:42:name" in printed["transactions"] and "taken" not in printed["transactions"]
    assert "foo" in printed["export"]  # the key the set example wrote
    assert "imported" in printed["import"] and "stopped" not in printed["import"]
    if language == "python":  # the snapshot's first key
        assert "'type': 'put', 'key': 'user:42:name', 'value': 'Ada'" in printed["watch"]
    assert alice.client.get(f"/v1/{mine}/greeting").content == b"hello"
    assert alice.client.get(f"/v1/{mine}/user:42:name").content == b"Ada"
    assert alice.client.get(f"/v1/{mine}/users").content == b"1"
    assert alice.client.get(f"/v1/{mine}/city:rome").content == b"Italy"

    # The session's own key is gone, so getting it again is a 404: the example fails loudly.
    done = run(language, examples["get"], env)
    assert done.returncode != 0
    assert "404: key not found" in done.stderr
    # My bucket is untouched; only the buckets named on purpose changed.
    assert Bucket.objects.get(pk=mine).default_ttl == 604800
    assert Bucket.objects.get(pk=to_change).default_ttl == 86400
    assert not Bucket.objects.filter(pk=to_delete).exists()
    assert alice.client.get(f"/v1/{mine}/visits").content == b"1"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("language", ["python", "js"])
def test_the_examples_that_expect_a_refusal_handle_it(live_server_url, language):
    """The create-only write meets a key that exists (412) and the transaction a name that is
    taken (409): each says so and exits cleanly, with nothing written."""
    base_url, _ = live_server_url
    alice = Persona("alice")
    mine = alice.new_bucket()
    # Written by the statements themselves: no write slot taken, as if written long ago.
    for key, value in (("foo", b"bar"), ("greeting", b"hi"), ("user:42:name", b"Grace")):
        statements.set_value(mine, key, value, ttl=0)
    env = {**os.environ, "THISDB_API_KEY": alice.key}
    examples = {e.anchor: getattr(e, language) for e in endpoints(base_url, mine)}

    done = run(language, examples["conditional"], env)
    assert done.returncode == 0, done.stderr
    assert "greeting exists already" in done.stdout
    assert alice.client.get(f"/v1/{mine}/greeting").content == b"hi"
    assert alice.client.get(f"/v1/{mine}/foo").content == b"BAR"  # its If-Match write held

    done = run(language, examples["transactions"], env)
    assert done.returncode == 0, done.stderr
    assert "taken; versions now:" in done.stdout
    assert alice.client.get(f"/v1/{mine}/user:42:name").content == b"Grace"
    assert alice.client.get(f"/v1/{mine}/users").status_code == 404
