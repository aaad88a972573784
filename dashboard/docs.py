"""The API reference of the docs page: every endpoint with a curl, a Python and a JavaScript
example, its parameters and its answers. Examples carry the reader's base URL and bucket id;
never a secret (the key is read from the environment, as it should be in real code)."""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Endpoint:
    anchor: str
    title: str
    method: str
    path: str
    summary: str
    params: list[tuple[str, str]] = field(default_factory=list)  # (name, meaning)
    answers: list[tuple[str, str]] = field(default_factory=list)  # (status, when)
    curl: str = ""
    python: str = ""
    js: str = ""
    token_ok: bool = False  # may be called with X-Token instead of X-Api-Key


# Each example runs alone, so each starts with these. ok() fails loudly: success is exactly 200,
# and any other answer's body says what went wrong.
PY_HEAD = """import os, httpx
headers = {"X-Api-Key": os.environ["THISDB_API_KEY"]}

def ok(response):  # anything but 200 raises, with the API's message
    if response.status_code != 200:
        raise RuntimeError(f"{response.status_code}: {response.text}")
    return response

"""
JS_HEAD = """const headers = { 'X-Api-Key': process.env.THISDB_API_KEY }
// anything but 200 throws, with the API's message
async function ok (request) {
  const response = await request
  if (response.status !== 200) throw new Error(`${response.status}: ${await response.text()}`)
  return response
}

"""
# Examples that change or delete a bucket never name the reader's own: they read the id from a
# variable the reader sets on purpose.
TO_CHANGE, TO_DELETE = "BUCKET_TO_CHANGE", "BUCKET_TO_DELETE"


def endpoints(base: str, bucket: str) -> list[Endpoint]:
    """The endpoints in the order of a first session: create a bucket, set, get, list,
    increment and delete keys; then tokens and the bucket-wide calls, destructive ones last."""
    v1 = f"{base}/v1"
    return [
        Endpoint(
            "create-bucket",
            "Create a bucket",
            "POST",
            "/v1/",
            "Creates a bucket and answers its 20-character id.",
            params=[
                (
                    "default_ttl",
                    "optional form field: seconds keys live after their last write "
                    "(default 604800, a week; 0 = never expire)",
                ),
            ],
            answers=[
                ("200", "the bucket id"),
                ("403", "wrong key, read-only key, a token, or the bucket quota reached"),
            ],
            curl=f"curl -d 'default_ttl=3600' -H \"X-Api-Key: $THISDB_API_KEY\" {v1}/",
            python=PY_HEAD + f'bucket = ok(httpx.post("{v1}/", data={{"default_ttl": 3600}}, '
            "headers=headers)).text\nprint(bucket)",
            js=JS_HEAD + f"const bucket = await (await ok(fetch('{v1}/', {{ method: 'POST', "
            "headers, body: new URLSearchParams({ default_ttl: '3600' }) }))).text()\n"
            "console.log(bucket)",
        ),
        Endpoint(
            "set",
            "Set a key",
            "POST",
            "/v1/<bucket>/<key>",
            "The request body is the value, byte for byte, whatever its Content-Type (PUT "
            "works too). Every write restarts the key's TTL. Percent-encode the key in the URL.",
            params=[("ttl", "query parameter: seconds to live, 0 = never (default: the bucket's)")],
            answers=[
                ("200", "OK"),
                ("413", "the value is over 1 MiB"),
                ("429", "the key was written less than a second ago (Retry-After)"),
            ],
            token_ok=True,
            curl=f"curl -d 'bar' -H \"X-Api-Key: $THISDB_API_KEY\" '{v1}/{bucket}/foo?ttl=3600'",
            python=PY_HEAD + f'ok(httpx.post("{v1}/{bucket}/foo", params={{"ttl": 3600}}, '
            'content=b"bar", headers=headers))',
            js=JS_HEAD + f"await ok(fetch('{v1}/{bucket}/foo?ttl=3600', {{ method: 'POST', "
            "headers, body: 'bar' }))",
        ),
        Endpoint(
            "get",
            "Get a key",
            "GET",
            "/v1/<bucket>/<key>",
            'Answers the stored bytes unchanged (text), or {"key", "value"} in JSON, with '
            '"encoding": "base64" when the bytes are not UTF-8.',
            params=[("format", "text (default), json or ndjson")],
            answers=[("200", "the value"), ("404", "no such key, or it expired")],
            token_ok=True,
            curl=f'curl -H "X-Api-Key: $THISDB_API_KEY" {v1}/{bucket}/foo',
            python=PY_HEAD + f'value = ok(httpx.get("{v1}/{bucket}/foo", headers=headers)).content'
            "\nprint(value)",
            js=JS_HEAD + f"const value = await (await ok(fetch('{v1}/{bucket}/foo', "
            "{ headers }))).text()\nconsole.log(value)",
        ),
        Endpoint(
            "list",
            "List the keys of a bucket",
            "GET",
            "/v1/<bucket>",
            "Keys in byte order, one a line (text), or as JSON / NDJSON. A full page carries "
            "X-Next-Cursor: pass it back as cursor= for the next page, over any bucket size.",
            params=[
                ("limit", "1 to 1000 keys a page (default 1000)"),
                ("values", "true to include each key's value"),
                ("prefix", "only keys starting with this"),
                ("cursor", "the X-Next-Cursor of the previous page"),
                ("format", "text (default), json or ndjson"),
            ],
            answers=[("200", "the keys"), ("400", "a bad parameter"), ("404", "no such bucket")],
            token_ok=True,
            curl=f"curl -H \"X-Api-Key: $THISDB_API_KEY\" '{v1}/{bucket}?prefix=user:&format=json'",
            python=PY_HEAD + f'url, params = "{v1}/{bucket}", {{"format": "json"}}\n'
            "while True:\n"
            "    page = ok(httpx.get(url, params=params, headers=headers)).json()\n"
            '    for item in page["items"]:\n'
            '        print(item["key"])\n'
            '    if not page["next_cursor"]:\n'
            "        break\n"
            '    params["cursor"] = page["next_cursor"]',
            js=JS_HEAD + f"const page = await (await ok(fetch('{v1}/{bucket}?format=json', "
            "{ headers }))).json()\n"
            "console.log(page.items.map((item) => item.key), page.next_cursor)",
        ),
        Endpoint(
            "increment",
            "Increment a key",
            "PATCH",
            "/v1/<bucket>/<key>",
            "Adds +N or -N (64-bit) in one atomic statement and answers the new value: "
            "concurrent increments never lose an update. An absent key counts from 0.",
            params=[("body", "exactly +N, -N or N: no space or newline"), ("ttl", "as for set")],
            answers=[
                ("200", "the new value"),
                (
                    "400",
                    "the body or the stored value is not "
                    "a whole number, or the result would pass 64 bits",
                ),
            ],
            token_ok=True,
            curl=f"curl -X PATCH -d '+1' -H \"X-Api-Key: $THISDB_API_KEY\" {v1}/{bucket}/visits",
            python=PY_HEAD + f'count = int(ok(httpx.patch("{v1}/{bucket}/visits", content=b"+1", '
            "headers=headers)).text)\nprint(count)",
            js=JS_HEAD + f"const count = Number(await (await ok(fetch('{v1}/{bucket}/visits', "
            "{ method: 'PATCH', headers, body: '+1' }))).text())\nconsole.log(count)",
        ),
        Endpoint(
            "delete",
            "Delete a key",
            "DELETE",
            "/v1/<bucket>/<key>",
            "Deletes one key.",
            answers=[("200", "OK"), ("404", "no such key")],
            token_ok=True,
            curl=f'curl -X DELETE -H "X-Api-Key: $THISDB_API_KEY" {v1}/{bucket}/foo',
            python=PY_HEAD + f'ok(httpx.delete("{v1}/{bucket}/foo", headers=headers))',
            js=JS_HEAD + f"await ok(fetch('{v1}/{bucket}/foo', {{ method: 'DELETE', headers }}))",
        ),
        Endpoint(
            "tokens",
            "Create a token",
            "POST",
            "/v1/tokens",
            "A token reads and/or writes the keys of one bucket that start with a prefix, for "
            "up to a day. Give it to a browser instead of your API key.",
            params=[
                ("bucket", "the bucket id"),
                ("prefix", "a key name, or the start of the keys it may reach ('' = all)"),
                ("permissions", "read, write or read,write"),
                ("ttl", "seconds it lives, 1 to 86400"),
            ],
            answers=[
                ("200", "the token"),
                ("400", "a missing or bad field"),
                ("404", "no such bucket"),
            ],
            curl=f'curl -H "X-Api-Key: $THISDB_API_KEY" -d \'bucket={bucket}&prefix=user:42:'
            f"&permissions=read,write&ttl=3600' {v1}/tokens",
            python=PY_HEAD + f'token = ok(httpx.post("{v1}/tokens", headers=headers, data={{'
            f'"bucket": "{bucket}", "prefix": "user:42:", "permissions": "read,write", '
            '"ttl": 3600})).text',
            js=JS_HEAD + f"const token = await (await ok(fetch('{v1}/tokens', {{ method: 'POST', "
            f"headers, body: new URLSearchParams({{ bucket: '{bucket}', prefix: 'user:42:', "
            "permissions: 'read,write', ttl: '3600' }) }))).text()",
        ),
        Endpoint(
            "list-buckets",
            "List your buckets",
            "GET",
            "/v1/",
            "Your buckets in id order, one id a line (text), or with their default TTL, key count "
            "and bytes in JSON. Pages like a key listing. An addition to the v1 API.",
            params=[
                ("limit", "1 to 1000 buckets a page (default 1000)"),
                ("cursor", "the X-Next-Cursor of the previous page"),
                ("format", "text (default), json or ndjson"),
            ],
            answers=[("200", "the buckets"), ("403", "a wrong key, or a token")],
            curl=f"curl -H \"X-Api-Key: $THISDB_API_KEY\" '{v1}/?format=json'",
            python=PY_HEAD + f'buckets = ok(httpx.get("{v1}/", params={{"format": "json"}}, '
            'headers=headers)).json()["items"]',
            js=JS_HEAD + f"const {{ items }} = await (await ok(fetch('{v1}/?format=json', "
            "{ headers }))).json()",
        ),
        Endpoint(
            "update-bucket",
            "Change a bucket's default TTL",
            "PATCH",
            "/v1/<bucket>",
            "Sets the TTL that keys written from now on get when the write names none. The "
            f"example changes the bucket whose id you put in ${TO_CHANGE}.",
            params=[("default_ttl", "form field: seconds, 0 = never (604800 when absent)")],
            answers=[
                ("200", "OK"),
                ("400", "not a whole number in range"),
                ("404", "no such bucket"),
            ],
            curl=f"curl -X PATCH -d 'default_ttl=86400' -H \"X-Api-Key: $THISDB_API_KEY\" "
            f"{v1}/${TO_CHANGE}",
            python=PY_HEAD + f'bucket = os.environ["{TO_CHANGE}"]  # the bucket to change\n'
            f'ok(httpx.patch(f"{v1}/{{bucket}}", data={{"default_ttl": 86400}}, headers=headers))',
            js=JS_HEAD + f"const bucket = process.env.{TO_CHANGE}  // the bucket to change\n"
            f"await ok(fetch(`{v1}/${{bucket}}`, {{ method: 'PATCH', headers, "
            "body: new URLSearchParams({ default_ttl: '86400' }) }))",
        ),
        Endpoint(
            "delete-bucket",
            "Delete a bucket",
            "DELETE",
            "/v1/<bucket>",
            "Deletes the bucket with all its keys and tokens, for good. The example deletes the "
            f"bucket whose id you put in ${TO_DELETE}.",
            answers=[("200", "OK"), ("404", "no such bucket")],
            curl=f'curl -X DELETE -H "X-Api-Key: $THISDB_API_KEY" {v1}/${TO_DELETE}',
            python=PY_HEAD + f'bucket = os.environ["{TO_DELETE}"]  # the bucket to delete\n'
            f'ok(httpx.delete(f"{v1}/{{bucket}}", headers=headers))',
            js=JS_HEAD + f"const bucket = process.env.{TO_DELETE}  // the bucket to delete\n"
            f"await ok(fetch(`{v1}/${{bucket}}`, {{ method: 'DELETE', headers }}))",
        ),
    ]
