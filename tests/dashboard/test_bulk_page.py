"""The bucket page's "Download all" (the API's export, as a file) and "Import" (an uploaded
NDJSON or Workers KV file, written by the API's import): the owner's only, CSRF-protected, with
a message that says how many keys were imported or which line stopped the import and what was
applied before it. (In a real browser through the production front: tests/test_browser_bulk.py.)"""

import base64
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from api.models import Bucket, Item
from api.writes import IMPORT_BATCH_LINES
from tests.api.test_import import ndjson, numbered, set_quota, stored

EXPORT = "?format=ndjson&values=true&all=true"


def download(person, bucket: str):
    return person.browser.get(f"/buckets/{bucket}/export/")


def upload(person, bucket: str, content: bytes, name: str = "keys.ndjson", **fields):
    """The form as a browser sends it: its fields (the CSRF token) before the file."""
    return person.browser.post(
        f"/buckets/{bucket}/import/", {**fields, "file": SimpleUploadedFile(name, content)}
    )


def messages_after(person, response) -> list[str]:
    """The messages the page shows after a form's redirect."""
    assert response.status_code == 303, response.content
    page = person.browser.get(response["Location"])
    return [str(m) for m in page.context["messages"]]


def remaining(person, bucket: str) -> int:
    """The API key's requests left this hour (the asking counts one)."""
    return int(person.client.get(f"/v1/{bucket}/none")["X-RateLimit-Remaining"])


# Download all.


def test_the_page_offers_both_without_script(alice, bucket):
    html = alice.browser.get(f"/buckets/{bucket}/").content.decode()
    assert f'id="download-all" href="/buckets/{bucket}/export/">Download all' in html
    assert f'action="/buckets/{bucket}/import/" enctype="multipart/form-data"' in html
    assert '<input type="file" id="import-file" name="file" required>' in html
    assert "Up to 1.0\xa0GB." in html  # THISDB_PAGE_IMPORT_MAX_BYTES, as the page says sizes
    assert f"thisdb export {bucket} &gt; {bucket}.ndjson" in html  # the command line's way


def test_with_bulk_off_the_page_offers_neither_and_both_are_404(alice, bucket, settings):
    """THISDB_BULK=false: no exports or imports on this server, the page's neither."""
    settings.THISDB_BULK = False
    alice.set(bucket, "a", "1")
    html = alice.browser.get(f"/buckets/{bucket}/").content.decode()
    assert 'id="download-all"' not in html and 'id="import-file"' not in html
    assert "This server has no downloads or imports" in html
    assert f"thisdb export {bucket} &gt; {bucket}.ndjson" in html  # which falls back
    assert download(alice, bucket).status_code == 404
    assert upload(alice, bucket, ndjson(numbered(2))).status_code == 404
    assert stored(bucket) == {"a": b"1"}


def test_download_all_is_the_apis_export_as_a_file(alice, bucket):
    alice.set(bucket, "text", "héllo")
    alice.set(bucket, "binary", b"\x00\xff\x80")
    alice.set(bucket, "line%0Abreak", "a\nb", "?ttl=0")
    response = download(alice, bucket)
    assert response.status_code == 200
    assert response.streaming  # read and sent a batch at a time
    assert response["Content-Type"] == "application/x-ndjson"
    assert response["Content-Disposition"] == f'attachment; filename="{bucket}.ndjson"'
    assert "no-store" in response["Cache-Control"]
    lines = b"".join(response.streaming_content)
    api = alice.client.get(f"/v1/{bucket}{EXPORT}")
    assert lines == b"".join(api.streaming_content)  # the same lines, byte for byte
    keys = [json.loads(line)["key"] for line in lines.splitlines()]
    assert keys == ["binary", "line\nbreak", "text"]


def test_download_all_of_an_empty_bucket_is_an_empty_file(alice, bucket):
    response = download(alice, bucket)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b""


def test_download_all_leaves_out_expired_keys_and_counts_no_request(alice, bucket):
    Item.objects.bulk_create(
        Item(bucket_id=bucket, key=f"k{n:05d}", value=b"v") for n in range(2500)
    )
    alice.set(bucket, "gone", "v", "?ttl=1")
    Item.objects.filter(bucket_id=bucket, key="gone").update(expires_at="2000-01-01T00:00Z")
    before = remaining(alice, bucket)
    lines = b"".join(download(alice, bucket).streaming_content).splitlines()
    assert len(lines) == 2500  # in two batches; "gone" is not among them
    # Pages count no API request, a download neither (the API's export would count 3).
    assert remaining(alice, bucket) == before - 1


def test_anothers_bucket_is_404_and_a_stranger_is_sent_to_log_in(alice, bob, bucket, client):
    alice.set(bucket, "secret", "alice's")
    assert download(bob, bucket).status_code == 404
    assert download(bob, "NoSuchBucket0000000x").status_code == 404
    assert client.get(f"/buckets/{bucket}/export/").status_code == 302  # the login form


# Import.


def test_an_ndjson_file_is_imported_as_the_api_imports_it(alice, bucket):
    lines = [
        {"key": "text", "value": "héllo", "ttl": 0},
        {"key": "bytes", "value": base64.b64encode(b"\x00\xff").decode(), "encoding": "base64"},
        {"key": "line\nbreak", "value": "a\nb", "ttl": 3600, "version": "7"},
    ]
    response = upload(alice, bucket, ndjson(lines))
    assert response["Location"] == f"/buckets/{bucket}/"
    assert messages_after(alice, response) == ["Imported 3 keys from “keys.ndjson”."]
    assert stored(bucket) == {"text": "héllo".encode(), "bytes": b"\0\xff", "line\nbreak": b"a\nb"}
    expires = dict(Item.objects.filter(bucket_id=bucket).values_list("key", "expires_at"))
    assert expires["text"] is None and expires["line\nbreak"] is not None
    # Without a ttl, the bucket's default, as a set from the page: a week.
    assert expires["bytes"] is not None


def test_a_download_imports_as_it_is_into_another_bucket(alice, bucket):
    for n in range(IMPORT_BATCH_LINES + 5):  # more than a batch
        Item.objects.create(bucket_id=bucket, key=f"k{n:05d}", value=f"v{n}".encode())
    alice.set(bucket, "binary", b"\xff\xfe")
    file = b"".join(download(alice, bucket).streaming_content)
    copy = alice.new_bucket()
    response = upload(alice, copy, file, name=f"{bucket}.ndjson")
    assert messages_after(alice, response) == [
        f"Imported {IMPORT_BATCH_LINES + 6:,} keys from “{bucket}.ndjson”."
    ]
    assert stored(copy) == stored(bucket)


def test_a_workers_kv_array_is_imported(alice, bucket):
    items = [
        {"key": "a", "value": "1", "expiration_ttl": 600},
        {"key": "b", "value": base64.b64encode(b"\x01\x02").decode(), "base64": True},
    ]
    response = upload(alice, bucket, b"\n  " + json.dumps(items).encode(), name="kv.json")
    assert messages_after(alice, response) == ["Imported 2 keys from “kv.json”."]
    assert stored(bucket) == {"a": b"1", "b": b"\x01\x02"}


def test_a_bad_line_in_the_middle_stops_there_and_says_what_was_applied(alice, bucket):
    lines = [*numbered(2), {"key": 42, "value": "x"}, *numbered(2, start=2)]
    response = upload(alice, bucket, ndjson(lines), name="data.ndjson")
    assert messages_after(alice, response) == [
        "The import of “data.ndjson” stopped. Line 3: key must be a string; lines 1 to 2 were "
        "applied (2 imported)."
    ]
    assert sorted(stored(bucket)) == ["k00000", "k00001"]


def test_a_bad_item_of_an_array_names_the_item(alice, bucket):
    items = [{"key": "a", "value": "1"}, {"key": "b", "value": "2", "metadata": {"x": 1}}]
    response = upload(alice, bucket, json.dumps(items).encode(), name="kv.json")
    [message] = messages_after(alice, response)
    assert message.startswith("The import of “kv.json” stopped. Item 2: metadata is not supported")
    assert message.endswith("; items 1 to 1 were applied (1 imported).")
    assert stored(bucket) == {"a": b"1"}


def test_a_file_over_the_key_quota_stops_at_the_first_key_past_it(alice, bucket):
    set_quota(alice, max_keys_per_bucket=3)
    response = upload(alice, bucket, ndjson(numbered(5)))
    [message] = messages_after(alice, response)
    assert message.startswith("The import of “keys.ndjson” stopped. Line 4: key quota reached")
    assert message.endswith("; lines 1 to 3 were applied (3 imported).")
    assert sorted(stored(bucket)) == ["k00000", "k00001", "k00002"]


@pytest.mark.parametrize("csrf_checked", [True, False])  # the check reads the upload first
def test_a_file_over_the_pages_limit_is_refused_whole(
    alice, bucket, settings, tmp_path, csrf_checked
):
    settings.THISDB_PAGE_IMPORT_MAX_BYTES = 1000
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 100  # to a temporary file, as a large upload goes
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)
    extra = {}
    if csrf_checked:
        token = alice.browser.get(f"/buckets/{bucket}/").context["csrf_token"]
        alice.browser.handler.enforce_csrf_checks = True
        extra["csrfmiddlewaretoken"] = str(token)
    response = upload(alice, bucket, ndjson(numbered(100)), name="big.ndjson", **extra)
    assert messages_after(alice, response) == [
        f"“big.ndjson” is larger than 1000\xa0bytes, the most this page imports: nothing was "
        f"imported. Import it from a terminal: thisdb import {bucket} FILE (any size)."
    ]
    assert stored(bucket) == {}
    assert list(tmp_path.iterdir()) == []  # what was written of it is gone


def test_a_large_file_goes_through_a_temporary_file(alice, bucket, settings, tmp_path):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1024  # Django writes a larger upload to disk
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)
    response = upload(alice, bucket, ndjson(numbered(2000)))
    assert messages_after(alice, response) == ["Imported 2,000 keys from “keys.ndjson”."]
    assert len(stored(bucket)) == 2000
    assert list(tmp_path.iterdir()) == []  # deleted once imported


def test_an_empty_file_and_no_file_say_so(alice, bucket):
    response = upload(alice, bucket, b"\n\n", name="empty.ndjson")
    said = messages_after(alice, response)
    assert said == ["“empty.ndjson” holds no keys: nothing was imported."]
    response = alice.browser.post(f"/buckets/{bucket}/import/", {})
    assert messages_after(alice, response) == [
        "Choose an NDJSON or Workers KV JSON file to import."
    ]


def test_an_import_counts_no_request(alice, bucket):
    before = remaining(alice, bucket)
    upload(alice, bucket, ndjson(numbered(300)))  # the API would count 3
    assert remaining(alice, bucket) == before - 1


def test_the_form_is_csrf_protected(alice, bucket):
    alice.browser.handler.enforce_csrf_checks = True
    response = upload(alice, bucket, ndjson(numbered(1)))
    assert response.status_code == 403
    assert stored(bucket) == {}


def test_the_form_with_its_token_is_accepted(alice, bucket):
    alice.browser.handler.enforce_csrf_checks = True
    page = alice.browser.get(f"/buckets/{bucket}/")
    token = page.context["csrf_token"]
    response = upload(alice, bucket, ndjson(numbered(1)), csrfmiddlewaretoken=str(token))
    assert messages_after(alice, response) == ["Imported 1 key from “keys.ndjson”."]


def test_anothers_bucket_is_404_and_untouched(alice, bob, bucket, client):
    alice.set(bucket, "k00000", "alice's")
    assert upload(bob, bucket, ndjson(numbered(3))).status_code == 404
    assert client.post(f"/buckets/{bucket}/import/", {}).status_code == 302  # the login form
    assert stored(bucket) == {"k00000": b"alice's"}


def test_a_get_goes_to_the_buckets_page(alice, bucket):
    response = alice.browser.get(f"/buckets/{bucket}/import/")
    assert response.status_code == 302 and response["Location"] == f"/buckets/{bucket}/"


@pytest.mark.parametrize("kind", ["export", "import"])
def test_a_bucket_deleted_meanwhile_is_404(alice, bucket, kind):
    Bucket.objects.filter(id=bucket).delete()
    response = download(alice, bucket) if kind == "export" else upload(alice, bucket, b"")
    assert response.status_code == 404
