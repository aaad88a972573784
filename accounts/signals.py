import logging

from allauth.account.models import EmailAddress
from allauth.account.signals import email_changed
from allauth.core import context
from allauth.mfa.models import Authenticator
from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from accounts import security
from accounts.models import Account, Plan

logger = logging.getLogger(__name__)


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def give_every_user_an_account(sender, instance, created, **kwargs):
    if created:
        plan = Plan.objects.filter(is_default=True).first()
        Account.objects.get_or_create(user=instance, defaults={"plan": plan})


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def verify_the_email_of_a_new_superuser(sender, instance, created, **kwargs):
    """A superuser made from the shell (createsuperuser, create_superuser) logs in at once: the
    operator who made it vouches for its email, and there may be no mail server to prove it."""
    if not (created and instance.is_superuser and instance.email):
        return
    taken = EmailAddress.objects.filter(email__iexact=instance.email, verified=True).exists()
    if taken:  # createsuperuser refuses such an email; code that calls create_superuser may not
        logger.warning("superuser %s: %s is another account's email", instance.pk, instance.email)
        return
    EmailAddress.objects.create(user=instance, email=instance.email, verified=True, primary=True)


# The security log of changes that allauth makes (the others are recorded where they are made).
# Each receiver runs inside the transaction of its change: model signals inside the save or
# delete, email_changed inside AccountAdapter.confirm_email.


@receiver(email_changed)
def log_email_change(sender, request, user, from_email_address, to_email_address, **kwargs):
    if from_email_address is None:  # the first address confirmed, at signup: not a change
        return
    security.record(
        user,
        security.Kind.EMAIL_CHANGED,
        request,
        from_email=from_email_address.email,
        to_email=to_email_address.email,
    )


@receiver(post_save, sender=Authenticator)
def log_two_factor_on(sender, instance, created, **kwargs):
    # In allauth's activate_totp transaction; its own authenticator_added signal waits for the
    # commit, too late to be part of it.
    if created and instance.type == Authenticator.Type.TOTP:
        security.record(instance.user, security.Kind.TWO_FACTOR_ON, context.request)


@receiver(post_delete, sender=Authenticator)
def log_two_factor_off(sender, instance, origin=None, **kwargs):
    # Only when the authenticator itself was deleted: deleting the whole account deletes it too,
    # and an event of an account being deleted would outlive it.
    if instance.type != Authenticator.Type.TOTP or not _deletes_authenticators(origin):
        return
    request = context.request
    by_staff = _someone_else(request, instance.user_id)
    security.record(instance.user, security.Kind.TWO_FACTOR_OFF, request, by_staff=by_staff)


def _deletes_authenticators(origin) -> bool:
    return isinstance(origin, Authenticator) or getattr(origin, "model", None) is Authenticator


def _someone_else(request, user_id) -> bool:
    """Staff turned it off from the console (the owner does it from their own session)."""
    user = getattr(request, "user", None)
    return bool(user and user.is_authenticated and user.pk != user_id)
