"""The docs page: every endpoint with curl, Python and JavaScript examples, carrying the reader's
base URL and a real bucket id when logged in, never a secret."""

from api.models import Bucket

ENDPOINTS = [
    "POST /v1/",
    "GET /v1/",
    "GET /v1/&lt;bucket&gt;",
    "PATCH /v1/&lt;bucket&gt;",
    "DELETE /v1/&lt;bucket&gt;",
    "GET /v1/&lt;bucket&gt;/&lt;key&gt;",
    "POST /v1/&lt;bucket&gt;/&lt;key&gt;",
    "PATCH /v1/&lt;bucket&gt;/&lt;key&gt;",
    "DELETE /v1/&lt;bucket&gt;/&lt;key&gt;",
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
    assert html.count('data-language="curl"><pre>') == len(ENDPOINTS)
    assert html.count('data-language="python"><pre>') == len(ENDPOINTS)
    assert html.count('data-language="js"><pre>') == len(ENDPOINTS)
    assert "YOUR_BUCKET_ID" in html
    assert "/api/docs/" in html  # the OpenAPI UI
    for status in ("400", "403", "404", "406", "413", "429", "503"):
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
