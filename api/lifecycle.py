"""What happens to a person's account and API keys over their life, with what the API must forget.

Each change is written to the database and then told to the API's caches of keys and tokens
(api.principals), so a revoked key or a suspended account is refused at once on every worker.
The account pages, the staff console and the management commands call these; accounts holds the
data and never reaches into the API itself.

Each change is written with its event in the security log (accounts.security), in one
transaction. `request` gives the event the owner's address and browser; `by_staff` says staff
did it (from the console: their address is not the account's to see).
"""

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts import security
from accounts.models import Account, ApiKey, Plan
from api import principals

Kind = security.Kind


def revoke_api_key(api_key: ApiKey, request=None, *, by_staff: bool = False) -> None:
    """Refuse this key and its tokens from now on, on every worker at once (a marker in Redis
    that each request's rate-limit round trip reads); without Redis, at once in this process
    and within THISDB_AUTH_CACHE_SECONDS in the others. Revoking twice keeps the first time
    (and its one event)."""
    with transaction.atomic():
        now = timezone.now()
        # One conditional UPDATE: of two revocations at once, only one changes the row and logs.
        if ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=now):
            api_key.revoked_at = now
            security.record(
                api_key.user,
                Kind.KEY_REVOKED,
                request,
                by_staff=by_staff,
                key=api_key.display_prefix,
                name=api_key.name,
            )
    principals.forget_api_key(api_key.user_id, api_key.prefix, api_key.pk)


def suspend_account(user) -> None:
    """Stop the account: it cannot log in, and its API keys and tokens are refused (403) on
    every worker at once. Its data stays. Only staff do this."""
    with transaction.atomic():
        if type(user).objects.filter(pk=user.pk, is_active=True).update(is_active=False):
            security.record(user, Kind.SUSPENDED, by_staff=True)
    user.is_active = False
    principals.forget_user(user.pk, suspended=True)


def reactivate_account(user) -> None:
    """Undo a suspension: the person logs in again and their keys and tokens work at once."""
    with transaction.atomic():
        if type(user).objects.filter(pk=user.pk, is_active=False).update(is_active=True):
            security.record(user, Kind.REACTIVATED, by_staff=True)
    user.is_active = True
    principals.forget_user(user.pk, suspended=False)


def delete_account(user) -> None:
    """Delete a person and everything in their account: keys, buckets with their keys and tokens,
    usage. Their API keys and tokens are refused at once on every worker."""
    principals.forget_user(user.pk, suspended=True)
    user.delete()


def change_plan(users: QuerySet, plan: Plan) -> list:
    """Move these people to `plan`; return those whose plan changed. Quotas are cached with the
    keys: this worker forgets them at once, the others within the cache's 10 s."""
    changed = []
    for user in users:
        account, _ = Account.objects.get_or_create(user=user)
        if account.plan_id != plan.pk:
            account.plan = plan
            account.save(update_fields=["plan"])
            changed.append(user)
    principals.forget_all()
    return changed
