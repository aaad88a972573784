"""The v1 API viewsets: authenticate, scope, validate, call one operation, render."""

import functools
import time
from typing import cast

from django.conf import settings
from django.db import DatabaseError
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, viewsets
from rest_framework.request import Request

from api import inputs, limits, statements, writes
from api import schema as openapi
from api.errors import BadRequest, Forbidden, TooManyRequests, key_not_found
from api.models import Bucket
from api.principals import Principal
from api.renderers import ApiResponse, BucketList, Counter, KeyList, Message, Value
from api.scoping import (
    forget_bucket,
    owned_bucket,
    require_api_key,
    require_token_access,
    token_list_prefix,
)
from thisdb_site import outages

OK = "OK"
PERMISSIONS = ("read", "write")


class ApiRequest(Request):
    """DRF's Request, with the method read once: DRF's dispatch and ours read it several times
    a request, each time through Request.__getattr__ (an attribute lookup that fails first)."""

    def __init__(self, request, **kwargs):
        super().__init__(request, **kwargs)
        self.method: str = request.method or "GET"  # a WSGI request always has one


class ApiViewSet(viewsets.ViewSet):
    """Every action calls count_request() once, after scoping and before its SQL statement: the
    request's one Redis round trip (hourly counter, and the key's write slot for writes)."""

    metadata_class = None  # OPTIONS is for CORS preflight only (answered by the middleware)
    _counted = False
    _decision: limits.Decision | None = None
    _principal: Principal  # set by initial(), which every action runs after

    # The hot path through DRF, kept lean (bench/README.md): the renderers, the authentication
    # and the negotiation are stateless, so one instance of each serves every request; there is
    # no versioning, no permission class (authentication refuses a request without credentials,
    # and each view scopes the rest) and no throttle (api.limits is the request's Redis trip).
    _renderers = [renderer() for renderer in viewsets.ViewSet.renderer_classes]
    _authenticators = [auth() for auth in viewsets.ViewSet.authentication_classes]
    _negotiator = viewsets.ViewSet.content_negotiation_class()

    def get_renderers(self):
        return self._renderers

    def get_parsers(self):
        return []  # bodies are read raw (api.inputs): a value is never parsed as a form

    def get_authenticators(self):
        return self._authenticators

    def get_content_negotiator(self):
        return self._negotiator

    @classmethod
    def as_view(cls, actions=None, **initkwargs):
        """DRF's view function for the route's actions, with less to do per request.

        DRF's binds every action of the route onto each new viewset (self.get = self.retrieve,
        six of them for a key's route: bound methods made and set on every request) for its
        dispatch to find the handler by method. Here dispatch calls the action by name
        (self.action, which initialize_request takes from the same map, HEAD as GET as in DRF).
        DRF's as_view still checks the arguments and makes the function whose attributes
        (cls, initkwargs, actions, csrf_exempt) the schema and the URL resolver read.
        """
        drf_view = super().as_view(actions, **initkwargs)  # refuses no or wrong actions
        action_map = dict(actions or {})
        if "get" in action_map:
            action_map.setdefault("head", action_map["get"])

        def view(request, *args, **kwargs):
            self = cls(**initkwargs)
            self.action_map = action_map
            self.request = request
            return self.dispatch(request, *args, **kwargs)

        return functools.wraps(drf_view, assigned=("__module__", "__name__", "__doc__"))(view)

    def _allowed_methods(self):
        # What DRF finds by the handlers it binds (see as_view): the route's, and OPTIONS.
        return [m.upper() for m in self.http_method_names if m in self.action_map or m == "options"]

    def dispatch(self, request, *args, **kwargs):
        try:
            return self._respond(request, *args, **kwargs)
        finally:
            # DRF's Request holds itself and the view in its parser_context, and the view holds
            # the request: reference cycles that hold the whole request (about 36 objects), which
            # only the garbage collector frees. That made a collection every ~24 requests, ~11 us
            # a request (bench/NOTES.md). The answer is complete here: without these links,
            # reference counting frees it all.
            api_request = self.__dict__.get("request")
            if isinstance(api_request, ApiRequest):
                api_request.parser_context = {}  # nothing parses after the answer
            self.__dict__.clear()

    def _respond(self, request, *args, **kwargs):
        # DRF's APIView.dispatch, calling the action by name (see as_view).
        self.args, self.kwargs = args, kwargs
        api_request = self.initialize_request(request, *args, **kwargs)
        self.request = api_request
        try:
            self.initial(api_request, *args, **kwargs)
            action = self.action
            handler = (
                getattr(self, action)
                if action is not None and action != "metadata"
                else self.http_method_not_allowed
            )
            response = handler(api_request, *args, **kwargs)
        except Exception as exc:
            response = self.handle_exception(exc)
        return self.finalize_response(api_request, response, *args, **kwargs)

    def initialize_request(self, request, *args, **kwargs):
        # DRF's (APIView's and ViewSetMixin's) with the shared instances and an ApiRequest.
        api_request = ApiRequest(
            request,
            authenticators=self._authenticators,
            negotiator=self._negotiator,
            parser_context={"view": self, "args": args, "kwargs": kwargs},
        )
        method = api_request.method.lower()
        # None for a method without an action, as DRF does (its stubs say str)
        action = "metadata" if method == "options" else self.action_map.get(method)
        self.action = action  # type: ignore[assignment]
        return api_request

    def initial(self, request, *args, **kwargs):
        if request.method in ("POST", "PUT", "PATCH"):
            inputs.buffer_body(request)  # before authentication takes a database connection
        self.format_kwarg = None  # no format-suffix routes: ?format= and Accept choose
        request.accepted_renderer, request.accepted_media_type = self.perform_content_negotiation(
            request
        )
        request.version, request.versioning_scheme = None, None
        self.perform_authentication(request)

    def perform_authentication(self, request):
        # DRF's reads request.user, whose first step, hasattr(request, "_user"), fails twice on a
        # new request (on DRF's Request, then on Django's through its __getattr__): two
        # exceptions raised and caught on every request. Authenticating directly does the same.
        request._authenticate()
        # What the authentication class gives (it refuses a request without credentials). Kept
        # here: through DRF's request.user, each of a write's five reads costs a property.
        self._principal = cast(Principal, request._user)

    def principal(self) -> Principal:
        return self._principal

    def count_request(self, write: tuple[str, str] | None = None) -> None:
        principal = self.principal()
        assert principal.api_key_id is not None  # an API caller acts through a key
        self._counted = True
        decision = limits.check(
            principal.user_id,
            principal.api_key_id,
            principal.quotas.requests_per_hour,
            write,
            blocks=principal.block_names,
        )
        if decision is None:
            return  # Redis unreachable: serve without limits
        if decision.blocked_by is not None:
            # Revoked or suspended a moment ago; this worker's cached lookup has not seen it yet.
            raise Forbidden(principal.blocks[decision.blocked_by][1])
        self._decision = decision
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
        if outages.is_outage(exc):
            return super().handle_exception(exc)  # no database: nothing to look up or count
        caller = None if self._counted else self._caller()
        if isinstance(caller, Principal):
            self._principal = caller  # initial() may have failed before it was set (a 406)
            try:
                self.count_request()
            except (TooManyRequests, Forbidden) as over_the_limit_or_blocked:
                exc = over_the_limit_or_blocked
        return super().handle_exception(exc)

    def _caller(self) -> Principal | None:
        """The caller, authenticating now if the request failed before (a 406 does); None if
        its credentials are missing or wrong."""
        try:
            return cast(Principal | None, self.request.user)  # UNAUTHENTICATED_USER is None
        except exceptions.APIException:
            return None
        except DatabaseError:
            return None  # the database went away meanwhile: the request is refused uncounted

    def finalize_response(self, request, response, *args, **kwargs):
        # DRF's own adds "Allow" to every answer and merges "Vary" through a header parser;
        # here an answer varies by Accept (the format) and nothing else, and the 405s say
        # "Allow" themselves (api.errors). The answer is rendered here, once.
        renderer = getattr(request, "accepted_renderer", None)
        if renderer is None:  # negotiation itself failed (a 406): answer in the first format
            renderer, request.accepted_media_type = self.perform_content_negotiation(
                request, force=True
            )
            request.accepted_renderer = renderer
        response.render_with(renderer)
        headers = response.headers
        headers.put("vary", "Vary", "Accept")
        # A value is whatever was stored: no browser may take text/plain for a page.
        headers.put("x-content-type-options", "X-Content-Type-Options", "nosniff")
        decision = self._decision
        if decision is not None:
            headers.put("x-ratelimit-limit", "X-RateLimit-Limit", str(decision.limit))
            headers.put("x-ratelimit-remaining", "X-RateLimit-Remaining", str(decision.remaining))
            headers.put("x-ratelimit-reset", "X-RateLimit-Reset", str(decision.reset_at))
        return response


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
        params = request.query_params
        limit = inputs.whole_number(
            params.get("limit", str(settings.THISDB_LIST_MAX_LIMIT)),
            "limit",
            low=1,
            high=settings.THISDB_LIST_MAX_LIMIT,
        )
        after = inputs.decode_cursor(params["cursor"]) if params.get("cursor") else ""
        self.count_request()
        rows = list(
            Bucket.objects.for_user(principal.user_id)
            .filter(id__gt=after)
            .order_by("id")
            .values_list("id", "default_ttl", "key_count", "stored_bytes")[: limit + 1]
        )
        next_cursor = inputs.encode_cursor(rows[limit - 1][0]) if len(rows) > limit else None
        response = ApiResponse(BucketList(rows[:limit], next_cursor))
        if next_cursor:
            response["X-Next-Cursor"] = next_cursor
        return response

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
        rows = statements.list_page(
            bucket.id, prefix=prefix, after=after, limit=limit + 1, with_values=with_values
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
        writes.check_storage_quota(self.principal())
        self.count_request(write=(bucket.id, key))
        return writes.may_create_keys(self.principal(), bucket)

    def _ttl(self, request, bucket) -> int:
        if not request._request.META.get("QUERY_STRING"):  # most writes: no QueryDict to build
            return bucket.default_ttl
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
        value = statements.get_value(bucket.id, key)
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
        writes.set_key(self.principal(), bucket, key, value, ttl, create=create)
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
        value = writes.increment_key(self.principal(), bucket, key, delta, ttl, create=create)
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
        writes.delete_key(bucket, key)
        return ApiResponse(Message(OK))


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
        assert principal.api_key_id is not None  # an API caller acts through a key
        token = writes.create_token(
            principal.api_key_id,
            bucket.id,
            prefix,
            read="read" in permissions,
            write="write" in permissions,
            ttl=ttl,
        )
        return ApiResponse(Message(token, json_name="token"))


def not_found(request):
    """A path under /v1/ that names no bucket, key or token route."""
    from thisdb_site.views import api_error

    return api_error(
        request,
        404,
        "not found: the v1 API has /v1/, /v1/tokens, /v1/<bucket> and /v1/<bucket>/<key>",
    )
