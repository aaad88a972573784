"""API keys that expire: revoked once their time is up, and their owner warned a week before.

The API refuses an expired key on every request by itself (api.principals); revoking it here
makes the key list say so and ends the tokens it made in the same way as a revocation.
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db.models import F
from django.template.loader import render_to_string
from django.urls import reverse

from accounts.models import ApiKey

log = logging.getLogger(__name__)

WARN_BEFORE = timedelta(days=7)  # the owner hears once, a week before a key expires


def revoke_expired(now: datetime) -> int:
    """Revoke keys whose expiry has passed, as of that expiry; idempotent (one UPDATE)."""
    return ApiKey.objects.filter(revoked_at__isnull=True, expires_at__lte=now).update(
        revoked_at=F("expires_at")
    )


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
