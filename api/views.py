"""The v1 API's resource viewsets: parse the input, scope it to the caller, call one operation
(api.writes for a change, api.statements for a read), render. The way through DRF that each
request takes before and after is api.dispatch."""

from django.conf import settings
from drf_spectacular.utils import extend_schema

from api import conditions, exports, imports, inputs, statements, transactions, watching, writes
from api import schema as openapi
from api.dispatch import ApiViewSet, error_answer
from api.errors import BadRequest, Forbidden, key_not_found
from api.forms import TokenFields, checked
from api.models import Bucket
from api.renderers import (
    ApiResponse,
    BucketList,
    Counter,
    Document,
    Imported,
    KeyList,
    Message,
    NotModified,
    Payload,
    Streamed,
    Value,
    with_etag,
)
from api.scoping import (
    forget_bucket,
    owned_bucket,
    require_api_key,
    require_token_access,
    require_writer,
    token_list_prefix,
)

OK = "OK"


class Paging:
    """A list's ?limit= (spec: default and max 1000) and ?cursor=. A page fetches `limit + 1`
    rows: the one past the page says whether a next page exists."""

    def __init__(self, params):
        self.limit = inputs.whole_number(
            params.get("limit", str(settings.THISDB_LIST_MAX_LIMIT)),
            "limit",
            low=1,
            high=settings.THISDB_LIST_MAX_LIMIT,
        )
        self.after = inputs.decode_cursor(params["cursor"]) if params.get("cursor") else None

    def split(self, rows: list) -> tuple[list, str | None]:
        """The page's rows and the cursor of the next page (None on the last)."""
        limit = self.limit
        next_cursor = inputs.encode_cursor(rows[limit - 1][0]) if len(rows) > limit else None
        return rows[:limit], next_cursor


def _listing(payload: Payload, next_cursor: str | None) -> ApiResponse:
    response = ApiResponse(payload)
    if next_cursor:
        response["X-Next-Cursor"] = next_cursor
    return response


class BucketViewSet(ApiViewSet):
    """POST /v1/ creates a bucket; /v1/<bucket> lists, updates and deletes it, and runs a
    transaction (POST with a JSON object)."""

    # The action a watch is (GET /v1/<bucket>?watch=true): the one that may take its token from
    # the query string (api.authentication.query_token).
    watch_action = "retrieve"
    operations = {
        "create": "create_bucket",
        "list_buckets": "list_buckets",
        "retrieve": "list_keys",  # or a watch, or an export
        "partial_update": "update_bucket",
        "destroy": "delete_bucket",
        "transaction": "transaction",  # or an import
    }

    @extend_schema(
        summary="Create a bucket",
        operation_id="create_bucket",
        auth=openapi.API_KEY_ONLY,
        request=openapi.DEFAULT_TTL_FORM,
        responses=openapi.responses(openapi.BUCKET, 400, 403, 406, 411, 413, 429, 503),
    )
    def create(self, request):
        principal = self.principal()
        require_api_key(principal, "create buckets")
        fields = inputs.form_fields(request)
        default_ttl = _default_ttl(fields)
        self.count_request()
        bucket = writes.create_bucket(principal, default_ttl)
        return ApiResponse(Message(bucket.id, json_name="bucket"))

    @extend_schema(
        summary="List your buckets (beyond the spec)",
        operation_id="list_buckets",
        auth=openapi.API_KEY_ONLY,
        parameters=openapi.BUCKET_LIST_PARAMETERS,
        responses=openapi.responses(openapi.BUCKET_LIST, 400, 403, 406, 429, 503),
    )
    def list_buckets(self, request):
        """GET /v1/: the account's buckets a page at a time, with their default ttl and the key
        count and bytes beat last counted (an addition to the spec, for clients and tools)."""
        principal = self.principal()
        if principal.token is not None:
            raise Forbidden("a token cannot list buckets: use your API key (X-Api-Key)")
        paging = Paging(request.query_params)
        self.count_request()
        rows = list(
            Bucket.objects.for_user(principal.user_id)
            .filter(id__gt=paging.after or "")
            .order_by("id")
            .values_list("id", "default_ttl", "key_count", "stored_bytes")[: paging.limit + 1]
        )
        page, next_cursor = paging.split(rows)
        return _listing(BucketList(page, next_cursor), next_cursor)

    @extend_schema(
        summary="List the keys of a bucket",
        operation_id="list_keys",
        parameters=[
            openapi.BUCKET_ID,
            *openapi.LIST_PARAMETERS,
            *openapi.EXPORT_PARAMETERS,
            *openapi.WATCH_PARAMETERS,
        ],
        responses=openapi.watch_responses(
            openapi.responses(openapi.KEY_LIST, 400, 403, 404, 405, 406, 429, 503)
        ),
    )
    def retrieve(self, request, bucket_id):
        principal = self.principal()
        if request._request.META.get("QUERY_STRING"):
            if (
                request.query_params.get("watch")
                and request.method == "GET"  # a HEAD of a watch is the listing's HEAD
                and inputs.boolean(request.query_params["watch"], "watch")
            ):
                self.operation = "watch"
                bucket = owned_bucket(principal, bucket_id)
                return watching.open_watch(request, principal, bucket, self.count_request)
            # THISDB_BULK=false: all= is not read, as on a server without exports (whose
            # page, without X-Thisdb-Export, tells a client to page through the listing).
            if (
                settings.THISDB_BULK
                and request.query_params.get("all")
                and inputs.boolean(request.query_params["all"], "all")
            ):
                return self._export(request, principal, bucket_id)
        paging = Paging(request.query_params)
        with_values = inputs.boolean(request.query_params.get("values"), "values")
        prefix = inputs.check_prefix(inputs.query_field(request, "prefix"))
        bucket = owned_bucket(principal, bucket_id)
        prefix = token_list_prefix(principal, prefix)
        self.count_request()
        rows = statements.list_page(
            bucket.id,
            prefix=prefix,
            after=paging.after,
            limit=paging.limit + 1,
            with_values=with_values,
        )
        if not rows:
            # The bucket may come from the cache: make sure it still exists before saying "empty".
            forget_bucket(bucket.id)
            owned_bucket(principal, bucket_id)
        page, next_cursor = paging.split(rows)
        return _listing(KeyList(page, with_values, next_cursor), next_cursor)

    def _export(self, request, principal, bucket_id):
        """all=true: every live key in one NDJSON answer, from one snapshot (api.exports),
        counted up front, one request per 1,000 keys: refused whole (429) when the hour's
        requests cannot cover it, never cut off midway."""
        self.operation = "export"
        params = request.query_params
        if request.accepted_renderer.format != "ndjson" or not inputs.boolean(
            params.get("values"), "values"
        ):
            raise BadRequest(
                "all=true exports every key with its value as NDJSON: add "
                "format=ndjson&values=true (or leave all out to list a page at a time)"
            )
        if "limit" in params:
            raise BadRequest("all=true sends every key: leave limit out (it pages a listing)")
        after = inputs.decode_cursor(params["cursor"]) if params.get("cursor") else None
        prefix = inputs.check_prefix(inputs.query_field(request, "prefix"))
        bucket = owned_bucket(principal, bucket_id)
        prefix = token_list_prefix(principal, prefix)
        keys, chunks = exports.open_export(bucket.id, prefix, after)
        try:
            if not keys:
                # The bucket may come from the cache: make sure it still exists.
                forget_bucket(bucket.id)
                owned_bucket(principal, bucket_id)
            cost = exports.cost(keys)
            self.count_requests(cost, f"this export of {keys} keys (one request per 1,000)")
        except BaseException:
            chunks.close()  # the snapshot ends here
            raise
        response = Streamed(chunks)
        # No X-Next-Cursor: a client tells an export from a page (an older server's answer
        # to all=true) by this header.
        response["X-Thisdb-Export"] = "all"
        response["X-Thisdb-Export-Keys"] = str(keys)  # at most this many lines (a progress bar)
        return response

    @extend_schema(
        summary="Update a bucket's default_ttl",
        operation_id="update_bucket",
        auth=openapi.API_KEY_ONLY,
        parameters=[openapi.BUCKET_ID],
        request=openapi.DEFAULT_TTL_FORM,
        responses=openapi.responses(openapi.OK, 400, 403, 404, 405, 406, 411, 413, 429, 503),
    )
    def partial_update(self, request, bucket_id):
        principal = self.principal()
        require_api_key(principal, "change a bucket")
        default_ttl = _default_ttl(inputs.form_fields(request))
        owned_bucket(principal, bucket_id)
        self.count_request()
        writes.update_bucket(principal, bucket_id, default_ttl)
        return ApiResponse(Message(OK))

    @extend_schema(
        summary="Delete a bucket, its keys and its tokens",
        operation_id="delete_bucket",
        auth=openapi.API_KEY_ONLY,
        parameters=[openapi.BUCKET_ID],
        responses=openapi.responses(openapi.OK, 403, 404, 405, 406, 429, 503),
    )
    def destroy(self, request, bucket_id):
        principal = self.principal()
        require_api_key(principal, "delete a bucket")
        owned_bucket(principal, bucket_id)
        self.count_request()
        writes.delete_bucket(principal, bucket_id)
        return ApiResponse(Message(OK))

    @extend_schema(
        summary="Run a transaction (a JSON object), or import many keys (NDJSON or a JSON array)",
        description="A JSON object body is a transaction: its checks, then its ops, all or "
        "nothing. An NDJSON body (Content-Type: application/x-ndjson) or a JSON array (Workers "
        "KV's bulk format) is an import: read as a stream, written 1,000 lines at a time, each "
        "line as a single write; at the first line that cannot be written, the lines before it "
        "are applied and the error names it (line or item, applied, imported). An import counts "
        "one request per 100 lines.",
        operation_id="run_transaction",
        parameters=[openapi.BUCKET_ID],
        request=openapi.TRANSACTION_BODY,
        responses=openapi.responses(
            openapi.TRANSACTION_ANSWER, 400, 403, 404, 406, 409, 411, 413, 429, 503
        ),
    )
    def transaction(self, request, bucket_id):
        principal = self.principal()
        bucket = owned_bucket(principal, bucket_id)
        if not settings.THISDB_BULK:
            # No imports: every body is read as a transaction, as on a server without them (an
            # NDJSON or array body is then its 400, which tells a client to write key by key).
            return self._transaction(
                request, principal, bucket, settings.THISDB_TRANSACTION_MAX_BYTES
            )
        body = imports.Body(request)
        if imports.is_ndjson(request._request.META):
            return self._import(principal, bucket, imports.ndjson_entries(body), "line")
        if body.first_byte() == b"[":
            return self._import(principal, bucket, imports.workers_kv_entries(body), "item")
        # A JSON object: a transaction. Its body whole, what was read to tell it included.
        limit = settings.THISDB_TRANSACTION_MAX_BYTES
        request._request._thisdb_body = body.head_and_rest(limit + 1)
        return self._transaction(request, principal, bucket, limit)

    def _transaction(self, request, principal, bucket, limit: int) -> ApiResponse:
        """The body as a transaction (api.transactions): its checks, then its ops."""
        plan = transactions.parse(inputs.read_body(request, limit, "the transaction"))
        transactions.authorize(principal, plan)
        try:
            answer = writes.apply_transaction(principal, bucket, plan, claim=self.claim_batch)
        except transactions.Conflict as conflict:
            return ApiResponse(Document(conflict.body), 409)
        return ApiResponse(Document(answer))

    def streams_body(self, request) -> bool:
        return (
            settings.THISDB_BULK
            and self.action == "transaction"
            and imports.is_ndjson(request._request.META)
        )

    def _import(self, principal, bucket, entries, unit: str) -> ApiResponse:
        """An import (api.imports): its entries written in batches (api.writes.import_items)."""
        self.operation = "import"
        # Refused before any of the body is read: nothing could be written.
        if principal.token is None:
            require_writer(principal, "write keys")
        elif not principal.token.can_write:
            raise Forbidden("this token has no write permission")
        imported = writes.import_items(
            principal, bucket, entries, unit=unit, charge=self.charge_requests
        )
        if not self._counted:
            self.count_request()  # an empty import is a request too
        return ApiResponse(Imported(imported))


def _default_ttl(fields: dict[str, str]) -> int:
    # The JS and PHP SDKs' updateBucket take `ttl`: accept it as another name for default_ttl.
    # Absent, it is 604800 (the spec's default for both POST /v1/ and PATCH /v1/<bucket>).
    # Both are checked when both are sent; default_ttl wins.
    given = [
        inputs.ttl(fields[name], "default_ttl") for name in ("default_ttl", "ttl") if name in fields
    ]
    return given[0] if given else Bucket._meta.get_field("default_ttl").default


class ItemViewSet(ApiViewSet):
    """/v1/<bucket>/<key>: get, set (POST or PUT), increment (PATCH), delete."""

    operations = {
        "retrieve": "get",
        "update": "set",
        "partial_update": "increment",
        "destroy": "delete",
    }

    def _scope(self, bucket_id: str, key: str, *, write: bool):
        principal = self.principal()
        inputs.require_utf8_path(self.request, key)
        inputs.check_key(key)
        bucket = owned_bucket(principal, bucket_id)
        require_token_access(principal, key, write=write)
        return bucket

    def _ttl(self, request, bucket) -> int:
        if not request._request.META.get("QUERY_STRING"):  # most writes: no QueryDict to build
            return bucket.default_ttl
        raw = request.query_params.get("ttl")
        return bucket.default_ttl if raw is None else inputs.ttl(raw)

    @extend_schema(
        summary="Get a key's value",
        operation_id="get_key",
        parameters=[openapi.BUCKET_ID, openapi.KEY, openapi.IF_NONE_MATCH_READ],
        responses=openapi.responses(openapi.VALUE, 304, 400, 403, 404, 406, 429, 503),
    )
    def retrieve(self, request, bucket_id, key):
        bucket = self._scope(bucket_id, key, write=False)
        self.count_request()
        found = statements.get_item(bucket.id, key)
        if found is None:
            raise key_not_found()
        value, version = found
        if conditions.not_modified(request._request.META, version):
            response: ApiResponse = NotModified()
        else:
            response = ApiResponse(Value(key, value))
        return with_etag(response, version)

    @extend_schema(
        methods=["POST"],
        summary="Set a key's value (the raw body)",
        operation_id="set_key",
        parameters=[openapi.BUCKET_ID, openapi.KEY, openapi.TTL, *openapi.WRITE_CONDITIONS],
        request=openapi.VALUE_BODY,
        responses=openapi.responses(openapi.OK, 400, 403, 404, 406, 411, 412, 413, 429, 503),
    )
    @extend_schema(
        methods=["PUT"],
        summary="Set a key's value: PUT is an alias of POST (kvdb.io clients use it)",
        operation_id="put_key",
        parameters=[openapi.BUCKET_ID, openapi.KEY, openapi.TTL, *openapi.WRITE_CONDITIONS],
        request=openapi.VALUE_BODY,
        responses=openapi.responses(openapi.OK, 400, 403, 404, 406, 411, 412, 413, 429, 503),
    )
    def update(self, request, bucket_id, key):
        bucket = self._scope(bucket_id, key, write=True)
        ttl = self._ttl(request, bucket)
        value = inputs.read_value(request)
        condition = conditions.write_condition(request._request.META)
        version = writes.set_key(
            self.principal(), bucket, key, value, ttl, claim=self.claim_write, condition=condition
        )
        return with_etag(ApiResponse(Message(OK)), version)

    @extend_schema(
        summary="Increment (+N) or decrement (-N) a key",
        operation_id="increment_key",
        parameters=[openapi.BUCKET_ID, openapi.KEY, openapi.TTL, *openapi.WRITE_CONDITIONS],
        request=openapi.INCREMENT_BODY,
        responses=openapi.responses(openapi.COUNTER, 400, 403, 404, 406, 411, 412, 413, 429, 503),
    )
    def partial_update(self, request, bucket_id, key):
        bucket = self._scope(bucket_id, key, write=True)
        ttl = self._ttl(request, bucket)
        delta = inputs.delta(inputs.read_value(request))
        condition = conditions.write_condition(request._request.META)
        counted = writes.increment_key(
            self.principal(), bucket, key, delta, ttl, claim=self.claim_write, condition=condition
        )
        return with_etag(ApiResponse(Counter(key, counted.value)), counted.version)

    @extend_schema(
        summary="Delete a key",
        operation_id="delete_key",
        parameters=[openapi.BUCKET_ID, openapi.KEY, *openapi.WRITE_CONDITIONS],
        responses=openapi.responses(openapi.OK, 400, 403, 404, 406, 412, 429, 503),
    )
    def destroy(self, request, bucket_id, key):
        bucket = self._scope(bucket_id, key, write=True)
        condition = conditions.write_condition(request._request.META)
        writes.delete_key(bucket, key, claim=self.claim_write, condition=condition)
        return ApiResponse(Message(OK))


class TokenViewSet(ApiViewSet):
    """POST /v1/tokens: a token for one bucket, one prefix, read and/or write, for ttl seconds."""

    operations = {"create": "create_token"}

    @extend_schema(
        summary="Create a token",
        operation_id="create_token",
        auth=openapi.API_KEY_ONLY,
        request=openapi.TOKEN_FORM,
        responses=openapi.responses(openapi.TOKEN, 400, 403, 404, 406, 411, 413, 429, 503),
    )
    def create(self, request):
        principal = self.principal()
        require_api_key(principal, "create tokens")
        fields = inputs.form_fields(request)
        missing = [n for n in ("bucket", "prefix", "permissions", "ttl") if n not in fields]
        if missing:
            raise BadRequest(f"missing field(s): {', '.join(missing)} (all four are required)")
        read, write = inputs.permissions(fields["permissions"])
        given = {"prefix": fields["prefix"], "ttl": fields["ttl"], "read": read, "write": write}
        token_fields = checked(TokenFields(given))
        bucket = owned_bucket(principal, fields["bucket"])
        self.count_request()
        assert principal.api_key_id is not None  # an API caller acts through a key
        token = writes.create_token(
            principal.api_key_id,
            bucket.id,
            token_fields["prefix"],
            read=read,
            write=write,
            ttl=token_fields["ttl"],
        )
        return ApiResponse(Message(token, json_name="token"))


def not_found(request):
    """A path under /v1/ that names no bucket, key or token route."""
    return error_answer(
        request,
        404,
        "not found: the v1 API has /v1/, /v1/tokens, /v1/<bucket> and /v1/<bucket>/<key>",
    )
