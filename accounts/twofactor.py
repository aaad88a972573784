"""Two-factor codes (TOTP or a recovery code) where allauth asks for them, at login and at
re-authentication, and where we do, at account deletion: each counted by the budgets of
accounts.ratelimits before it is checked (MFA_FORMS points allauth at these forms)."""

from collections.abc import Callable

from allauth.core import context
from allauth.mfa.base import forms as mfa_forms
from allauth.mfa.models import Authenticator
from allauth.mfa.utils import is_mfa_enabled

from accounts import ratelimits


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


class AuthenticateForm(mfa_forms.AuthenticateForm):
    """The code step of login."""

    def clean_code(self) -> str:
        return checked_code(context.request, self.user, super().clean_code)


class ReauthenticateForm(mfa_forms.ReauthenticateForm):
    """The code asked again before changing two-factor settings or other sensitive ones."""

    def clean_code(self) -> str:
        return checked_code(context.request, self.user, super().clean_code)
