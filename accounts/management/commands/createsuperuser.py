"""Django's createsuperuser, for a platform where people log in by email: the email is required
and must be no other account's. The new superuser's email counts as verified
(accounts.signals), so they log in at /accounts/login/ at once, with no email to click."""

import os

from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.contrib.auth.management.commands import createsuperuser
from django.core.management.base import CommandError


def email_problem(email: str) -> str | None:
    """Why `email` cannot be a new staff account's, or None."""
    if not email:
        return "an email is required: staff log in with it (--email, or type one)"
    in_use = (
        EmailAddress.objects.filter(email__iexact=email).exists()
        or get_user_model().objects.filter(email__iexact=email).exists()
    )
    if in_use:
        return f"{email} is another account's email: choose another, or make that account staff"
    return None


class Command(createsuperuser.Command):
    help = (
        "Create a superuser (staff) who logs in by email at once: the email is required and "
        "recorded as verified."
    )

    def handle(self, *args, **options):
        email = options.get("email")
        if email is None and not options["interactive"]:
            email = os.environ.get("DJANGO_SUPERUSER_EMAIL", "")
        if email is not None:  # given on the command line (else asked for below)
            problem = email_problem(email.strip())
            if problem:
                raise CommandError(problem)
        return super().handle(*args, **options)

    def get_input_data(self, field, message, default=None):
        value = super().get_input_data(field, message, default)
        if field.name == "email" and value is not None:  # None: Django refused it already
            problem = email_problem(value)
            if problem:
                self.stderr.write(f"Error: {problem}")
                return None  # asked again
        return value
