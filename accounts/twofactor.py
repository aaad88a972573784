"""Two-factor codes (TOTP or a recovery code) where allauth asks for them, at login and at
re-authentication, and where we do, at account deletion: each counted by the budgets of
accounts.ratelimits before it is checked (MFA_FORMS points allauth at these forms). At login and
re-authentication, a wrong code and a recovery code used go to the security log."""

from collections.abc import Callable

from allauth.core import context
from allauth.mfa.base import forms as mfa_forms
from allauth.mfa.models import Authenticator
from allauth.mfa.utils import is_mfa_enabled
from django.core.exceptions import ValidationError
from django.db import transaction

from accounts import ratelimits, security


def checked_code(request, user, check: Callable[[], str]) -> str:
    """Run `check` (which raises ValidationError for a wrong code) within the user's and the
    address's budgets of wrong codes; raise TooManyCodes past them, checking nothing."""
    attempts = ratelimits.take_code_attempt(request, user)
    code = check()  # a wrong code stays counted
    for attempt in attempts:
        attempt.give_back()
    return code


def is_code_right(user, code: str) -> bool:
    """A current TOTP code or an unused recovery code of `user` (a recovery code is used up)."""
    for authenticator in Authenticator.objects.filter(user=user).exclude(
        type=Authenticator.Type.WEBAUTHN  # no typed codes
    ):
        if authenticator.wrap().validate_code(code):
            return True
    return False


def is_enabled(user) -> bool:
    return is_mfa_enabled(user)


def logged_code(form, check: Callable[[], str], *, reauthentication: bool) -> str:
    """checked_code, with the security log: a recovery code used up is recorded in the
    transaction that marks it used; a wrong code as a failed login (outside it, which the
    failure rolls back)."""
    request = context.request
    detail = {"reauthentication": True} if reauthentication else {}
    try:
        with transaction.atomic():
            code = checked_code(request, form.user, check)
            if form.authenticator.type == Authenticator.Type.RECOVERY_CODES:
                security.record(form.user, security.Kind.RECOVERY_CODE_USED, request, **detail)
    except ValidationError:
        security.record(
            form.user, security.Kind.LOGIN_FAILED, request, step="two-factor code", **detail
        )
        raise
    return code


class AuthenticateForm(mfa_forms.AuthenticateForm):
    """The code step of login."""

    def clean_code(self) -> str:
        return logged_code(self, super().clean_code, reauthentication=False)


class ReauthenticateForm(mfa_forms.ReauthenticateForm):
    """The code asked again before changing two-factor settings or other sensitive ones."""

    def clean_code(self) -> str:
        return logged_code(self, super().clean_code, reauthentication=True)
