import logging

from allauth.account.models import EmailAddress
from django.conf import settings
from django.db.models.signals import post_save
from django.dispatch import receiver

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
