"""The OpenAPI schema at /api/schema/ tells the truth: schemathesis runs every operation with its
examples, coverage and fuzzing phases and all its checks, with an API key and with a token, on
the real PostgreSQL and Redis, through the WSGI application.

Where a check cannot know the API's semantics, it is configured for exactly that case below,
with the reason; no check is turned off wholesale.
"""

import json
import re

import hypothesis
import pytest
import schemathesis
from schemathesis.specs.openapi.checks import positive_data_acceptance

from accounts import keys
from api.models import Bucket, Token
from tests.conftest import Persona

pytestmark = pytest.mark.django_db(transaction=True)

# The spec's example bucket id, which the schema gives as its example: the examples phase and
# every generated request reach this real bucket.
BUCKET = "zqjvK4C908tf3mAHlcOi"
TOKEN = "0gocgk48w0occ0c8kwk44kggwwko8c4g0g0kwgog"  # the spec's example token
SEED = 20240611
MAX_EXAMPLES = 25  # per operation and phase: keeps the run well under a minute on 2 cores


def load_schema():
    """The schema as /api/schema/ serves it, read through the WSGI application."""
    from thisdb_site.wsgi import application

    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            # Every request carries a real key or token (the test's headers), not generated
            # ones; ignored_auth still sends each request without it and with a wrong one.
            # No example database: each run is the same, and writes nothing.
            "generation": {
                "max-examples": MAX_EXAMPLES,
                "with-security-parameters": False,
                "database": "none",
            },
            "phases": {"stateful": {"enabled": False}},  # the examples, coverage and fuzzing ones
            # Every generated request names the real bucket (tokens are made for it through the
            # examples; a generated bucket id is a 404, which the fuzzing of forms still covers).
            # A long-poll (watch=true&format=json) answers at once rather than after up to 60 s.
            "parameters": {"path.bucket_id": BUCKET, "query.wait": 0},
        }
    )
    return schemathesis.openapi.from_wsgi("/api/schema/?format=json", application, config=config)


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, lines):
    """An import's NDJSON body: the schema gives its lines as an array, one item a line; what
    is not an array (a negative case) is sent as one line."""
    if not isinstance(lines, list):
        lines = [lines]
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


schema = load_schema()


@pytest.fixture
def alice(settings):
    """Alice and her bucket, with the spec's id."""
    # Room for a few thousand requests: the hourly limit and the quotas are tested elsewhere.
    settings.THISDB_REQUESTS_PER_HOUR = 1_000_000
    settings.THISDB_MAX_BUCKETS = 1_000_000
    alice = Persona("alice")
    Bucket.objects.create(id=BUCKET, owner=alice.user)
    # The schema's example key, as the spec's increment example finds it (+1 makes it 2).
    assert alice.set(BUCKET, "foo", "1").status_code == 200
    return alice


@pytest.fixture
def token(alice):
    """A token of alice's on her whole bucket, read and write."""
    Token.objects.create(
        hashed_token=keys.hash_secret(TOKEN),
        bucket_id=BUCKET,
        prefix="",
        can_read=True,
        can_write=True,
        expires_at="2999-01-01T00:00:00Z",
        created_by=alice.api_key,
    )
    return TOKEN


def positive_data_acceptance_of_the_api(ctx, response, case):
    """positive_data_acceptance, except for refusals the schema cannot express (each below)."""
    operation_id = case.operation.definition.raw.get("operationId")
    if (response.status_code, operation_id) in STATE_REFUSALS:
        return None
    if response.status_code == 400:
        # A transaction's message names the place first ("ops[3]: "), an import's its line or
        # item ("item 3: "), then says what a single request would.
        message = re.sub(r"^((ops|checks)\[\d+\]|(line|item) \d+): ", "", error_message(response))
        operation_id = case.operation.definition.raw.get("operationId")
        for operation_ids, start, _reason in SEMANTIC_REFUSALS:
            if operation_id in operation_ids and message.startswith(start):
                return None
    return positive_data_acceptance(ctx, response, case)


def error_message(response) -> str:
    """The message of an error answer, in any of the three formats."""
    content_type = response.headers.get("content-type", [""])[0]
    if content_type.startswith(("application/json", "application/x-ndjson")):
        return json.loads(response.content.splitlines()[0])["error"]
    return response.content.decode("utf-8", "replace")


# A condition (If-Match, If-None-Match) or a transaction's check is about the key as it is:
# whether it holds is state, not part of the request, and refusing it is the point.
STATE_REFUSALS = {
    *((412, op) for op in ("set_key", "put_key", "increment_key", "delete_key")),
    (409, "run_transaction"),
}

# (operations, how the 400's message starts, why valid-looking data is refused)
SEMANTIC_REFUSALS = [
    (
        ("run_transaction",),
        "the key's value is not an integer",
        "an increment of a key an earlier op set to text: the stored value is state",
    ),
    (
        ("run_transaction",),
        "key ",
        "a key written by two ops: uniqueness across the items of an array of objects by one of "
        "their fields is not a schema",
    ),
    (
        ("run_transaction",),
        "value is not valid base64",
        'with "encoding": "base64" the value must decode; a pattern would not say so',
    ),
    (
        ("run_transaction",),
        "expiration ",
        "an import's Workers KV expiration must be in the future, and not past the longest ttl: "
        "a moment on the clock, not a range a schema can give",
    ),
    (
        ("run_transaction",),
        "give expiration or expiration_ttl, not both",
        "two optional fields that exclude each other: OpenAPI 3.0 cannot say so for schemathesis",
    ),
    (
        ("increment_key", "run_transaction"),
        "the result would not fit in a 64-bit integer",
        "the result depends on the stored value, which is state, not part of the request",
    ),
    (
        ("increment_key",),
        "an increment must fit in a 64-bit integer",
        "a 64-bit range is not a pattern: +N matches it and may still be too big",
    ),
    (
        ("get_key", "set_key", "put_key", "increment_key", "delete_key", "run_transaction"),
        "a key must be 1 to",
        "maxLength counts characters; the limit is 512 bytes of UTF-8",
    ),
    (
        ("list_keys", "create_token"),
        "prefix is longer than",
        "maxLength counts characters; the limit is 512 bytes of UTF-8",
    ),
    (
        ("list_keys",),
        "all=true exports every key with its value as NDJSON",
        "an export needs format=ndjson and values=true: one parameter requiring others' values "
        "is a dependency a schema does not express (the parameter's description says it)",
    ),
    (
        ("list_keys",),
        "all=true sends every key: leave limit out",
        "limit pages a listing and has no meaning in an export: the same kind of dependency",
    ),
    (
        ("list_keys", "list_buckets"),
        "cursor is not valid",
        "a cursor is opaque: only the X-Next-Cursor of a page names a place in the bucket",
    ),
]


def call_and_validate(case, alice, headers):
    case.call_and_validate(
        headers=headers,
        excluded_checks=[positive_data_acceptance],
        additional_checks=[positive_data_acceptance_of_the_api],
    )
    if case.operation.method.upper() == "DELETE" and case.operation.path == "/v1/{bucket_id}":
        # The bucket was (maybe) deleted: the next operations need it again.
        Bucket.objects.get_or_create(id=BUCKET, defaults={"owner": alice.user})


# The fixtures are made once per operation on purpose: its generated requests then meet the data
# the earlier ones wrote, as on a real server.
ONCE_PER_OPERATION = hypothesis.settings(
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture]
)


@schema.parametrize()
@ONCE_PER_OPERATION
def test_the_api_matches_its_schema_with_an_api_key(case, alice):
    call_and_validate(case, alice, {"X-Api-Key": alice.key})


@schema.parametrize()
@ONCE_PER_OPERATION
def test_the_api_matches_its_schema_with_a_token(case, alice, token):
    call_and_validate(case, alice, {"X-Token": token})
