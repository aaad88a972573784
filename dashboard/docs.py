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
    """The endpoints in the order of a first session: create a bucket, set, get, list and
    increment keys; versions, conditional writes and transactions; watching; delete a key; then
    tokens and the bucket-wide calls, destructive ones last."""
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
            "export",
            "Export a bucket",
            "GET",
            "/v1/<bucket>?all=true",
            "Every live key in one answer, one NDJSON line each: the listing's line with its "
            "value, in key order, from one snapshot (writes made meanwhile are not in it), at "
            "any size. Counts one request per 1,000 keys, up front: when the hour has fewer "
            "left it is a 429 and nothing is sent. The answer says X-Thisdb-Export: all and "
            "X-Thisdb-Export-Keys (the keys it holds); a server without exports answers a page "
            "of the listing instead, without that header.",
            params=[
                ("format", "ndjson (required)"),
                ("values", "true (required)"),
                ("prefix", "only keys starting with this (a token exports only inside its own)"),
                ("cursor", "the keys after this one (base64url, as X-Next-Cursor): to resume"),
            ],
            answers=[
                ("200", "the keys, as they arrive"),
                ("400", "all=true without format=ndjson and values=true, or with limit"),
                ("429", "the export counts more requests than the hour has left"),
                ("503", "the server is busy with other exports and imports: see Retry-After"),
            ],
            token_ok=True,
            curl=f'curl -H "X-Api-Key: $THISDB_API_KEY" '
            f"'{v1}/{bucket}?format=ndjson&values=true&all=true' > backup.ndjson",
            python=PY_HEAD + "import json\n"
            'params = {"format": "ndjson", "values": "true", "all": "true"}\n'
            f'with httpx.stream("GET", "{v1}/{bucket}", params=params, headers=headers, '
            "timeout=60) as response:\n"
            "    if response.status_code != 200:\n"
            "        response.read()  # the message, for ok() to raise with\n"
            "        ok(response)\n"
            '    if response.headers.get("X-Thisdb-Export") != "all":\n'
            '        raise RuntimeError("no export on this server: page through the list")\n'
            "    for line in response.iter_lines():\n"
            "        item = json.loads(line)\n"
            '        print(item["key"], item["ttl"])',
            js=JS_HEAD + f"const response = await ok(fetch('{v1}/{bucket}"
            "?format=ndjson&values=true&all=true', { headers }))\n"
            "if (response.headers.get('X-Thisdb-Export') !== 'all') "
            "throw new Error('no export on this server: page through the list')\n"
            "const reader = response.body.getReader()\n"
            "const decoder = new TextDecoder()\n"
            "let rest = ''\n"
            "for (;;) {\n"
            "  const { done, value } = await reader.read()\n"
            "  if (done) break\n"
            "  const lines = (rest + decoder.decode(value, { stream: true })).split('\\n')\n"
            "  rest = lines.pop()  // a line not yet ended\n"
            "  for (const line of lines) console.log(JSON.parse(line).key)\n"
            "}",
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
            "versions",
            "Versions and ETags",
            "GET",
            "/v1/<bucket>/<key>",
            "Every key has a version, a whole number that changes on every write and only "
            'grows. GET and HEAD answer it as ETag: "17", and the writes answer the new one. '
            "Send it back as If-None-Match: a 304 without a body while the key is unchanged. "
            'Listings in JSON and NDJSON give each key\'s "version".',
            params=[
                ("If-None-Match", 'header: an ETag you read, e.g. "17" (several: comma-separated)')
            ],
            answers=[
                ("200", "the value, with its ETag"),
                ("304", "unchanged since that ETag: no body"),
                ("404", "no such key"),
            ],
            token_ok=True,
            curl="ETAG=$(curl -s -o /dev/null -w '%header{etag}' "
            f'-H "X-Api-Key: $THISDB_API_KEY" {v1}/{bucket}/foo)\n'
            'echo $ETAG   # "17": the key\'s version\n'
            f"curl -s -o /dev/null -w '%{{http_code}}\\n' -H \"If-None-Match: $ETAG\" "
            f'-H "X-Api-Key: $THISDB_API_KEY" {v1}/{bucket}/foo   # 304 while unchanged',
            python=PY_HEAD + f'url = "{v1}/{bucket}/foo"\n'
            "first = ok(httpx.get(url, headers=headers))\n"
            'etag = first.headers["ETag"]  # \'"17"\': the key\'s version, quoted\n'
            'again = httpx.get(url, headers={**headers, "If-None-Match": etag})\n'
            "if again.status_code == 304:  # no body: first.content is still the value\n"
            '    print("unchanged since", etag)\n'
            "else:\n"
            "    print(ok(again).content)",
            js=JS_HEAD + f"const url = '{v1}/{bucket}/foo'\n"
            "const first = await ok(fetch(url, { headers }))\n"
            "const etag = first.headers.get('ETag')  // '\"17\"': the key's version, quoted\n"
            "const again = await fetch(url, { headers: { ...headers, 'If-None-Match': etag } })\n"
            "// 304 has no body: the value read first is still the value\n"
            "if (again.status === 304) console.log('unchanged since', etag)\n"
            "else console.log(await (await ok(again)).text())",
        ),
        Endpoint(
            "conditional",
            "Conditional writes",
            "POST",
            "/v1/<bucket>/<key>",
            "Set (POST or PUT), increment (PATCH) and delete write only if the key is still "
            'at a version you read (If-Match: "17"), or only if it does not exist yet '
            "(If-None-Match: *). Otherwise the answer is a 412 with the key's current ETag "
            "(none when it does not exist), and nothing is written. The example reads a key, "
            "changes it and writes it back unless someone wrote it meanwhile, reading again "
            "then; a write within a second of the last one waits (429).",
            params=[
                (
                    "If-Match",
                    'header: "17", several ETags comma-separated, or * (the key must exist)',
                ),
                ("If-None-Match", "header: * only: create the key, never overwrite it"),
            ],
            answers=[
                ("200", "written; ETag is the new version"),
                ("400", "a header that is not * or ETags"),
                ("412", "the key changed (or exists, or is absent): nothing was written"),
                ("429", "the key was written less than a second ago (Retry-After)"),
            ],
            token_ok=True,
            curl=f"curl -i -d 'bar' -H 'If-Match: \"17\"' -H \"X-Api-Key: $THISDB_API_KEY\" "
            f"{v1}/{bucket}/foo\n"
            f"curl -i -d 'hello' -H 'If-None-Match: *' -H \"X-Api-Key: $THISDB_API_KEY\" "
            f"{v1}/{bucket}/greeting",
            python=PY_HEAD + "import time  # to wait out a 429\n"
            f'url = "{v1}/{bucket}/foo"\n'
            "while True:\n"
            "    current = ok(httpx.get(url, headers=headers))\n"
            '    condition = {**headers, "If-Match": current.headers["ETag"]}\n'
            "    written = httpx.post(url, content=current.content.upper(), headers=condition)\n"
            "    if written.status_code == 412:  # changed since we read it: read it again\n"
            "        continue\n"
            "    if written.status_code == 429:  # written less than a second ago\n"
            '        time.sleep(int(written.headers["Retry-After"]))\n'
            "        continue\n"
            '    print("new version", ok(written).headers["ETag"])\n'
            "    break\n\n"
            "# Create only: never overwrite a key that exists\n"
            'create_only = {**headers, "If-None-Match": "*"}\n'
            f'created = httpx.post("{v1}/{bucket}/greeting", content=b"hello", '
            "headers=create_only)\n"
            "if created.status_code == 412:\n"
            '    print("greeting exists already, ETag", created.headers["ETag"])\n'
            "else:\n"
            "    ok(created)",
            js=JS_HEAD + f"const url = '{v1}/{bucket}/foo'\n"
            "while (true) {\n"
            "  const current = await ok(fetch(url, { headers }))\n"
            "  const condition = { ...headers, 'If-Match': current.headers.get('ETag') }\n"
            "  const body = (await current.text()).toUpperCase()\n"
            "  const written = await fetch(url, { method: 'POST', headers: condition, body })\n"
            "  if (written.status === 412) continue  // changed since we read it: read it again\n"
            "  if (written.status === 429) {  // written less than a second ago\n"
            "    const seconds = Number(written.headers.get('Retry-After'))\n"
            "    await new Promise((resolve) => setTimeout(resolve, seconds * 1000))\n"
            "    continue\n"
            "  }\n"
            "  console.log('new version', (await ok(written)).headers.get('ETag'))\n"
            "  break\n"
            "}\n\n"
            "// Create only: never overwrite a key that exists\n"
            "const createOnly = { ...headers, 'If-None-Match': '*' }\n"
            f"const created = await fetch('{v1}/{bucket}/greeting', {{ method: 'POST', "
            "headers: createOnly, body: 'hello' })\n"
            "if (created.status === 412) console.log('greeting exists already', "
            "created.headers.get('ETag'))\n"
            "else await ok(created)",
        ),
        Endpoint(
            "transactions",
            "Run a transaction",
            "POST",
            "/v1/<bucket>",
            'The body is a JSON object: "checks", each a key and the version it must be at '
            '(null: the key must not exist), and "ops": set (key, value, optional '
            '"encoding": "base64" and ttl), increment (key, by, ttl), delete (key), get (key), '
            "count (prefix) and delete_prefix (prefix). When every check holds, all ops apply "
            'together: {"ok": true, "results": [...]}, one result per op, with the new '
            "versions. When one fails, nothing is applied: a 409 with the failed checks' "
            'indexes and the current versions of the checked keys that exist, {"ok": false, '
            '"failed": [0], "versions": {...}}. A transaction writes a key at most once.',
            params=[
                ("checks", 'list of {"key", "version"}: a version string, or null for absent'),
                ("ops", "list of 1 to 1,000 operations, applied in order"),
                ("count", 'answers "count" and "more": counts up to 10,000 keys'),
                ("delete_prefix", "deletes up to 10,000 keys in one transaction"),
            ],
            answers=[
                ("200", "applied, with each op's result"),
                ("400", "a bad body; the message names the op (ops[3])"),
                ("409", "a check failed: nothing was applied"),
                ("413", "the body is over 10 MiB"),
                (
                    "429",
                    "over the hourly limit, or a written key was written less than a second ago",
                ),
            ],
            token_ok=True,
            curl=f"curl -H \"X-Api-Key: $THISDB_API_KEY\" -H 'Content-Type: application/json' "
            f"{v1}/{bucket} -d '{{\n"
            '  "checks": [{"key": "user:42:name", "version": null}],\n'
            '  "ops": [{"op": "set", "key": "user:42:name", "value": "Ada"},\n'
            '          {"op": "increment", "key": "users", "by": 1},\n'
            '          {"op": "count", "prefix": "user:"}]}\'',
            python=PY_HEAD + "transaction = {\n"
            '    "checks": [{"key": "user:42:name", "version": None}],  # None: must not exist\n'
            '    "ops": [\n'
            '        {"op": "set", "key": "user:42:name", "value": "Ada"},\n'
            '        {"op": "increment", "key": "users", "by": 1},\n'
            '        {"op": "count", "prefix": "user:"},\n'
            "    ],\n"
            "}\n"
            f'answer = httpx.post("{v1}/{bucket}", json=transaction, headers=headers)\n'
            "if answer.status_code == 409:  # a check failed: nothing was applied\n"
            '    print("taken; versions now:", answer.json()["versions"])\n'
            "else:\n"
            '    print(ok(answer).json()["results"])',
            js=JS_HEAD + "const transaction = {\n"
            "  checks: [{ key: 'user:42:name', version: null }],  // null: must not exist\n"
            "  ops: [\n"
            "    { op: 'set', key: 'user:42:name', value: 'Ada' },\n"
            "    { op: 'increment', key: 'users', by: 1 },\n"
            "    { op: 'count', prefix: 'user:' }\n"
            "  ]\n"
            "}\n"
            "const json = { ...headers, 'Content-Type': 'application/json' }\n"
            f"const answer = await fetch('{v1}/{bucket}', {{ method: 'POST', headers: json, "
            "body: JSON.stringify(transaction) })\n"
            "// a check failed: nothing was applied\n"
            "if (answer.status === 409) console.log('taken; versions now:', "
            "(await answer.json()).versions)\n"
            "else console.log((await (await ok(answer)).json()).results)",
        ),
        Endpoint(
            "import",
            "Import many keys",
            "POST",
            "/v1/<bucket>",
            "The same route with many keys in one body, of any size: NDJSON (Content-Type: "
            'application/x-ndjson), one {"key", "value", "encoding"?, "ttl"?} a line, as a '
            'listing with values=true writes them (their "version" is ignored, blank lines '
            "are skipped); or a JSON array in Workers KV's bulk format. The body is read as a "
            "stream and written 1,000 lines at a time, each batch with every rule of a single "
            "write (key and value limits, the token's prefix, quotas), the bucket's default_ttl "
            "for a line without ttl, and a new version for every key; watchers get each key as "
            "a put. A key on two lines of a batch gets the later one. An import counts one "
            "request per 100 lines; it does not take its keys' one write of the second, and a "
            "key another request writes at the same moment keeps both writes, each with its own "
            "version. At the first line that cannot be written, the lines before it are applied "
            "and the import stops: the answer names the line and what was applied (in JSON: "
            '"line" (or "item"), "applied": the lines before it, "imported"), so you can send '
            "the rest from that line. Use curl's --data-binary (-d drops the newlines).",
            params=[
                (
                    "NDJSON lines",
                    'key; value (text, or base64 with "encoding": "base64"); ttl (seconds, 0 = '
                    "never; default: the bucket's)",
                ),
                (
                    "a JSON array",
                    '[{"key", "value", "base64": true|false, "expiration_ttl" (seconds) or '
                    '"expiration" (Unix time)}]: Workers KV\'s format; "metadata" must be null '
                    "or left out (ThisDB keys carry none)",
                ),
            ],
            answers=[
                ("200", '{"imported": n} (text: n)'),
                ("400", "a bad line: it names the line, and the lines before it were applied"),
                ("403", "a key outside the token's prefix, or a quota reached, at that line"),
                ("429", "the hour's requests ran out at that line (Retry-After)"),
            ],
            token_ok=True,
            curl='printf \'%s\\n\' \'{"key": "city:paris", "value": "France"}\' '
            '\'{"key": "city:rome", "value": "Italy", "ttl": 3600}\' |\n'
            "  curl --data-binary @- -H 'Content-Type: application/x-ndjson' "
            f'-H "X-Api-Key: $THISDB_API_KEY" {v1}/{bucket}',
            python=PY_HEAD + "import json\n"
            "lines = [\n"
            '    {"key": "city:paris", "value": "France"},\n'
            '    {"key": "city:rome", "value": "Italy", "ttl": 3600},\n'
            "]\n"
            'body = "".join(json.dumps(line) + "\\n" for line in lines)  # or a file, as it is\n'
            'ndjson = {**headers, "Content-Type": "application/x-ndjson"}\n'
            f'answer = httpx.post("{v1}/{bucket}?format=json", content=body, headers=ndjson)\n'
            "if answer.status_code in (400, 403, 429):  # stopped at a line: the rest from there\n"
            '    print("stopped at line", answer.json()["line"], answer.json()["error"])\n'
            "print(ok(answer).json())  # {'imported': 2}",
            js=JS_HEAD + "const lines = [\n"
            "  { key: 'city:paris', value: 'France' },\n"
            "  { key: 'city:rome', value: 'Italy', ttl: 3600 }\n"
            "]\n"
            "const body = lines.map((line) => JSON.stringify(line) + '\\n').join('')\n"
            "const ndjson = { ...headers, 'Content-Type': 'application/x-ndjson' }\n"
            f"const answer = await fetch('{v1}/{bucket}?format=json', {{ method: 'POST', "
            "headers: ndjson, body })\n"
            "// stopped at a line: send the rest from there\n"
            "if ([400, 403, 429].includes(answer.status)) console.log('stopped at line', "
            "(await answer.clone().json()).line)\n"
            "console.log(await (await ok(answer)).json())  // { imported: 2 }",
        ),
        Endpoint(
            "watch",
            "Watch keys change",
            "GET",
            "/v1/<bucket>?watch=true",
            "Every change under a prefix as it commits, as Server-Sent Events: put (a set or an "
            "increment: key, value, version, ttl) and delete (key, version, reason: deleted, "
            "expired or bucket_deleted), in commit order, each once; a transaction's changes "
            "come together, in its order. Each event's id is its position in the bucket's "
            "history (counted from its first watch): reconnect with Last-Event-ID (browsers do "
            "it for you) or since= and you get exactly what came after it. History is kept an "
            "hour after the last watch ends: an older position gets "
            "one reset event (list the keys again), then the stream goes on. cancel ends the "
            "stream for good (the key or token revoked or expired, the account suspended, the "
            "bucket deleted). A : keep-alive comment comes at least every 15 s. Expired keys "
            "are announced when beat's sweep removes them, up to a minute after they expire "
            "(reads refuse them from the second they expire). A watch counts one request when "
            "it opens; an account may hold 20 open at once. Browsers cannot send headers with "
            "EventSource: pass a token (POST /v1/tokens, read permission, a short ttl) as "
            "token= in the URL, on this route only.",
            params=[
                ("prefix", "watch the keys that start with it (a token: within its prefix)"),
                ("since", "the changes after this position (or the Last-Event-ID header)"),
                ("snapshot", "true: first the keys under prefix now, as put events"),
                ("format", "json: a long-poll instead of a stream, with wait (0 to 60 s)"),
                ("token", "a token, for a browser's EventSource (this route only)"),
            ],
            answers=[
                ("200", "the stream (text/event-stream), or a long-poll's events and next"),
                ("403", "a token out of its prefix, or without read permission"),
                ("429", "too many open watches (Retry-After), or the hourly limit"),
            ],
            token_ok=True,
            curl=f'curl -N -H "X-Api-Key: $THISDB_API_KEY" '
            f"'{v1}/{bucket}?watch=true&prefix=user:'",
            python=PY_HEAD + "import json\n"
            'params = {"watch": "true", "prefix": "user:", "snapshot": "true"}\n'
            f'with httpx.stream("GET", "{v1}/{bucket}", params=params, headers=headers, '
            "timeout=None) as stream:\n"
            "    if stream.status_code != 200:\n"
            "        stream.read()  # the API's message, for ok()\n"
            "    ok(stream)\n"
            "    event = {}\n"
            "    for line in stream.iter_lines():\n"
            '        if line.startswith("id: "):\n'
            '            event["id"] = line[4:]  # keep it: reconnect with Last-Event-ID\n'
            '        elif line.startswith("event: "):\n'
            '            event["type"] = line[7:]\n'
            '        elif line.startswith("data: "):\n'
            "            event.update(json.loads(line[6:]))\n"
            '        elif line == "" and "type" in event:\n'
            "            print(event)  # {'type': 'put', 'key': 'user:42:name', ...}\n"
            "            break  # a real watcher goes on reading\n",
            js="// In a browser page: EventSource reconnects by itself, from the last id.\n"
            "// It cannot send headers: make a read token on your server (POST /v1/tokens,\n"
            "// permissions=read, a short ttl) and pass it in the URL, on this route only.\n"
            "const token = window.THISDB_TOKEN\n"
            f"const source = new EventSource('{v1}/{bucket}?watch=true&prefix=user:&token=' + "
            "token)\n"
            "source.addEventListener('put', (e) => {\n"
            "  const change = JSON.parse(e.data)  // key, value, version, ttl\n"
            "  console.log(e.lastEventId, change.key, '=', change.value)\n"
            "})\n"
            "source.addEventListener('delete', (e) => console.log('gone:', "
            "JSON.parse(e.data).key))\n"
            "source.addEventListener('reset', () => { /* list the keys again */ })\n"
            "source.addEventListener('cancel', () => source.close())  // revoked, expired, deleted",
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
