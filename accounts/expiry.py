"""API keys that expire: revoked once their time is up, and their owner warned a week before.

The API refuses an expired key on every request by itself (api.principals); revoking it here
makes the key list say so and ends the tokens it made in the same way as a revocation.
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse

from accounts import security
from accounts.models import ApiKey
from accounts.security import SecurityEvent

log = logging.getLogger(__name__)

WARN_BEFORE = timedelta(days=7)  # the owner hears once, a week before a key expires


EXPIRE_BATCH = 1000  # keys a transaction: one SELECT, one UPDATE and one INSERT of 1,000 rows


def revoke_expired(now: datetime, batch: int = EXPIRE_BATCH) -> int:
    """Revoke keys whose expiry has passed, as of that expiry, each with its "expired" event in
    the security log in the same transaction; idempotent. Returns how many."""
    total = 0
    while True:
        done = _revoke_batch(now, batch)
        total += done
        if done < batch:
            return total


def _revoke_batch(now: datetime, batch: int) -> int:
    with transaction.atomic():
        # Locked, and skipped if locked: a second run at the same time (or the owner revoking
        # the key this moment) takes other rows, so no key is revoked or logged twice.
        due = list(
            ApiKey.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("user")
            .filter(revoked_at__isnull=True, expires_at__lte=now)
            .order_by("expires_at")[:batch]
        )
        for api_key in due:
            api_key.revoked_at = api_key.expires_at
        ApiKey.objects.bulk_update(due, ["revoked_at"])
        SecurityEvent.objects.bulk_create(
            security.event(
                api_key.user,
                security.Kind.KEY_EXPIRED,
                at=api_key.expires_at,
                key=api_key.display_prefix,
                name=api_key.name,
            )
            for api_key in due
        )
    return len(due)


def warn_expiring(now: datetime) -> int:
    """Email the owner of each key expiring within a week, once per key; returns how many."""
    due = ApiKey.objects.filter(
        revoked_at__isnull=True,
        expiry_warned_at__isnull=True,
        expires_at__gt=now,
        expires_at__lte=now + WARN_BEFORE,
    ).select_related("user")
    sent = 0
    for api_key in due:
        # Claim the warning first: a second run, racing or after a crash, finds it taken. At
        # most once, as promised; a failed send gives the claim back for the next run.
        claim = ApiKey.objects.filter(pk=api_key.pk, expiry_warned_at__isnull=True)
        if not claim.update(expiry_warned_at=now) or not api_key.user.email:
            continue
        try:
            _send_warning(api_key)
        except Exception:
            log.exception("could not email the expiry warning of API key %s", api_key.pk)
            ApiKey.objects.filter(pk=api_key.pk).update(expiry_warned_at=None)
            continue
        sent += 1
    return sent


def _send_warning(api_key: ApiKey) -> None:
    context = {
        "key": api_key,
        "keys_url": settings.THISDB_BASE_URL.rstrip("/") + reverse("account:keys"),
    }
    subject = render_to_string("accounts/email/key_expiring_subject.txt", context).strip()
    body = render_to_string("accounts/email/key_expiring_message.txt", context)
    send_mail(subject, body, None, [api_key.user.email])
