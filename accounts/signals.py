from django.conf import settings
from django.db.models.signals import post_save
from django.dispatch import receiver

from accounts.models import Account, Plan


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def give_every_user_an_account(sender, instance, created, **kwargs):
    if created:
        plan = Plan.objects.filter(is_default=True).first()
        Account.objects.get_or_create(user=instance, defaults={"plan": plan})
