"""The account's pages: API keys (created, shown once, revoked), account settings with the
latest of the security log, the security log itself, deletion.

Here rather than in accounts because revoking a key and deleting the account must reach the
API's caches (api.lifecycle), and accounts never imports the API.
"""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from accounts import security, twofactor
from accounts.forms import ApiKeyForm, DeleteAccountForm
from accounts.models import Account, ApiKey, TooManyApiKeys, plan_name
from accounts.quotas import platform_defaults
from accounts.ratelimits import TooManyCodes, too_many
from api import lifecycle


def _keys_page(request, form, new_key=None, new_secret=None, status=200):
    keys = ApiKey.objects.filter(user=request.user).order_by("revoked_at", "-created_at")
    account = Account.objects.select_related("plan").filter(user=request.user).first()
    context = {
        "nav": "keys",
        "keys": keys,
        "form": form,
        "new_key": new_key,
        "secret": new_secret,
        "live": ApiKey.objects.live_count(request.user),
        "allowed": account.quotas().max_api_keys if account else platform_defaults().max_api_keys,
    }
    return render(request, "accounts/keys.html", context, status=status)


# A new key's secret waits in the session (server-side: SESSION_ENGINE is the database) from
# the POST that made it to the one GET that shows it, which takes it out.
NEW_KEY_SESSION_KEY = "accounts.new_api_key"


@never_cache  # the secret is in this page once: no cache may keep it
@login_required
@require_http_methods(["GET", "POST"])
def keys(request):
    if request.method == "GET":
        new_key, secret = None, None
        shown = request.session.pop(NEW_KEY_SESSION_KEY, None)
        if shown:
            new_key = ApiKey.objects.filter(pk=shown["id"], user=request.user).first()
            secret = shown["secret"] if new_key else None
        return _keys_page(request, ApiKeyForm(), new_key=new_key, new_secret=secret)
    form = ApiKeyForm(request.POST)
    if not form.is_valid():
        return _keys_page(request, form, status=400)
    try:
        api_key, secret = ApiKey.objects.create_key(
            request.user,
            name=form.cleaned_data["name"],
            expires_in_days=form.cleaned_data["expires_in_days"],
            read_only=form.cleaned_data["read_only"],
            request=request,
        )
    except TooManyApiKeys as exc:
        form.add_error(None, str(exc))
        return _keys_page(request, form, status=403)
    request.session[NEW_KEY_SESSION_KEY] = {"id": api_key.pk, "secret": secret}
    # Redirected (303), so reloading the page that shows the key asks for it again (GET) and
    # never posts the form a second time: no second key, and the secret is gone by then.
    response = redirect("account:keys")
    response.status_code = 303
    return response


@login_required
@require_http_methods(["GET", "POST"])
def revoke_key(request, key_id: int):
    api_key = get_object_or_404(ApiKey, pk=key_id, user=request.user)
    if request.method == "POST":
        lifecycle.revoke_api_key(api_key, request)
        messages.success(
            request, f"Revoked {api_key.display_prefix}… ({api_key.name}). It no longer works."
        )
        return redirect("account:keys")
    return render(request, "accounts/revoke_key.html", {"nav": "keys", "key": api_key})


LATEST_EVENTS = 10  # on the account page; the security log's own page has them all
EVENTS_PER_PAGE = 50


@login_required
def settings_page(request):
    account = getattr(request.user, "account", None)
    events = list(security.for_user(request.user)[: LATEST_EVENTS + 1])
    context = {
        "nav": "account",
        "plan": plan_name(account),
        "two_factor": twofactor.is_enabled(request.user),
        "events": events[:LATEST_EVENTS],
        "more_events": len(events) > LATEST_EVENTS,
        "log_days": settings.THISDB_SECURITY_LOG_DAYS,
    }
    return render(request, "accounts/settings.html", context)


@login_required
def security_log(request):
    """Every event of the account's security log, latest first, 50 a page (?page=N)."""
    page = Paginator(security.for_user(request.user), EVENTS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    context = {
        "nav": "account",
        "page": page,
        "events": page.object_list,
        "log_days": settings.THISDB_SECURITY_LOG_DAYS,
    }
    return render(request, "accounts/security_log.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def delete_account(request):
    form = DeleteAccountForm(request, request.POST or None)
    try:
        deleting = request.method == "POST" and form.is_valid()
    except TooManyCodes as exc:
        return too_many(request, exc.seconds)
    if deleting:
        user = request.user
        logout(request)
        lifecycle.delete_account(user)
        messages.success(request, "Your account and everything in it have been deleted.")
        return redirect("home")
    status = 400 if request.method == "POST" else 200
    context = {"nav": "account", "form": form, "buckets": request.user.buckets.count()}
    return render(request, "accounts/delete.html", context, status=status)
