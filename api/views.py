"""The v1 API viewsets: authenticate, scope, validate, call one operation, render."""

import secrets
import string
import time
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, viewsets

from accounts.models import Account
from api import inputs, limits, operations
from api import schema as openapi
from api.errors import BadRequest, Forbidden, TooManyRequests, bucket_not_found, key_not_found
from api.models import TOKEN_LENGTH, Bucket, Token, new_bucket_id
from api.permissions import (
    forget_bucket,
    owned_bucket,
    require_api_key,
    require_token_access,
    token_list_prefix,
)
from api.principals import Principal, hash_token
from api.renderers import ApiResponse, Counter, KeyList, Message, Value

OK = "OK"
TOKEN_ALPHABET = string.ascii_lowercase + string.digits  # like the spec's example token
PERMISSIONS = ("read", "write")


class ApiViewSet(viewsets.ViewSet):
    """Every action calls count_request() once, after scoping and before its SQL statement: the
    request's one Redis round trip (hourly counter, and the key's write slot for writes)."""

    metadata_class = None  # OPTIONS is for CORS preflight only (answered by the middleware)
    _counted = False
    _decision: limits.Decision | None = None

    def principal(self) -> Principal:
        return self.request.user

    def count_request(self, write: tuple[str, str] | None = None) -> None:
        principal = self.principal()
        self._counted = True
        decision = limits.check(principal.api_key_id, principal.quotas.requests_per_hour, write)
        self._decision = decision
        if decision is None:
            return  # Redis unreachable: serve without limits
        if decision.over_hourly:
            raise TooManyRequests(
                f"rate limit reached: {decision.limit} requests per hour for this API key; "
                "see Retry-After",
                retry_after=decision.retry_after(time.time()),
            )
        if decision.write_wait_ms:
            raise TooManyRequests(
                "this key was written less than a second ago: keys take one write per second",
                retry_after=decision.retry_after(time.time()),
            )

    def handle_exception(self, exc):
        # A request refused before it was counted (bad input, unknown bucket) still counts, and
        # past the hourly limit the answer is the 429.
        if not self._counted and isinstance(self._caller(), Principal):
            try:
                self.count_request()
            except TooManyRequests as over_the_hourly_limit:
                exc = over_the_hourly_limit
        return super().handle_exception(exc)

    def _caller(self) -> Principal | None:
        """The caller, authenticating now if the request failed before (a 406 does); None if
        its credentials are missing or wrong."""
        try:
            return self.request.user
        except exceptions.APIException:
            return None

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        decision = self._decision
        if decision is not None:
            response["X-RateLimit-Limit"] = str(decision.limit)
            response["X-RateLimit-Remaining"] = str(decision.remaining)
            response["X-RateLimit-Reset"] = str(decision.reset_at)
        return response

    def check_storage_quota(self) -> None:
        principal = self.principal()
        if principal.stored_bytes >= principal.quotas.max_stored_bytes:
            raise Forbidden(
                f"storage quota reached: your account stores {principal.stored_bytes} of "
                f"{principal.quotas.max_stored_bytes} bytes; delete keys to write again"
            )


class BucketViewSet(ApiViewSet):
    """POST /v1/ creates a bucket; /v1/<bucket> lists, updates and deletes it."""

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
        max_buckets = principal.quotas.max_buckets
        with transaction.atomic():
            # Lock the account row so two racing creates cannot both take the last slot.
            Account.objects.select_for_update().filter(user_id=principal.user_id).first()
            if Bucket.objects.for_user(principal.user_id).count() >= max_buckets:
                raise Forbidden(
                    f"bucket quota reached: your plan allows {max_buckets} buckets; "
                    "delete one to create another"
                )
            # 62**20 possible ids: a collision is not a case worth code.
            bucket = Bucket.objects.create(
                id=new_bucket_id(), owner_id=principal.user_id, default_ttl=default_ttl
            )
        return ApiResponse(Message(bucket.id, json_name="bucket"))

    @extend_schema(
        summary="List the keys of a bucket",
        operation_id="list_keys",
        parameters=[openapi.BUCKET_ID, *openapi.LIST_PARAMETERS],
        responses=openapi.responses(openapi.KEY_LIST, 400, 403, 404, 405, 406, 429, 503),
    )
    def retrieve(self, request, bucket_id):
        principal = self.principal()
        params = request.query_params
        limit = inputs.whole_number(
            params.get("limit", str(settings.THISDB_LIST_MAX_LIMIT)),
            "limit",
            low=1,
            high=settings.THISDB_LIST_MAX_LIMIT,  # spec: default and max 1000
        )
        with_values = inputs.boolean(params.get("values"), "values")
        prefix = inputs.check_prefix(inputs.query_field(request, "prefix"))
        after = inputs.decode_cursor(params["cursor"]) if params.get("cursor") else None
        bucket = owned_bucket(principal, bucket_id)
        prefix = token_list_prefix(principal, prefix)
        self.count_request()
        rows = operations.list_page(
            bucket.id,
            prefix=prefix,
            after=after,
            limit=limit + 1,
            with_values=with_values,
            now=timezone.now(),
        )
        if not rows:
            # The bucket may come from the cache: make sure it still exists before saying "empty".
            forget_bucket(bucket.id)
            owned_bucket(principal, bucket_id)
        next_cursor = inputs.encode_cursor(rows[limit - 1][0]) if len(rows) > limit else None
        response = ApiResponse(KeyList(rows[:limit], with_values, next_cursor))
        if next_cursor:
            response["X-Next-Cursor"] = next_cursor
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
        updated = (
            Bucket.objects.for_user(principal.user_id)
            .filter(pk=bucket_id)
            .update(default_ttl=default_ttl)
        )
        forget_bucket(bucket_id)
        if not updated:
            raise bucket_not_found()  # deleted meanwhile
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
        with transaction.atomic():
            # Lock the bucket first: a key or token written meanwhile then waits for this delete
            # and is refused by its foreign key (404), instead of breaking the delete (500).
            mine = Bucket.objects.for_user(principal.user_id).filter(pk=bucket_id)
            if not mine.select_for_update().exists():
                raise bucket_not_found()  # deleted meanwhile
            # Keys and tokens go with it, by bulk DELETEs (Django fast-deletes: nothing is loaded).
            mine.delete()
        forget_bucket(bucket_id)
        return ApiResponse(Message(OK))


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

    def _scope(self, bucket_id: str, key: str, *, write: bool):
        principal = self.principal()
        inputs.require_utf8_path(self.request, key)
        inputs.check_key(key)
        bucket = owned_bucket(principal, bucket_id)
        require_token_access(principal, key, write=write)
        return bucket

    def _claim_write(self, bucket, key: str) -> bool:
        """The quota and rate checks of a set or increment; True if it may create the key."""
        self.check_storage_quota()
        self.count_request(write=(bucket.id, key))
        # At the keys-per-bucket quota, existing keys may still be written, new ones not.
        return bucket.key_count < self.principal().quotas.max_keys_per_bucket

    def _key_quota_reached(self):
        limit = self.principal().quotas.max_keys_per_bucket
        return Forbidden(
            f"key quota reached: this bucket holds {limit} keys, the most your plan allows; "
            "existing keys can still be changed, or delete keys to add new ones"
        )

    def _ttl(self, request, bucket) -> int:
        raw = request.query_params.get("ttl")
        return bucket.default_ttl if raw is None else inputs.ttl(raw)

    @extend_schema(
        summary="Get a key's value",
        operation_id="get_key",
        parameters=[openapi.BUCKET_ID, openapi.KEY],
        responses=openapi.responses(openapi.VALUE, 400, 403, 404, 406, 429, 503),
    )
    def retrieve(self, request, bucket_id, key):
        bucket = self._scope(bucket_id, key, write=False)
        self.count_request()
        value = operations.get_value(bucket.id, key, timezone.now())
        if value is None:
            raise key_not_found()
        return ApiResponse(Value(key, value))

    @extend_schema(
        methods=["POST"],
        summary="Set a key's value (the raw body)",
        operation_id="set_key",
        parameters=[openapi.BUCKET_ID, openapi.KEY, openapi.TTL],
        request=openapi.VALUE_BODY,
        responses=openapi.responses(openapi.OK, 400, 403, 404, 406, 411, 413, 429, 503),
    )
    @extend_schema(
        methods=["PUT"],
        summary="Set a key's value: PUT is an alias of POST (kvdb.io clients use it)",
        operation_id="put_key",
        parameters=[openapi.BUCKET_ID, openapi.KEY, openapi.TTL],
        request=openapi.VALUE_BODY,
        responses=openapi.responses(openapi.OK, 400, 403, 404, 406, 411, 413, 429, 503),
    )
    def update(self, request, bucket_id, key):
        bucket = self._scope(bucket_id, key, write=True)
        ttl = self._ttl(request, bucket)
        value = inputs.read_value(request)
        create = self._claim_write(bucket, key)
        now = timezone.now()
        try:
            written = operations.set_value(
                bucket.id, key, value, operations.expiry(now, ttl), now, create=create
            )
        except operations.BucketGone:
            raise self._bucket_gone(bucket.id) from None
        if not written:
            raise self._key_quota_reached()
        return ApiResponse(Message(OK))

    @extend_schema(
        summary="Increment (+N) or decrement (-N) a key",
        operation_id="increment_key",
        parameters=[openapi.BUCKET_ID, openapi.KEY, openapi.TTL],
        request=openapi.INCREMENT_BODY,
        responses=openapi.responses(openapi.COUNTER, 400, 403, 404, 406, 411, 413, 429, 503),
    )
    def partial_update(self, request, bucket_id, key):
        bucket = self._scope(bucket_id, key, write=True)
        ttl = self._ttl(request, bucket)
        delta = inputs.delta(inputs.read_value(request))
        create = self._claim_write(bucket, key)
        now = timezone.now()
        try:
            value = operations.increment(
                bucket.id, key, delta, operations.expiry(now, ttl), now, create=create
            )
        except operations.NotAnInteger as exc:
            raise BadRequest(str(exc)) from None
        except operations.BucketGone:
            raise self._bucket_gone(bucket.id) from None
        if value is None:
            raise self._key_quota_reached()
        return ApiResponse(Counter(key, value))

    @extend_schema(
        summary="Delete a key",
        operation_id="delete_key",
        parameters=[openapi.BUCKET_ID, openapi.KEY],
        responses=openapi.responses(openapi.OK, 400, 403, 404, 406, 429, 503),
    )
    def destroy(self, request, bucket_id, key):
        bucket = self._scope(bucket_id, key, write=True)
        self.count_request(write=(bucket.id, key))
        if not operations.delete_key(bucket.id, key, timezone.now()):
            raise key_not_found()
        return ApiResponse(Message(OK))

    @staticmethod
    def _bucket_gone(bucket_id: str):
        forget_bucket(bucket_id)
        return bucket_not_found()


class TokenViewSet(ApiViewSet):
    """POST /v1/tokens: a token for one bucket, one prefix, read and/or write, for ttl seconds."""

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
        permissions = {p.strip().lower() for p in fields["permissions"].split(",") if p.strip()}
        if not permissions or not permissions <= set(PERMISSIONS):
            raise BadRequest("permissions must be read, write or read,write")
        # spec: at most 86400 s
        ttl = inputs.whole_number(fields["ttl"], "ttl", low=1, high=settings.THISDB_TOKEN_MAX_TTL)
        prefix = inputs.check_prefix(fields["prefix"])
        bucket = owned_bucket(principal, fields["bucket"])
        self.count_request()
        token = "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(TOKEN_LENGTH))
        try:
            Token.objects.create(
                hashed_token=hash_token(token),
                bucket_id=bucket.id,
                prefix=prefix,
                can_read="read" in permissions,
                can_write="write" in permissions,
                expires_at=timezone.now() + timedelta(seconds=ttl),
                created_by_id=principal.api_key_id,
            )
        except IntegrityError:
            raise ItemViewSet._bucket_gone(bucket.id) from None  # deleted meanwhile
        return ApiResponse(Message(token, json_name="token"))
