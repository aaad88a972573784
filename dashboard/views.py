"""The pages people use: the home page, their buckets with keys and tokens, usage, the docs.

Every change is one call of api.writes, the functions the API's viewsets call too, with the
API's one-write-per-second rule, so a page and an API request can never disagree. Another
account's bucket is a 404 here too, never its data. Keys travel in links and forms as
dashboard.roundtrip.key_ref, never as text a browser changes.
"""

import dataclasses
from functools import wraps
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import IntegrityError, transaction
from django.http import Http404, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils import timezone
from django.utils.text import capfirst
from django.utils.timesince import timeuntil
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request

from accounts import keys, security
from api import (
    exports,
    history,
    imports,
    inputs,
    limits,
    statements,
    transactions,
    watching,
    writes,
)
from api.errors import ApiError, BadRequest, Stopped
from api.models import Bucket, Item, Token
from api.principals import SUSPENDED, Principal, principal_for_user
from api.scoping import BucketInfo
from dashboard import docs as api_docs
from dashboard import figures, paging, roundtrip, shown_once, uploads, usage
from dashboard.forms import BucketForm, DeletePrefixForm, IncrementForm, KeyForm, TokenForm
from dashboard.templatetags.key_display import plain_key

PREVIEW_CHARS = 200  # of a text value in the list; the key's own page shows all of it


def home(request):
    return render(request, "home.html", {"nav": "home"})


def _say(error: ApiError) -> str:
    """The API's message as a sentence on a page."""
    text = capfirst(str(error.detail)) or ""
    return text if text.endswith((".", "?", "!")) else text + "."


def _form_errors(form) -> str:
    return "; ".join(str(e) for errors in form.errors.values() for e in errors)


# Buckets -----------------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def buckets(request):
    form = BucketForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                bucket = writes.create_bucket(
                    principal_for_user(request.user.pk), data["default_ttl"], data["label"]
                )
            except ApiError as error:
                form.add_error(None, _say(error))
            else:
                messages.success(request, f"Bucket {bucket.id} created.")
                return redirect("dashboard:bucket", bucket_id=bucket.id)
        status = 400
    mine = list(Bucket.objects.for_user(request.user.pk).order_by("-created_at"))
    as_of = figures.counted_at()
    rows = [{"bucket": b, "figures": figures.beat_figures(b, as_of)} for b in mine]
    context = {"nav": "buckets", "rows": rows, "as_of": as_of, "form": form}
    return render(request, "dashboard/buckets.html", context, status=status)


def _my_bucket(request, bucket_id: str) -> Bucket:
    """The person's bucket, or a 404 (also for another account's: never its data)."""
    return get_object_or_404(Bucket, pk=bucket_id, owner_id=request.user.pk)


def _post_only(view):
    """A form's target: a GET (a typed or bookmarked address) goes to the bucket's page rather
    than a bare 405."""

    @wraps(view)
    def answer(request, bucket_id: str, *args, **kwargs):
        if request.method == "GET":
            return redirect(_bucket_url(_my_bucket(request, bucket_id).id))
        return view(request, bucket_id, *args, **kwargs)

    return require_http_methods(["GET", "POST"])(answer)


def _info(bucket: Bucket) -> BucketInfo:
    return BucketInfo(bucket.id, bucket.owner_id, bucket.default_ttl, bucket.key_count)


def _bucket_url(bucket_id: str, **query) -> str:
    url = reverse("dashboard:bucket", args=[bucket_id])
    query = {name: value for name, value in query.items() if value}
    return f"{url}?{urlencode(query)}" if query else url


def _key_url(bucket_id: str, key: str, **query) -> str:
    query = {"k": roundtrip.key_ref(key), **{n: v for n, v in query.items() if v}}
    return f"{reverse('dashboard:key', args=[bucket_id])}?{urlencode(query)}"


def _preview(value: bytes) -> dict:
    shown = roundtrip.preview(value, len(value), PREVIEW_CHARS)
    if shown is None:
        return {"binary": True, "size": len(value)}
    return {
        "binary": False,
        "size": len(value),
        "text": shown[0],
        "cut": shown[1],
        "integer": statements.parse_integer(value) is not None,
    }


def _position(raw: str | None) -> int | None:
    """A page's first position from a link (n=); None if absent or not a position."""
    return int(raw) if raw and raw.isdigit() and int(raw) >= 1 else None


@never_cache
@login_required
def bucket(request, bucket_id: str):
    """One bucket: its keys a page at a time, forward and back, and its live tokens."""
    return _bucket_page(request, _my_bucket(request, bucket_id))


def _bucket_page(request, bucket: Bucket, *, token_form=None, status=200):
    """The bucket's page; also the answer of a token form that needs correcting."""
    source = request.GET
    try:
        prefix = inputs.check_prefix(source.get("prefix", ""))
        after = inputs.decode_cursor(source["cursor"]) if source.get("cursor") else None
        before = inputs.decode_cursor(source["before"]) if source.get("before") else None
    except BadRequest as error:
        messages.error(request, _say(error))
        return redirect(_bucket_url(bucket.id))
    # Served by the front (make serve), the page follows its keys live (static/js/live.js) from
    # the bucket's position read before its keys: no change after the read is missed.
    # (Which also has the bucket's changes recorded from now on: api.history.start_watching.)
    since = history.start_watching(bucket.id) if watching.FRONT in request.META else None
    first = _position(source.get("n"))
    if before is not None:
        page = paging.backward(bucket.id, prefix, before, first)
    else:
        page = paging.forward(bucket.id, prefix, after, first)
    items = [
        {"key": key, "ref": roundtrip.key_ref(key), "expires_at": expires, **_preview(value)}
        for key, value, expires in page.rows
    ]
    live = None
    if since is not None:
        query = {"prefix": prefix, "since": str(since)} if prefix else {"since": str(since)}
        live = {
            "url": f"{reverse('dashboard:watch', args=[bucket.id])}?{urlencode(query)}",
            # Where a new key would show on this page: after its first key unless it is the
            # first page, before its last unless it is the last (keys in byte order).
            "after": items[0]["ref"] if page.earlier and items else "",
            "before": items[-1]["ref"] if page.later and items else "",
            "download": reverse("dashboard:download-key", args=[bucket.id]),
        }
    previous_url = next_url = None
    if page.earlier and items:
        back_to = max(1, page.first - paging.PAGE_SIZE) if page.first else None
        previous_url = _bucket_url(bucket.id, prefix=prefix, before=items[0]["ref"], n=back_to)
    elif page.earlier:  # past the last key: back to the page before
        previous_url = _bucket_url(bucket.id, prefix=prefix, before=source.get("cursor"))
    if page.later:
        after_page = page.last + 1 if page.last else None
        next_url = _bucket_url(bucket.id, prefix=prefix, cursor=items[-1]["ref"], n=after_page)
    tokens = (
        Token.objects.filter(bucket=bucket, expires_at__gt=timezone.now())
        .select_related("created_by")
        .order_by("expires_at")
    )
    context = {
        "nav": "buckets",
        "bucket": bucket,
        "figures": figures.for_bucket(bucket),
        "count_cap": figures.COUNT_CAP,
        "items": items,
        "live": live,
        "page": page,
        "prefix": prefix,
        "previous_url": previous_url,
        "next_url": next_url,
        "first_url": _bucket_url(bucket.id, prefix=prefix) if page.earlier else None,
        "tokens": tokens,
        "token_form": token_form or TokenForm(request.user),
        "settings_form": BucketForm(
            initial={"label": bucket.label, "default_ttl": bucket.default_ttl}
        ),
        "import_max_bytes": settings.THISDB_PAGE_IMPORT_MAX_BYTES,
        "bulk": settings.THISDB_BULK,
    }
    return render(request, "dashboard/bucket.html", context, status=status)


@never_cache
@login_required
@require_GET
def watch(request, bucket_id: str):
    """The bucket page's live list: the API's watch (api.watching) of the person's bucket, a
    stream of Server-Sent Events the front takes over (make serve), with the page's prefix and
    since=. The page opens it only behind the front: without it, each stream would hold one of
    the server's few threads for as long as it waits."""
    bucket = _info(_my_bucket(request, bucket_id))
    try:
        response = watching.open_watch(Request(request), _watcher(request), bucket, _no_count)
    except ApiError as error:
        refused = HttpResponse(_say(error), status=error.status_code, content_type="text/plain")
        retry_after = getattr(error, "retry_after", None)
        if retry_after:
            refused["Retry-After"] = str(retry_after)
        return refused
    response.render_with(JSONRenderer())  # a prepared answer: its own body and type
    return response


def _watcher(request) -> Principal:
    """The person as a watch's principal: as the pages act (no API key, so no API request
    counted), with the marker that ends the stream when the account is suspended."""
    principal = principal_for_user(request.user.pk)
    suspended = limits.block_key(principal.user_id, "user", principal.user_id)
    return dataclasses.replace(principal, blocks=((suspended, SUSPENDED),))


def _no_count() -> None:
    """Pages count no API request."""


@login_required
@_post_only
def bucket_settings(request, bucket_id: str):
    bucket = _my_bucket(request, bucket_id)
    form = BucketForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        principal = principal_for_user(request.user.pk)
        writes.update_bucket(principal, bucket.id, data["default_ttl"], data["label"])
        label = f"label “{data['label']}”" if data["label"] else "no label"
        messages.success(request, f"Saved: {label}, default TTL {data['default_ttl']} s.")
    else:
        messages.error(request, _form_errors(form))
    return redirect("dashboard:bucket", bucket_id=bucket.id)


@login_required
@require_http_methods(["GET", "POST"])
def delete_bucket(request, bucket_id: str):
    bucket = _my_bucket(request, bucket_id)
    if request.method == "POST":
        try:
            writes.delete_bucket(principal_for_user(request.user.pk), bucket.id)
        except ApiError:
            raise Http404("bucket not found") from None
        messages.success(request, f"Bucket {bucket.id} and its keys were deleted.")
        return redirect("dashboard:buckets")
    # Beat's figure may be a minute old; the confirmation counts the keys now.
    live = Item.objects.filter(bucket=bucket).exclude(expires_at__lte=timezone.now()).count()
    context = {"nav": "buckets", "bucket": bucket, "live_keys": live}
    return render(request, "dashboard/delete_bucket.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def delete_prefix(request, bucket_id: str):
    """Delete the keys that start with the page's prefix: GET asks, naming the prefix and how
    many live keys go (exact up to the bound a deletion may take), POST deletes them."""
    bucket = _my_bucket(request, bucket_id)
    form = DeletePrefixForm(request.POST if request.method == "POST" else request.GET)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
        return HttpResponseRedirect(_bucket_url(bucket.id), status=303)
    prefix = form.cleaned_data["prefix"]
    shown = plain_key(prefix)
    too_many = (
        f"More than {transactions.DELETE_PREFIX_MAX:,} keys start with “{shown}”, more than "
        "one deletion takes: nothing was deleted. Use a longer prefix."
    )
    if request.method == "POST":
        principal = principal_for_user(request.user.pk)
        try:
            deleted = writes.delete_prefix(principal, _info(bucket), prefix)
        except BadRequest:
            # The prefix passed the form, so the one refusal left is the bound (expired keys
            # not yet swept count towards it too).
            messages.error(request, too_many)
        except ApiError as error:
            messages.error(request, _say(error))
        else:
            keys = "key" if deleted == 1 else "keys"
            messages.success(request, f"Deleted {deleted:,} {keys} starting with “{shown}”.")
        return HttpResponseRedirect(_bucket_url(bucket.id, prefix=prefix), status=303)
    # One range scan of the bucket's index, as the bucket page's exact count.
    live = statements.count_prefixes(bucket.id, [prefix], transactions.DELETE_PREFIX_MAX)[0]
    context = {
        "nav": "buckets",
        "bucket": bucket,
        "prefix": prefix,
        "live_keys": live,
        "too_many": live > transactions.DELETE_PREFIX_MAX,
        "bound": transactions.DELETE_PREFIX_MAX,
    }
    return render(request, "dashboard/delete_prefix.html", context)


# Keys --------------------------------------------------------------------------------------------


def _live_item(bucket_id: str, key: str):
    return (
        Item.objects.filter(bucket_id=bucket_id, key=key)
        .exclude(expires_at__lte=timezone.now())
        .values("value", "expires_at", "updated_at")
        .first()
    )


def _key_in(query) -> str | None:
    """The key a page names: k= (key_ref), or key= typed by a person; None for neither."""
    if query.get("k"):
        return roundtrip.key_from_ref(query["k"])
    if query.get("key"):
        return inputs.check_key(query["key"])
    return None


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def edit_key(request, bucket_id: str):
    """Add a key (no k=) or show and change one (k=, the key as roundtrip.key_ref)."""
    bucket = _my_bucket(request, bucket_id)
    try:
        key = _key_in(request.GET)
    except BadRequest as error:
        messages.error(request, _say(error))
        return redirect(_bucket_url(bucket.id))
    item = _live_item(bucket.id, key) if key is not None else None
    if key is not None and item is None and request.method == "GET":
        raise Http404("key not found")
    text = roundtrip.text_of(bytes(item["value"])) if item else None
    prefix = request.GET.get("prefix", "")
    status = 200
    if request.method == "POST":
        data = request.POST.copy()
        if key is not None:
            data["key"] = key  # the key changed is the one in the link, never an input's text
        form = KeyForm(data)
        if form.is_valid():
            cleaned = form.cleaned_data
            principal = principal_for_user(request.user.pk)
            ttl = cleaned["ttl"]  # blank (None): a change keeps the key's expiry
            if ttl is None and key is None:  # blank on a new key: the bucket's default
                ttl = bucket.default_ttl
            try:
                writes.set_key(
                    principal,
                    _info(bucket),
                    cleaned["key"],
                    cleaned["value"],
                    ttl,
                    claim=writes.claim_write,
                )
            except ApiError as error:
                form.add_error(None, _say(error))
                status = error.status_code
            else:
                messages.success(request, f"Saved “{plain_key(cleaned['key'])}”.")
                return redirect(_bucket_url(bucket.id, prefix=prefix))
        else:
            status = 400
    elif item is not None:
        ending = roundtrip.line_ending(text or "")
        form = KeyForm(initial={"key": key, "value": text or "", "line_endings": ending})
    else:
        form = KeyForm()
    expiry = None
    if item is not None:
        expiry = f"in {timeuntil(item['expires_at'])}" if item["expires_at"] else "never"
        form.fields["ttl"].widget.attrs["placeholder"] = f"keep ({expiry})"
    context = {
        "nav": "buckets",
        "bucket": bucket,
        "key": key,
        "expiry": expiry,
        "ref": roundtrip.key_ref(key) if key is not None else None,
        "prefix": prefix,
        "item": item,
        "form": form,
        "binary": item is not None and text is None,
        "mixed_endings": text is not None and roundtrip.mixes_line_endings(text),
        "size": len(item["value"]) if item else 0,
        "increment_form": IncrementForm(
            initial={"k": roundtrip.key_ref(key) if key is not None else "", "by": 1}
        ),
    }
    return render(request, "dashboard/key.html", context, status=status)


def _after_key_change(request, bucket: Bucket, key: str | None):
    """Back to the key's page when the form was on it, else to the bucket's page."""
    prefix = request.POST.get("prefix", "")
    if key is not None and request.POST.get("back") == "key" and _live_item(bucket.id, key):
        return redirect(_key_url(bucket.id, key, prefix=prefix))
    return redirect(_bucket_url(bucket.id, prefix=prefix))


@login_required
@_post_only
def delete_key(request, bucket_id: str):
    bucket = _my_bucket(request, bucket_id)
    try:
        key = roundtrip.key_from_ref(request.POST.get("k", ""))
        writes.delete_key(_info(bucket), key, claim=writes.claim_write)
    except ApiError as error:
        messages.error(request, _say(error))
        return redirect(_bucket_url(bucket.id, prefix=request.POST.get("prefix", "")))
    messages.success(request, f"Deleted the key “{plain_key(key)}”.")
    return redirect(_bucket_url(bucket.id, prefix=request.POST.get("prefix", "")))


@login_required
@_post_only
def increment_key(request, bucket_id: str):
    bucket = _my_bucket(request, bucket_id)
    form = IncrementForm(request.POST)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
        return _after_key_change(request, bucket, None)
    key, by = form.cleaned_data["k"], form.cleaned_data["by"]
    principal = principal_for_user(request.user.pk)
    try:
        # Like an edit, an increment on a page keeps the key's expiry (ttl None).
        value = writes.increment_key(
            principal, _info(bucket), key, by, None, claim=writes.claim_write
        ).value
    except ApiError as error:
        messages.error(request, _say(error))
    else:
        messages.success(request, f"“{plain_key(key)}” is now {value}.")
    return _after_key_change(request, bucket, key)


@login_required
def download_key(request, bucket_id: str):
    bucket = _my_bucket(request, bucket_id)
    try:
        key = _key_in(request.GET)
    except BadRequest:
        raise Http404("key not found") from None
    item = _live_item(bucket.id, key) if key is not None else None
    if key is None or item is None:
        raise Http404("key not found")
    response = HttpResponse(bytes(item["value"]), content_type="application/octet-stream")
    # The key may hold anything: the file name is its safe characters only.
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in key)[:100] or "value"
    response["Content-Disposition"] = f'attachment; filename="{safe}.bin"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


# Download all and import ------------------------------------------------------------------------
# Pages count no API request (api.principals.principal_for_user), and these two count none
# either: the person's own reads and writes, bounded by the quotas of keys and storage and by the
# bulk threads they run in, as the page's other reads and writes are by the quotas.


def _bulk_on() -> None:
    """THISDB_BULK=false: this server has no exports or imports, the page's neither (the front
    would no longer stream them: a download would be held whole in memory)."""
    if not settings.THISDB_BULK:
        raise Http404("this server has no downloads or imports (THISDB_BULK=false)")


@never_cache
@login_required
@require_GET
def export_keys(request, bucket_id: str):
    """Download all: every live key of the bucket as NDJSON, the API's export (api.exports):
    the same lines, from one snapshot, read and sent a batch at a time (behind the front, in a
    bulk thread, thisdb_site.front), so memory stays flat whatever the bucket's size."""
    _bulk_on()
    bucket = _my_bucket(request, bucket_id)
    _, chunks = exports.open_export(bucket.id, "", None)
    response = StreamingHttpResponse(chunks, content_type="application/x-ndjson")
    # A bucket's id is 20 letters and digits: a file name as it is.
    response["Content-Disposition"] = f'attachment; filename="{bucket.id}.ndjson"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


@csrf_exempt  # checked by _import_upload, once the upload's limit is in place (Django's way)
@login_required
@_post_only
def import_keys(request, bucket_id: str):
    """Import: an uploaded NDJSON file, or a JSON array of Workers KV's bulk format, written as
    the API's import writes its body (api.imports, api.writes.import_items). The upload's
    handlers must be set before anything reads the body, which the CSRF check does."""
    _bulk_on()
    bucket = _my_bucket(request, bucket_id)  # another's bucket: 404, its body left unread
    upload = uploads.CappedUpload(request, settings.THISDB_PAGE_IMPORT_MAX_BYTES)
    request.upload_handlers.insert(0, upload)
    return _import_upload(request, bucket, upload)


@csrf_protect
def _import_upload(request, bucket: Bucket, upload: uploads.CappedUpload):
    back = HttpResponseRedirect(_bucket_url(bucket.id), status=303)
    file = request.FILES.get("file")  # the upload is read here, if the CSRF check did not
    if upload.too_large:
        messages.error(
            request,
            f"“{upload.name}” is larger than {filesizeformat(upload.limit)}, the most this page "
            f"imports: nothing was imported. Import it from a terminal: thisdb import "
            f"{bucket.id} FILE (any size).",
        )
        return back
    if file is None:
        messages.error(request, "Choose an NDJSON or Workers KV JSON file to import.")
        return back
    body = imports.FileBody(file)
    try:
        if body.first_byte() == b"[":
            entries, unit = imports.workers_kv_entries(body), "item"
        else:
            entries, unit = imports.ndjson_entries(body), "line"
        principal = principal_for_user(request.user.pk)
        imported = writes.import_items(
            principal, _info(bucket), entries, unit=unit, charge=_uncounted
        )
    except Stopped as stopped:
        messages.error(request, f"The import of “{file.name}” stopped. {_say(stopped)}")
    except ApiError as error:
        if error.status_code == 404:
            raise Http404("bucket not found") from None  # deleted meanwhile
        messages.error(request, _say(error))
    else:
        if imported:
            keys = "key" if imported == 1 else "keys"
            messages.success(request, f"Imported {imported:,} {keys} from “{file.name}”.")
        else:
            messages.warning(request, f"“{file.name}” holds no keys: nothing was imported.")
    finally:
        file.close()  # a temporary file is deleted now, not when the request ends
    return back


def _uncounted(cost: int) -> tuple[int, int]:
    """An import from the page counts no API request: every batch may go (api.writes'
    ChargeRequests, answered as if all of `cost` were counted)."""
    return cost, 0


# Tokens ------------------------------------------------------------------------------------------


@never_cache  # Cache-Control: no-store, on the page that shows the secret too
@login_required
@require_http_methods(["GET", "POST"])
def tokens(request, bucket_id: str):
    """POST: create a token, then 303 to GET here, which shows it this once (dashboard.shown_once):
    a reload repeats the GET, so it never makes a second token nor shows the secret again."""
    bucket = _my_bucket(request, bucket_id)
    if request.method == "GET":
        return _new_token_page(request, bucket)
    form = TokenForm(request.user, request.POST)
    if not form.is_valid():
        return _bucket_page(request, bucket, token_form=form, status=400)
    data = form.cleaned_data
    try:
        with transaction.atomic():  # the token and its line in the security log
            secret = writes.create_token(
                data["api_key"].pk,
                bucket.id,
                data["prefix"],
                read=data["read"],
                write=data["write"],
                ttl=data["ttl"],
            )
            token_id = Token.objects.values_list("pk", flat=True).get(
                hashed_token=keys.hash_secret(secret)
            )
            security.record(
                request.user,
                security.Kind.TOKEN_CREATED,
                request,
                token=token_id,
                bucket=bucket.id,
                scope=data["prefix"],
                key=data["api_key"].display_prefix,
            )
    # Deleted meanwhile: create_token finds out, or, the foreign key being checked at the end
    # of the transaction, its commit does.
    except (ApiError, IntegrityError):
        raise Http404("bucket not found") from None
    shown_once.keep(request.session, bucket.id, secret, token_id)
    return HttpResponseRedirect(reverse("dashboard:tokens", args=[bucket.id]), status=303)


def _new_token_page(request, bucket: Bucket):
    shown = shown_once.pop(request.session, bucket.id)
    if shown is None:
        messages.info(
            request,
            "A token is shown once, right after it is created. If you did not copy one, revoke "
            "it and create another.",
        )
        return redirect(_bucket_url(bucket.id) + "#tokens")
    token = Token.objects.filter(pk=shown["id"], bucket=bucket).select_related("created_by")
    context = {"nav": "buckets", "bucket": bucket, "secret": shown["token"], "token": token.first()}
    return render(request, "dashboard/new_token.html", context)


@login_required
@_post_only
def revoke_token(request, bucket_id: str, token_id: int):
    bucket = _my_bucket(request, bucket_id)
    token = get_object_or_404(Token, pk=token_id, bucket=bucket)
    writes.revoke_token(token)
    messages.success(request, f"Token #{token_id} revoked. It no longer works.")
    return redirect(_bucket_url(bucket.id) + "#tokens")


# Usage and docs ----------------------------------------------------------------------------------


@login_required
def usage_page(request):
    context = {"nav": "usage", **usage.for_user(request.user)}
    return render(request, "dashboard/usage.html", context)


def docs(request):
    """The API reference; logged in, its examples carry the person's base URL and a bucket id."""
    bucket_id = None
    if request.user.is_authenticated:
        bucket_id = (
            Bucket.objects.for_user(request.user.pk)
            .order_by("created_at")
            .values_list("id", flat=True)
            .first()
        )
    base_url = request.build_absolute_uri("/").rstrip("/")
    context = {
        "nav": "docs",
        "base_url": base_url,
        "bucket_id": bucket_id or "YOUR_BUCKET_ID",
        "has_bucket": bucket_id is not None,
        "endpoints": api_docs.endpoints(base_url, bucket_id or "YOUR_BUCKET_ID"),
        "limits": {
            "key_bytes": settings.THISDB_KEY_MAX_BYTES,
            "value_bytes": settings.THISDB_VALUE_MAX_BYTES,
            "list_max": settings.THISDB_LIST_MAX_LIMIT,
            "max_ttl": settings.THISDB_MAX_TTL,
            "token_ttl": settings.THISDB_TOKEN_MAX_TTL,
            "default_ttl": settings.THISDB_DEFAULT_TTL,
            "requests_per_hour": settings.THISDB_REQUESTS_PER_HOUR,
            "transaction_ops": transactions.MAX_OPS,
            "transaction_bytes": settings.THISDB_TRANSACTION_MAX_BYTES,
            "ops_per_request": limits.OPS_PER_REQUEST,
            "count_cap": transactions.COUNT_CAP,
            "delete_prefix_max": transactions.DELETE_PREFIX_MAX,
            "import_batch": writes.IMPORT_BATCH_LINES,
        },
    }
    return render(request, "docs/index.html", context)
