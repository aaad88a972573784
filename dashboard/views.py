"""The pages people use: the home page, their buckets with keys and tokens, usage, the docs.

Every change goes through api.actions and the API's one-write-per-second rule, so a page and an
API request can never disagree. Another account's bucket is a 404 here too, never its data.
"""

from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from api import actions, inputs, limits, operations
from api.errors import ApiError, BadRequest, TooManyRequests
from api.models import Bucket, Item, Token
from api.permissions import BucketInfo
from api.principals import principal_for_user
from dashboard import docs as api_docs
from dashboard import usage
from dashboard.forms import BucketForm, IncrementForm, KeyForm, TokenForm

PAGE_SIZE = 50  # keys a bucket page shows; the next page follows the API's cursor
PREVIEW_CHARS = 200  # of a text value in the list; the key's own page shows all of it


def home(request):
    return render(request, "home.html", {"nav": "home"})


# Buckets -----------------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def buckets(request):
    form = BucketForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                bucket = actions.create_bucket(
                    principal_for_user(request.user.pk), form.cleaned_data["default_ttl"]
                )
            except ApiError as error:
                form.add_error(None, str(error.detail))
            else:
                messages.success(request, f"Bucket {bucket.id} created.")
                return redirect("dashboard:bucket", bucket_id=bucket.id)
        status = 400
    mine = Bucket.objects.for_user(request.user.pk).order_by("-created_at")
    context = {"nav": "buckets", "buckets": mine, "form": form}
    return render(request, "dashboard/buckets.html", context, status=status)


def _my_bucket(request, bucket_id: str) -> Bucket:
    """The person's bucket, or a 404 (also for another account's: never its data)."""
    return get_object_or_404(Bucket, pk=bucket_id, owner_id=request.user.pk)


def _info(bucket: Bucket) -> BucketInfo:
    return BucketInfo(bucket.id, bucket.owner_id, bucket.default_ttl, bucket.key_count)


def _bucket_url(bucket_id: str, **query) -> str:
    url = reverse("dashboard:bucket", args=[bucket_id])
    query = {name: value for name, value in query.items() if value}
    return f"{url}?{urlencode(query)}" if query else url


def _preview(value: bytes) -> dict:
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return {"binary": True, "size": len(value)}
    return {
        "binary": False,
        "size": len(value),
        "text": text[:PREVIEW_CHARS],
        "cut": len(text) > PREVIEW_CHARS,
        "integer": operations.parse_integer(value) is not None,
    }


@never_cache
@login_required
def bucket(request, bucket_id: str, *, key_form=None, token_form=None, new_token=None, status=200):
    """One bucket: its keys a page at a time (the API's cursor), and its live tokens."""
    bucket = _my_bucket(request, bucket_id)
    source = request.GET
    try:
        prefix = inputs.check_prefix(source.get("prefix", ""))
        after = inputs.decode_cursor(source["cursor"]) if source.get("cursor") else None
    except BadRequest as error:
        messages.error(request, str(error.detail))
        return redirect(_bucket_url(bucket.id))
    rows = operations.list_page(
        bucket.id,
        prefix=prefix,
        after=after,
        limit=PAGE_SIZE + 1,
        with_values=True,
    )
    next_url = None
    if len(rows) > PAGE_SIZE:
        rows = rows[:PAGE_SIZE]
        next_url = _bucket_url(bucket.id, prefix=prefix, cursor=inputs.encode_cursor(rows[-1][0]))
    items = [{"key": key, **_preview(bytes(value))} for key, value, _ in rows]
    tokens = (
        Token.objects.filter(bucket=bucket, expires_at__gt=timezone.now())
        .select_related("created_by")
        .order_by("expires_at")
    )
    context = {
        "nav": "buckets",
        "bucket": bucket,
        "items": items,
        "prefix": prefix,
        "paged": after is not None,
        "next_url": next_url,
        "first_url": _bucket_url(bucket.id, prefix=prefix),
        "tokens": tokens,
        "key_form": key_form or KeyForm(),
        "token_form": token_form or TokenForm(request.user),
        "ttl_form": BucketForm(initial={"default_ttl": bucket.default_ttl}),
        "new_token": new_token,
    }
    return render(request, "dashboard/bucket.html", context, status=status)


@login_required
@require_POST
def bucket_settings(request, bucket_id: str):
    bucket = _my_bucket(request, bucket_id)
    form = BucketForm(request.POST)
    if form.is_valid():
        principal = principal_for_user(request.user.pk)
        actions.update_bucket(principal, bucket.id, form.cleaned_data["default_ttl"])
        messages.success(request, f"Default TTL set to {form.cleaned_data['default_ttl']} s.")
    else:
        messages.error(
            request, "; ".join(str(e) for errors in form.errors.values() for e in errors)
        )
    return redirect("dashboard:bucket", bucket_id=bucket.id)


@login_required
@require_http_methods(["GET", "POST"])
def delete_bucket(request, bucket_id: str):
    bucket = _my_bucket(request, bucket_id)
    if request.method == "POST":
        try:
            actions.delete_bucket(principal_for_user(request.user.pk), bucket.id)
        except ApiError:
            raise Http404("bucket not found") from None
        messages.success(request, f"Bucket {bucket.id} and its keys were deleted.")
        return redirect("dashboard:buckets")
    # Beat's figure may be a minute old; the confirmation counts the keys now.
    live = Item.objects.filter(bucket=bucket).exclude(expires_at__lte=timezone.now()).count()
    context = {"nav": "buckets", "bucket": bucket, "live_keys": live}
    return render(request, "dashboard/delete_bucket.html", context)


# Keys --------------------------------------------------------------------------------------------


def _claim_write(bucket: Bucket, key: str) -> None:
    """The API's one-write-per-second rule, without counting a request against any API key."""
    wait_ms = limits.claim_write(bucket.owner_id, bucket.id, key)
    if wait_ms:
        raise TooManyRequests(
            "this key was written less than a second ago: keys take one write per second; "
            "try again in a moment",
            retry_after=1,
        )


def _live_item(bucket_id: str, key: str):
    return (
        Item.objects.filter(bucket_id=bucket_id, key=key)
        .exclude(expires_at__lte=timezone.now())
        .values("value", "expires_at", "updated_at")
        .first()
    )


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def edit_key(request, bucket_id: str):
    """Add a key (no ?key=) or show and change one (?key=...)."""
    bucket = _my_bucket(request, bucket_id)
    key = request.GET.get("key")
    item = _live_item(bucket.id, key) if key else None
    if key and item is None and request.method == "GET":
        raise Http404("key not found")
    status = 200
    if request.method == "POST":
        form = KeyForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            ttl = bucket.default_ttl if data["ttl"] is None else data["ttl"]
            principal = principal_for_user(request.user.pk)
            try:
                actions.check_storage_quota(principal)
                _claim_write(bucket, data["key"])
                create = actions.may_create_keys(principal, _info(bucket))
                actions.set_key(
                    principal, _info(bucket), data["key"], data["value"], ttl, create=create
                )
            except ApiError as error:
                form.add_error(None, str(error.detail))
                status = error.status_code
            else:
                messages.success(request, "Saved.")
                return redirect(_bucket_url(bucket.id, prefix=request.GET.get("prefix")))
        else:
            status = 400
    elif item is not None:
        value = bytes(item["value"])
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        form = KeyForm(initial={"key": key, "value": text or ""})
    else:
        form = KeyForm()
    context = {
        "nav": "buckets",
        "bucket": bucket,
        "key": key,
        "item": item,
        "form": form,
        "binary": item is not None and _preview(bytes(item["value"]))["binary"],
        "size": len(item["value"]) if item else 0,
        "increment_form": IncrementForm(initial={"key": key, "by": 1}),
    }
    return render(request, "dashboard/key.html", context, status=status)


@login_required
@require_POST
def delete_key(request, bucket_id: str):
    bucket = _my_bucket(request, bucket_id)
    key = request.POST.get("key", "")
    try:
        inputs.check_key(key)
        _claim_write(bucket, key)
        actions.delete_key(_info(bucket), key)
    except ApiError as error:
        messages.error(request, str(error.detail))
    else:
        messages.success(request, "Key deleted.")
    return redirect(_bucket_url(bucket.id, prefix=request.POST.get("prefix")))


@login_required
@require_POST
def increment_key(request, bucket_id: str):
    bucket = _my_bucket(request, bucket_id)
    form = IncrementForm(request.POST)
    if not form.is_valid():
        messages.error(
            request, "; ".join(str(e) for errors in form.errors.values() for e in errors)
        )
        return redirect(_bucket_url(bucket.id))
    key, by = form.cleaned_data["key"], form.cleaned_data["by"]
    principal = principal_for_user(request.user.pk)
    try:
        actions.check_storage_quota(principal)
        _claim_write(bucket, key)
        create = actions.may_create_keys(principal, _info(bucket))
        value = actions.increment_key(
            principal, _info(bucket), key, by, bucket.default_ttl, create=create
        )
    except ApiError as error:
        messages.error(request, str(error.detail))
    else:
        messages.success(request, f"{key} is now {value}.")
    return redirect(_bucket_url(bucket.id, prefix=request.POST.get("prefix")))


@login_required
def download_key(request, bucket_id: str):
    bucket = _my_bucket(request, bucket_id)
    key = request.GET.get("key", "")
    item = _live_item(bucket.id, key) if key else None
    if item is None:
        raise Http404("key not found")
    response = HttpResponse(bytes(item["value"]), content_type="application/octet-stream")
    # The key may hold anything: the file name is its safe characters only.
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in key)[:100] or "value"
    response["Content-Disposition"] = f'attachment; filename="{safe}.bin"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


# Tokens ------------------------------------------------------------------------------------------


@never_cache
@login_required
@require_POST
def create_token(request, bucket_id: str):
    bucket = _my_bucket(request, bucket_id)
    form = TokenForm(request.user, request.POST)
    if not form.is_valid():
        return _bucket_again(request, bucket_id, token_form=form)
    data = form.cleaned_data
    token = actions.create_token(
        data["api_key"].pk,
        bucket.id,
        data["prefix"],
        read=data["read"],
        write=data["write"],
        ttl=data["ttl"],
    )
    # Rendered, not redirected: the token is stored only hashed, so this is its only showing.
    return _bucket_again(request, bucket_id, new_token=token)


def _bucket_again(request, bucket_id, **kwargs):
    status = 400 if "token_form" in kwargs else 200
    request.method = "GET"  # the page below lists; the POST's work is done
    return bucket(request, bucket_id, status=status, **kwargs)


@login_required
@require_POST
def revoke_token(request, bucket_id: str, token_id: int):
    bucket = _my_bucket(request, bucket_id)
    token = get_object_or_404(Token, pk=token_id, bucket=bucket)
    actions.revoke_token(token)
    messages.success(request, "Token revoked. It no longer works.")
    return redirect("dashboard:bucket", bucket_id=bucket.id)


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
        },
    }
    return render(request, "docs/index.html", context)
