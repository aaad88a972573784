"""The v1 API's way through Django REST framework: a lean dispatch, direct authentication and
headers stored without Django's checks, for the hot path's budget (bench/NOTES.md). The resource
viewsets (api.views) build on ApiViewSet; error_answer speaks the API's formats where no viewset
answers.

What this leans on that Django and DRF do not promise, and the tests that pin each:

- DRF's Request._authenticate() and the _user it sets (perform_authentication): every
  authenticated request, and tests/api/test_dispatch.py, which checks that request.user gives
  what _user holds.
- DRF's APIView._allowed_methods(), behind allowed_methods and the 405s' Allow header:
  tests/api/test_routing.py::test_a_method_a_route_has_no_action_for_is_405_with_the_routes_methods.
- DRF's Request holding the view in parser_context, a cycle this dispatch breaks when it has
  answered: tests/test_budgets.py::test_an_api_request_leaves_no_reference_cycles.
- DRF's Request reading method through __getattr__, which ApiRequest shadows with an attribute:
  tests/api/test_routing.py::test_head_is_get_without_the_body (HEAD runs as GET).
- Django's ResponseHeaders._store, written directly by api.renderers.ApiHeaders.put:
  tests/api/test_formats.py::test_the_apis_own_headers_are_what_djangos_checks_would_store.
- Django's HttpResponse._has_been_logged, so an outage's 503s are not each logged (error_answer):
  tests/api/test_dispatch.py.
- DRF's Request._request, the Django request under it (also api.inputs, api.renderers and
  api.authentication): every request.
"""

import functools
import time
from typing import cast

from django.db import DatabaseError
from django.http import HttpRequest
from rest_framework import exceptions, viewsets
from rest_framework.request import Request

from api import inputs, limits
from api.errors import Forbidden, TooManyRequests
from api.principals import Principal
from api.renderers import ApiResponse, Message
from api.scoping import BucketInfo
from thisdb_site import outages


class ApiRequest(Request):
    """DRF's Request, with the method read once: DRF's dispatch and ours read it several times
    a request, each time through Request.__getattr__ (an attribute lookup that fails first)."""

    def __init__(self, request, **kwargs):
        super().__init__(request, **kwargs)
        self.method: str = request.method or "GET"  # a WSGI request always has one


class ApiViewSet(viewsets.ViewSet):
    """Every action counts its request once, after scoping and before its SQL statement: the
    request's one Redis round trip (the hourly counter, and for a key write the key's slot).
    Reads and bucket and token changes call count_request(); a key write passes claim_write to
    its api.writes function, which calls it at its turn."""

    metadata_class = None  # OPTIONS is for CORS preflight only (answered by the middleware)
    _counted = False
    operations: dict[str | None, str] = {}  # action: the operation's name in the metrics
    operation: str | None = None  # set by an action that is another operation than its own
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
            # What was done, by name, for the metrics (thisdb_site.metrics reads it): an action
            # may name itself (an import, an export, a watch), else the viewset's table does.
            request.thisdb_operation = self.operation or self.operations.get(
                self.__dict__.get("action")
            )
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
        if request.method in ("POST", "PUT", "PATCH") and not self.streams_body(request):
            inputs.buffer_body(request)  # before authentication takes a database connection
        self.format_kwarg = None  # no format-suffix routes: ?format= and Accept choose
        request.accepted_renderer, request.accepted_media_type = self.perform_content_negotiation(
            request
        )
        request.version, request.versioning_scheme = None, None
        self.perform_authentication(request)

    def streams_body(self, request) -> bool:
        """Whether the action reads its body as a stream, of any size, rather than buffered
        first (an import, api.imports)."""
        return False

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

    def claim_write(self, bucket: BucketInfo, key: str) -> None:
        """The API's claim of a key write (api.writes.ClaimWrite): the key's slot, taken in the
        round trip that counts the request."""
        self.count_request(write=(bucket.id, key))

    def claim_batch(self, bucket: BucketInfo, plan) -> None:
        """The API's claim of a transaction (api.writes.ClaimBatch): plan.cost requests counted
        and every written key's slot taken, all or none, in one round trip
        (api.limits.check_batch)."""
        decision = self._count_batch(plan.cost, [(bucket.id, key) for key in plan.written_keys])
        if decision is None:
            return  # Redis unreachable: serve without limits
        if decision.refused:
            raise TooManyRequests(
                f"rate limit reached: this transaction counts {plan.cost} requests (one per "
                f"{limits.OPS_PER_REQUEST} ops) and this API key has {decision.remaining} of its "
                f"{decision.limit} left this hour; nothing was applied, see Retry-After",
                retry_after=decision.retry_after(time.time()),
                reason="hourly_requests",
            )
        if decision.write_wait_ms:
            raise TooManyRequests(
                "a key of this transaction was written less than a second ago: keys take one "
                "write per second; nothing was applied",
                retry_after=decision.retry_after(time.time()),
                reason="key_writes",
            )

    def charge_requests(self, cost: int) -> tuple[int, int]:
        """The API's count of an import's batch (api.writes.ChargeRequests): `cost` requests,
        or when the hour has fewer left, the ones it has; returns (requests counted, seconds
        until the hour's end when they fell short). One round trip, two when short."""
        decision = self._count_batch(cost, [])
        if decision is None:
            return cost, 0  # Redis unreachable: serve without limits
        if not decision.refused:
            return cost, 0
        left = decision.remaining
        if left:
            fewer = self._count_batch(left, [])
            if fewer is None or not fewer.refused:
                return left, decision.retry_after(time.time())
        return 0, decision.retry_after(time.time())

    def count_requests(self, cost: int, what: str) -> None:
        """Count `cost` requests at once for `what` (an export), or none: refused whole (429)
        when the hour has fewer left. One Redis round trip (api.limits.check_batch)."""
        decision = self._count_batch(cost, [])
        if decision is None or not decision.refused:
            return  # counted, or Redis unreachable: serve without limits
        advice = (
            "see Retry-After"
            if cost <= decision.limit
            else "that is more than an hour's: export a part at a time (prefix=)"
        )
        raise TooManyRequests(
            f"rate limit reached: {what} counts {cost} requests and this API key has "
            f"{decision.remaining} of its {decision.limit} left this hour; nothing was "
            f"sent, {advice}",
            retry_after=decision.retry_after(time.time()),
            reason="hourly_requests",
        )

    def _count_batch(self, cost: int, writes: list[tuple[str, str]]) -> limits.BatchDecision | None:
        """Count `cost` requests and claim the write slots of `writes` (api.limits.check_batch);
        None when Redis cannot be asked."""
        principal = self.principal()
        assert principal.api_key_id is not None  # an API caller acts through a key
        self._counted = True
        decision = limits.check_batch(
            principal.user_id,
            principal.api_key_id,
            principal.quotas.requests_per_hour,
            cost,
            writes,
            blocks=principal.block_names,
        )
        if decision is None:
            return None
        if decision.blocked_by is not None:
            raise Forbidden(principal.blocks[decision.blocked_by][1])
        self._decision = decision
        return decision

    def count_request(self, write: tuple[str, str] | None = None) -> None:
        """Count the request against its API key's hourly limit and, for `write` = (bucket,
        key), take that key's write slot: one Redis round trip (api.limits.check)."""
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
                reason="hourly_requests",
            )
        if decision.write_wait_ms:
            raise TooManyRequests(
                "this key was written less than a second ago: keys take one write per second",
                retry_after=decision.retry_after(time.time()),
                reason="key_writes",
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
        if request._request.method == "HEAD":
            # No body, whatever the server: gunicorn sends what it is given, and the body of a
            # HEAD would be read as the start of the next answer on a kept-alive connection.
            if response.streaming:
                response.streaming_content = ()  # what it would have made is closed unread
            else:
                response.content = b""
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


def error_answer(
    request: HttpRequest, status: int, message: str, retry_after: int | None = None
) -> ApiResponse:
    """An error in the API's formats where no viewset answers (a path of no route, a failure
    outside DRF): negotiated as the viewsets negotiate, so ?format= and Accept pick the same
    format here, and a format the API cannot produce is the same 406."""
    api_request = Request(request)
    try:
        renderer, _ = ApiViewSet._negotiator.select_renderer(api_request, ApiViewSet._renderers)
    except exceptions.NotAcceptable as exc:
        renderer = ApiViewSet._renderers[0]  # as finalize_response answers a 406
        status, message, retry_after = exc.status_code, str(exc.detail), None
    response = ApiResponse(Message(message, json_name="error"), status)
    response.render_with(renderer)
    response.headers.put("vary", "Vary", "Accept")
    response.headers.put("x-content-type-options", "X-Content-Type-Options", "nosniff")
    if retry_after:
        response["Retry-After"] = str(retry_after)
    # Outages are logged once per episode (Django's private flag; not in its stubs).
    response._has_been_logged = status == 503  # type: ignore[attr-defined]
    return response
