"""OpenAPI: how the v1 API authenticates, what each operation takes and every answer it gives,
in the three formats. The views pick their parameters, bodies and statuses from here."""

from typing import Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse

from api.inputs import CURSOR_PATTERN
from api.models import BUCKET_ID_RE, TOKEN_RE

TEXT, JSON, NDJSON = "text/plain", "application/json", "application/x-ndjson"


class ApiKeyOrTokenScheme(OpenApiAuthenticationExtension):
    target_class = "api.authentication.ApiKeyOrTokenAuthentication"
    name = ["ApiKey", "Token"]

    def get_security_definition(self, auto_schema):
        return [
            {
                "type": "apiKey",
                "in": "header",
                "name": "X-Api-Key",
                "description": "Your API key: every operation takes it.",
            },
            {
                "type": "apiKey",
                "in": "header",
                "name": "X-Token",
                "description": "A token from POST /v1/tokens: one bucket, one key prefix, read "
                "and/or write, until it expires.",
            },
        ]

    def get_security_requirement(self, auto_schema):
        # Two requirement objects: either header alone authenticates (one object holding both
        # would mean both at once).
        return [{"ApiKey": []}, {"Token": []}]


# Buckets are created, changed and deleted, and tokens made, by key. Any: extend_schema types
# `auth` as names, but takes security requirement objects (what get_auth returns).
API_KEY_ONLY: Any = [{"ApiKey": []}]


def drop_route_twins(endpoints):
    """Document each route once: /v1/<bucket>/ and /v1/tokens/ are the same views as their
    twins without the slash (kept for clients), and /v1 is /v1/."""
    return [
        (path, path_regex, method, view)
        for path, path_regex, method, view in endpoints
        if path != "/v1" and (path == "/v1/" or not path.endswith("/"))
    ]


# Parameters


SPEC_BUCKET = "zqjvK4C908tf3mAHlcOi"  # the examples are the spec's
KEY_MAX_BYTES = settings.THISDB_KEY_MAX_BYTES
_BUCKET_ID = {"type": "string", "pattern": f"^{BUCKET_ID_RE.pattern}$"}
_TOKEN = {"type": "string", "pattern": f"^{TOKEN_RE.pattern}$"}


BUCKET_ID = OpenApiParameter(
    "bucket_id",
    {**_BUCKET_ID, "example": SPEC_BUCKET},
    OpenApiParameter.PATH,
    description="A bucket id, as POST /v1/ returned it. Any other is a 404 (so is another "
    "account's bucket).",
)
KEY = OpenApiParameter(
    "key",
    # maxLength counts characters; the limit is 512 bytes of UTF-8 (a 400 above it).
    {
        "type": "string",
        "minLength": 1,
        "maxLength": KEY_MAX_BYTES,
        "pattern": "^[^\\x00]+$",
        "example": "foo",
    },
    OpenApiParameter.PATH,
    description=f"The key: 1 to {KEY_MAX_BYTES} bytes of UTF-8, any character but NUL, "
    "percent-encoded. Escapes that are not UTF-8 are a 400; %2F is a '/', which a key may hold.",
)
TTL = OpenApiParameter(
    "ttl",
    {"type": "integer", "minimum": 0, "maximum": settings.THISDB_MAX_TTL, "example": 3600},
    description="Seconds the key lives from this write; 0 = never expire. Default: the bucket's "
    "default_ttl.",
)
# The unpadded base64url of the last key of a page (api.inputs.encode_cursor): 4 characters per
# 3 bytes, rounded up, of a key of 1 to KEY_MAX_BYTES bytes.
_CURSOR = {
    "type": "string",
    "minLength": 2,
    "maxLength": (KEY_MAX_BYTES * 4 + 2) // 3,
    "pattern": f"^{CURSOR_PATTERN}$",
}
BUCKET_LIST_PARAMETERS = [
    OpenApiParameter(
        "limit",
        {
            "type": "integer",
            "minimum": 1,
            "maximum": settings.THISDB_LIST_MAX_LIMIT,
            "default": settings.THISDB_LIST_MAX_LIMIT,
        },
        description="Buckets on this page.",
    ),
    OpenApiParameter(
        "cursor",
        _CURSOR,
        description="X-Next-Cursor (next_cursor in JSON) of the previous page.",
    ),
]
LIST_PARAMETERS = [
    OpenApiParameter(
        "limit",
        {
            "type": "integer",
            "minimum": 1,
            "maximum": settings.THISDB_LIST_MAX_LIMIT,
            "default": settings.THISDB_LIST_MAX_LIMIT,
        },
        description="Keys on this page.",
    ),
    OpenApiParameter(
        "values", {"type": "boolean", "default": False}, description="Include each key's value."
    ),
    OpenApiParameter(
        "prefix",
        {"type": "string", "maxLength": KEY_MAX_BYTES, "pattern": "^[^\\x00]*$"},
        description="Only keys starting with this (UTF-8). A token lists only inside its prefix.",
    ),
    OpenApiParameter(
        "cursor",
        _CURSOR,
        description="X-Next-Cursor (next_cursor in JSON) of the previous page: the keys after it.",
    ),
]

# Exporting (api.exports): the same GET with all=true.
EXPORT_PARAMETERS = [
    OpenApiParameter(
        "all",
        {"type": "boolean", "default": False},
        description="Export: every live key under prefix (after cursor, to resume) in one "
        "answer, from one snapshot, in key order, one line each as the listing's NDJSON with "
        "values; needs format=ndjson and values=true, and no limit (else 400). Counts one "
        "request per 1,000 keys, all up front: 429, nothing sent, when the hour has fewer "
        "left. Marked X-Thisdb-Export: all, without X-Next-Cursor. See /docs/#export.",
    ),
]

# Watching (api.watching): the same GET with watch=true.
WATCH_PARAMETERS = [
    OpenApiParameter(
        "watch",
        {"type": "boolean", "default": False},
        description="Watch the keys under prefix instead of listing them: a stream of "
        "Server-Sent Events (format=sse, or Accept: text/event-stream), or a long-poll "
        "(format=json). See /docs/#watch.",
    ),
    OpenApiParameter(
        "since",
        {"type": "integer", "minimum": 0},
        description="With watch=true: the changes after this position (an event's id; also "
        "the Last-Event-ID header). Older than the kept history: a reset event first.",
    ),
    OpenApiParameter(
        "snapshot",
        {"type": "boolean", "default": False},
        description="With watch=true: first the live keys under prefix as put events "
        f"(at most {settings.THISDB_WATCH_SNAPSHOT_MAX}), then the changes.",
    ),
    OpenApiParameter(
        "wait",
        {"type": "integer", "minimum": 0, "maximum": 60, "default": 30},
        description="With watch=true&format=json: seconds to wait for a change before an "
        "empty answer. (A stream on a server without the production front also ends after "
        "it, and is opened again by its client.)",
    ),
]
EVENT_STREAM = "text/event-stream"


# Request bodies

_DEFAULT_TTL = {"type": "integer", "minimum": 0, "maximum": settings.THISDB_MAX_TTL}
DEFAULT_TTL_FORM = {
    "application/x-www-form-urlencoded": {
        "type": "object",
        "properties": {
            "default_ttl": {
                **_DEFAULT_TTL,
                "default": settings.THISDB_DEFAULT_TTL,
                "example": 3600,
                "description": "Seconds keys live after each write; 0 = never expire.",
            },
            "ttl": {**_DEFAULT_TTL, "description": "Another name for default_ttl (the SDKs')."},
        },
    }
}
TOKEN_FORM = {
    "application/x-www-form-urlencoded": {
        "type": "object",
        "required": ["bucket", "prefix", "permissions", "ttl"],
        "properties": {
            "bucket": {**_BUCKET_ID, "example": SPEC_BUCKET},
            "prefix": {
                "type": "string",
                "maxLength": KEY_MAX_BYTES,
                "pattern": "^[^\\x00]*$",
                "example": "user:joebloggs:",
                "description": "The keys the token reaches: those starting with this (UTF-8; "
                "empty = the whole bucket).",
            },
            "permissions": {
                "type": "string",
                "pattern": "^(read|write)(,(read|write))*$",
                "example": "read,write",
                "description": "read, write or read,write (case and spaces around each are "
                "ignored).",
            },
            "ttl": {
                "type": "integer",
                "minimum": 1,
                "maximum": settings.THISDB_TOKEN_MAX_TTL,
                "example": 3600,
                "description": "Seconds the token lives.",
            },
        },
    }
}
VALUE_BODY = {
    "application/octet-stream": {
        "type": "string",
        "format": "binary",
        "example": "bar",
        "description": "The value: the raw body, stored byte for byte whatever the Content-Type "
        f"(at most {settings.THISDB_VALUE_MAX_BYTES} bytes; 413 above).",
    }
}
INCREMENT_BODY = {
    "text/plain": {
        "type": "string",
        "pattern": "^[+-]?[0-9]+$",
        "example": "+1",
        "description": "+N or -N (N alone counts as +N); the key and the result are 64-bit "
        "integers.",
    }
}


# Responses: each answer in text (the default), JSON and NDJSON (see README "JSON shapes")


def _component(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: dict, required: list[str]) -> dict:
    return {"type": "object", "properties": properties, "required": required}


_KEY = {"type": "string", "description": "The key."}
_VALUE = {
    "type": "string",
    "description": "The stored bytes as text, or base64 when they are not UTF-8 (then "
    '"encoding" says so).',
}
_ENCODING = {"type": "string", "enum": ["base64"]}
_VERSION = {
    "type": "string",
    "pattern": "^[1-9][0-9]{0,18}$",
    "example": "17",
    "description": "The key's version: it changes on every write of the key, only grows and is "
    'never reused (the ETag header gives it quoted: "17").',
}
_NULLABLE_VERSION = {**_VERSION, "nullable": True}
_PREFIX = {"type": "string", "maxLength": KEY_MAX_BYTES, "pattern": "^[^\\x00]*$"}
# A key in a transaction's body: as in a key's path (1 to 512 bytes of UTF-8, no NUL).
_OP_KEY = {
    "type": "string",
    "minLength": 1,
    "maxLength": KEY_MAX_BYTES,
    "pattern": "^[^\\x00]+$",
    "example": "foo",
}
_TTL_FIELD = {
    "type": "integer",
    "minimum": 0,
    "maximum": settings.THISDB_MAX_TTL,
    "nullable": True,
    "description": "Seconds the key lives from this write; 0 = never expire; absent or null: "
    "the bucket's default_ttl.",
}
_INT64 = {"type": "integer", "format": "int64", "minimum": -(2**63), "maximum": 2**63 - 1}


def _op(name: str, properties: dict, required: list[str]) -> dict:
    return {
        "type": "object",
        "properties": {"op": {"type": "string", "enum": [name]}, **properties},
        "required": ["op", *required],
        "additionalProperties": False,
    }


_OPS = [
    _op(
        "set",
        {
            "key": _OP_KEY,
            "value": {"type": "string"},
            "encoding": {
                "type": "string",
                "enum": ["base64", None],
                "nullable": True,
                "description": "null or absent: the value is text",
            },
            "ttl": _TTL_FIELD,
        },
        ["key", "value"],
    ),
    _op(
        "increment",
        {"key": _OP_KEY, "by": {**_INT64, "default": 1}, "ttl": _TTL_FIELD},
        ["key"],
    ),
    _op("delete", {"key": _OP_KEY}, ["key"]),
    _op("get", {"key": _OP_KEY}, ["key"]),
    _op("count", {"prefix": _PREFIX}, ["prefix"]),
    _op("delete_prefix", {"prefix": _PREFIX}, ["prefix"]),
]
_PLACE = {"type": "integer", "minimum": 1}
_COUNT = {"type": "integer", "minimum": 0}
_WORKERS_KV_ITEM = {
    "type": "object",
    "properties": {
        "key": _OP_KEY,
        "value": {"type": "string", "description": "Text, or base64 when base64 is true."},
        "base64": {"type": "boolean", "default": False},
        "expiration_ttl": {
            **_TTL_FIELD,
            "description": "Seconds the key lives; 0 = never expire; absent or null: the "
            "bucket's default_ttl.",
        },
        "expiration": {
            "type": "integer",
            "nullable": True,
            "description": "When the key expires, in Unix time (seconds); it must be in the "
            "future. Not with expiration_ttl.",
        },
        "metadata": {
            "type": "object",
            "nullable": True,
            "maxProperties": 0,
            "description": "ThisDB keys carry no metadata: null, {} or left out (anything else "
            "is a 400, never dropped silently).",
        },
    },
    "required": ["key", "value"],
    "additionalProperties": False,
}
COMPONENTS = {
    "Error": _object(
        {
            "error": {"type": "string", "description": "What to change."},
            "line": {**_PLACE, "description": "An import (NDJSON) stopped at this line."},
            "item": {**_PLACE, "description": "An import (JSON array) stopped at this item."},
            "applied": {
                **_COUNT,
                "description": "An import: the lines (items) before the one it stopped at, all "
                "applied; send the rest from the next.",
            },
            "imported": {**_COUNT, "description": "An import: the lines it wrote."},
        },
        ["error"],
    ),
    "Result": _object({"result": {"type": "string", "enum": ["OK"]}}, ["result"]),
    "NewBucket": _object({"bucket": _BUCKET_ID}, ["bucket"]),
    "NewToken": _object({"token": _TOKEN}, ["token"]),
    "Value": _object({"key": _KEY, "value": _VALUE, "encoding": _ENCODING}, ["key", "value"]),
    "Counter": _object(
        {"key": _KEY, "value": {"type": "integer", "format": "int64"}}, ["key", "value"]
    ),
    "ListedKey": _object(
        {
            "key": _KEY,
            "value": _VALUE,
            "encoding": _ENCODING,
            "ttl": {
                "type": "integer",
                "minimum": 0,
                "description": "With values=true: whole seconds the key has left, rounded up; "
                "0 = never expires (what a write's ?ttl= takes).",
            },
            "version": _VERSION,
        },
        ["key", "version"],
    ),
    "Transaction": {
        "type": "object",
        "properties": {
            "checks": {
                "type": "array",
                "maxItems": 1000,
                "items": {
                    "type": "object",
                    "properties": {"key": _OP_KEY, "version": _NULLABLE_VERSION},
                    "required": ["key", "version"],
                    "additionalProperties": False,
                    "description": "version: the key's current version must be it; null: the "
                    "key must not exist.",
                },
            },
            "ops": {"type": "array", "maxItems": 1000, "items": {"oneOf": _OPS}},
        },
        "required": ["ops"],
        "additionalProperties": False,
        "description": "checks first, then ops in order, all in one database transaction; a "
        "key is written at most once.",
    },
    "TransactionAnswer": _object(
        {
            "ok": {"type": "boolean", "enum": [True]},
            "results": {
                "type": "array",
                "items": {
                    "type": "object",
                    "description": 'One per op: set {"key", "version"}; increment {"key", '
                    '"value", "version"}; delete {"key", "deleted"}; get {"key", "value", '
                    '"version"} or {"key", "value": null}; count {"prefix", "count", "more"}; '
                    'delete_prefix {"prefix", "deleted"}.',
                },
            },
        },
        ["ok", "results"],
    ),
    "TransactionConflict": _object(
        {
            "ok": {"type": "boolean", "enum": [False]},
            "failed": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "versions": {"type": "object", "additionalProperties": _VERSION},
        },
        ["ok", "failed", "versions"],
    ),
    "ImportLine": {
        "type": "object",
        "properties": {
            "key": _OP_KEY,
            "value": {"type": "string"},
            "encoding": {
                "type": "string",
                "enum": ["base64", None],
                "nullable": True,
                "description": "null or absent: the value is text",
            },
            "ttl": _TTL_FIELD,
            "version": {"description": "A listing's version, or anything: ignored."},
        },
        "required": ["key", "value"],
        "additionalProperties": False,
    },
    "WorkersKVImport": {
        "type": "array",
        "items": _WORKERS_KV_ITEM,
        "description": "An import in Workers KV's bulk format, read as a stream, of any length.",
    },
    "Imported": _object(
        {"imported": {**_COUNT, "description": "The lines (items) written."}}, ["imported"]
    ),
    "TransactionOrImport": {
        "oneOf": [_component("TransactionAnswer"), _component("Imported")],
        "description": "A transaction's answer (a JSON object body), or an import's (NDJSON or "
        "a JSON array).",
    },
    "ListedBucket": _object(
        {
            "bucket": _BUCKET_ID,
            "default_ttl": {"type": "integer", "minimum": 0},
            "keys": {"type": "integer", "minimum": 0, "description": "As beat last counted."},
            "bytes": {"type": "integer", "minimum": 0, "description": "As beat last counted."},
        },
        ["bucket", "default_ttl", "keys", "bytes"],
    ),
    "BucketList": _object(
        {
            "items": {"type": "array", "items": _component("ListedBucket")},
            "next_cursor": {
                "type": "string",
                "nullable": True,
                "description": "Pass it as cursor= for the next page; null on the last.",
            },
        },
        ["items", "next_cursor"],
    ),
    "WatchEvent": {
        "type": "object",
        "properties": {
            "id": {"type": "string", "pattern": "^[0-9]+$"},
            "type": {"type": "string", "enum": ["put", "delete", "reset"]},
            "key": {"type": "string"},
            "value": {"type": "string"},
            "encoding": {"type": "string", "enum": ["base64"]},
            "version": {"type": "string", "pattern": "^[0-9]+$"},
            "ttl": {"type": "integer", "minimum": 0},
            "reason": {
                "type": "string",
                "enum": ["deleted", "expired", "bucket_deleted", "history"],
            },
        },
        "required": ["type"],
    },
    "WatchAnswer": _object(
        {
            "events": {"type": "array", "items": _component("WatchEvent")},
            "next": {
                "type": "string",
                "pattern": "^[0-9]+$",
                "description": "Pass it as since= for the next long-poll.",
            },
        },
        ["events", "next"],
    ),
    "KeyList": _object(
        {
            "items": {"type": "array", "items": _component("ListedKey")},
            "next_cursor": {
                "type": "string",
                "nullable": True,
                "description": "Pass it as cursor= for the next page; null on the last.",
            },
        },
        ["items", "next_cursor"],
    ),
}


class Answer:
    """One kind of answer: its text body, its JSON component and its NDJSON lines."""

    def __init__(self, text: dict, component: str, ndjson: str | None = None):
        self.text, self.component = text, component
        self.ndjson = ndjson or f"One line: the JSON object {component}."


OK = Answer({"type": "string", "enum": ["OK"]}, "Result")
BUCKET = Answer(_BUCKET_ID, "NewBucket")
TOKEN = Answer(_TOKEN, "NewToken")
VALUE = Answer(
    {"type": "string", "format": "binary", "description": "The stored bytes, unchanged."}, "Value"
)
COUNTER = Answer({"type": "string", "pattern": "^-?[0-9]+$"}, "Counter")
BUCKET_LIST = Answer(
    {"type": "string", "description": "One bucket id a line."},
    "BucketList",
    ndjson="One JSON object ListedBucket a line.",
)
KEY_LIST = Answer(
    {
        "type": "string",
        "description": "One key a line; key<TAB>value with values=true (ask for JSON when keys "
        "or values hold newlines).",
    },
    "KeyList",
    ndjson="One JSON object ListedKey a line.",
)
ERROR = Answer({"type": "string", "description": "What to change."}, "Error")
_JSON_TEXT = {"type": "string", "description": "The same JSON document (it has no text form)."}
TRANSACTION_ANSWER = Answer(
    {
        "type": "string",
        "description": "A transaction: the same JSON document (it has no text form); an import: "
        "the lines it wrote.",
    },
    "TransactionOrImport",
)
TRANSACTION_CONFLICT = Answer(_JSON_TEXT, "TransactionConflict")
TRANSACTION_BODY = {
    "application/json": {
        "oneOf": [_component("Transaction"), _component("WorkersKVImport")],
        "description": "A JSON object: a transaction. A JSON array: an import (Workers KV's "
        "format).",
    },
    NDJSON: {
        "type": "array",
        "items": _component("ImportLine"),
        "description": "An import: NDJSON, one ImportLine a line (as a listing with values "
        "writes them; blank lines are skipped), of any length, read as a stream. A key on two "
        "lines of a batch of 1,000 gets the later line.",
    },
}

STATUSES = {
    200: "OK.",
    304: "Not modified: If-None-Match names the key's current version (no body).",
    400: "Bad request: the message says which input to change.",
    403: "Missing or wrong X-Api-Key or X-Token, a token out of its bucket, prefix or "
    "permissions, or a quota reached.",
    404: "No such bucket (or it is another account's), or no such key.",
    405: "Method not allowed here (GET, PATCH and DELETE of /v1/tokens, which is not a bucket).",
    406: "format= or Accept names a format other than text, json or ndjson.",
    409: "A check of the transaction failed: nothing was applied; the body names the failed "
    "checks and the current versions.",
    411: "A chunked body on a server that cannot read chunks: send Content-Length.",
    412: "Precondition failed: If-Match or If-None-Match did not hold, nothing was written; "
    "ETag gives the key's current version when it exists.",
    413: "The body is over the limit (a value: 1 MiB; a form: 64 KiB; a transaction: 10 MiB).",
    429: "Over the API key's hourly limit, too many open watches (watch=true), a second write "
    "to the key within a second, or too many wrong keys from this address: retry after "
    "Retry-After seconds.",
    503: "Temporarily unavailable: retry after Retry-After seconds.",
}


def watch_responses(listing: dict) -> dict:
    """A listing's responses, with what a watch answers: a stream or a long-poll."""
    result = dict(listing)
    result[(200, EVENT_STREAM)] = OpenApiResponse(
        {
            "type": "object",
            "description": "watch=true: Server-Sent Events, one a change (put, delete), and "
            "reset, cancel; a : keep-alive comment at least every 15 s. `data` is a JSON "
            "object: a put's key, value (base64 with encoding), version and ttl; a delete's "
            "key, version and reason; a reset's or cancel's reason.",
            "properties": {
                "id": {"type": "string", "pattern": "^[0-9]+$"},
                "event": {"type": "string", "enum": ["put", "delete", "reset", "cancel"]},
                "data": {"type": "string"},
                "retry": {"type": "integer"},
            },
        },
        description=STATUSES[200],
    )
    result[(200, JSON)] = OpenApiResponse(
        {"oneOf": [_component("KeyList"), _component("WatchAnswer")]},
        description=STATUSES[200],
    )
    return result


def responses(ok: Answer, *errors: int) -> dict:
    """The responses of an operation: 200 with `ok`, and each error status, in every format
    (304 has no body; a transaction's 409 is its own document)."""
    result: dict = {}
    special = {409: TRANSACTION_CONFLICT} if ok is TRANSACTION_ANSWER else {}
    for status, answer in [(200, ok), *((code, special.get(code, ERROR)) for code in errors)]:
        description = STATUSES[status]
        if status == 304:
            result[status] = OpenApiResponse(description=description)
            continue
        for media_type, schema in (
            (TEXT, answer.text),
            (JSON, _component(answer.component)),
            (NDJSON, {"type": "string", "description": answer.ndjson}),
        ):
            result[(status, media_type)] = OpenApiResponse(schema, description=description)
    return result


_INTEGER = {"type": "integer", "minimum": 0}
HEADERS = {
    "X-RateLimit-Limit": {
        "schema": _INTEGER,
        "description": "Requests this API key may make in the clock hour.",
    },
    "X-RateLimit-Remaining": {"schema": _INTEGER, "description": "Requests it has left."},
    "X-RateLimit-Reset": {
        "schema": _INTEGER,
        "description": "When the hour ends and the count starts again (Unix time, seconds).",
    },
    "X-Request-Id": {
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"},
        "description": "This request's id, in the platform's logs: the one it was sent with "
        "when that was 1 to 64 of these characters, else a new one.",
    },
    "Retry-After": {
        "schema": {"type": "integer", "minimum": 1},
        "description": "Seconds to wait before trying again.",
    },
    "ETag": {
        "schema": {"type": "string", "pattern": '^"[1-9][0-9]{0,18}"$'},
        "description": 'The key\'s version, quoted ("17"): send it in If-Match to write only '
        "over this version, or in If-None-Match to read only when it changed.",
    },
    "X-Next-Cursor": {
        "schema": _CURSOR,
        "description": "Present when more keys follow: pass it as cursor= for the next page.",
    },
    "X-Thisdb-Export": {
        "schema": {"type": "string", "enum": ["all"]},
        "description": "all=true was served as an export: every key in this one answer (a "
        "server without exports answers a page, with X-Next-Cursor when more follow).",
    },
    "X-Thisdb-Export-Keys": {
        "schema": _INTEGER,
        "description": "An export's live keys when it began: its lines, at most (a key that "
        "expires meanwhile is left out).",
    },
}


# A list of entity tags as RFC 9110 writes them (any tag parses; only ours can match), or *;
# a version without its quotes is taken too.
_TAG = r'((W/)?"[^"]*"|[0-9]+)'
_TAGS = rf"^\s*(\*|{_TAG}(\s*,\s*{_TAG})*)\s*$"
IF_MATCH = OpenApiParameter(
    "If-Match",
    {"type": "string", "pattern": _TAGS, "example": '"17"'},
    OpenApiParameter.HEADER,
    description='Write only if the key exists with one of these versions ("17", or several '
    "comma-separated), or exists at all (*); else 412 and nothing is written.",
)
IF_NONE_MATCH_WRITE = OpenApiParameter(
    "If-None-Match",
    {"type": "string", "enum": ["*"]},
    OpenApiParameter.HEADER,
    description="*: write only if the key does not exist (create-only); else 412. With "
    "If-Match too, both must hold, which they never can: 412.",
)
IF_NONE_MATCH_READ = OpenApiParameter(
    "If-None-Match",
    {"type": "string", "pattern": _TAGS, "example": '"17"'},
    OpenApiParameter.HEADER,
    description="304 Not Modified, without the value, while the key's version is one of these.",
)
WRITE_CONDITIONS = [IF_MATCH, IF_NONE_MATCH_WRITE]
# Operations whose answers carry the key's ETag, by status.
ETAG_STATUSES = {
    "get_key": ("200", "304"),
    "set_key": ("200", "412"),
    "put_key": ("200", "412"),
    "increment_key": ("200", "412"),
    "delete_key": ("412",),
}

# Query parameters whose empty value (`?format=`) is taken as not sent.
EMPTY_MEANS_ABSENT = {"format", "values", "cursor", "prefix", "all"}
# Operations that cannot do without a body (an empty one is a 400).
BODY_REQUIRED = {"increment_key", "create_token", "run_transaction"}
_FORMAT = "text (the default), json or ndjson; wins over the Accept header."


def postprocess(result, generator, request, public):
    """Postprocessing hook: what drf-spectacular cannot say from the views.

    The JSON shapes and the response headers as components. X-RateLimit-* come on every answer
    to a request with a valid key or token (not when Redis is down, so never required);
    Retry-After on every 429 (and on a 503 when the wait is known); X-Next-Cursor on a list
    page when more keys follow, X-Thisdb-Export(-Keys) on an export; X-Request-Id on every
    answer. Empty query values, and the
    bodies that are required.
    """
    components = result.setdefault("components", {})
    components.setdefault("schemas", {}).update(COMPONENTS)
    components.setdefault("headers", {}).update(HEADERS)
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/v1/"):
            continue
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query" and parameter["name"] in EMPTY_MEANS_ABSENT:
                    parameter["allowEmptyValue"] = True
                if parameter["in"] == "query" and parameter["name"] == "format":
                    parameter["description"] = _FORMAT
            if operation.get("operationId") in BODY_REQUIRED:
                operation["requestBody"]["required"] = True
            for status, response in operation.get("responses", {}).items():
                names = ["X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"]
                if status in ("429", "503"):
                    names.append("Retry-After")
                if status == "200" and operation.get("operationId") in (
                    "list_keys",
                    "list_buckets",
                ):
                    names.append("X-Next-Cursor")
                if status == "200" and operation.get("operationId") == "list_keys":
                    names += ["X-Thisdb-Export", "X-Thisdb-Export-Keys"]
                response["headers"] = {
                    name: {"$ref": f"#/components/headers/{name}"} for name in names
                }
                if status in ETAG_STATUSES.get(operation.get("operationId"), ()):
                    response["headers"]["ETag"] = {"$ref": "#/components/headers/ETag"}
                # On every answer (thisdb_site.requestlog): spelled out to say so.
                response["headers"]["X-Request-Id"] = {**HEADERS["X-Request-Id"], "required": True}
                if status == "429":
                    # A reference cannot say "required" here: spell the header out.
                    response["headers"]["Retry-After"] = {
                        **HEADERS["Retry-After"],
                        "required": True,
                    }
    return result
