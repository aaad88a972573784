"""allauth's adapter with the security log (accounts.security): a login, a new password and a
confirmed email change are each written with their event in one transaction; a failed login is
written against the account whose email was typed, if there is one."""

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.utils import filter_users_by_email
from allauth.core import context
from django.db import transaction

from accounts import security

Kind = security.Kind


class AccountAdapter(DefaultAccountAdapter):
    reauthenticating = False  # allauth makes an adapter for each use: a flag of this use only

    def login(self, request, user) -> None:
        # The session, last_login and the event: all or nothing.
        with transaction.atomic():
            super().login(request, user)
            security.record(user, Kind.LOGIN, request)

    def set_password(self, user, password: str) -> None:
        """Every new password: changed, reset by an emailed link, or set."""
        request = context.request
        match = getattr(request, "resolver_match", None)
        reset = bool(match and match.url_name == "account_reset_password_from_key")
        with transaction.atomic():
            super().set_password(user, password)
            security.record(
                user, Kind.PASSWORD_CHANGED, request, how="reset" if reset else "changed"
            )

    def confirm_email(self, request, email_address) -> bool:
        # An email change counts once its new address is confirmed: allauth then makes it the
        # primary one, deletes the old one and sends email_changed, whose receiver
        # (accounts.signals) records it, all in this transaction.
        with transaction.atomic():
            return super().confirm_email(request, email_address)

    def reauthenticate(self, user, password: str) -> bool:
        """The password asked again before a sensitive change (its failure is logged as such)."""
        self.reauthenticating = True
        return super().reauthenticate(user, password)

    def authentication_failed(self, request, **credentials) -> None:
        """A wrong password (or no such account): recorded against the account of the email
        typed, if it has one. The answer is the same either way (ACCOUNT_PREVENT_ENUMERATION),
        so the log tells nobody but the account's owner and staff that the email is known."""
        super().authentication_failed(request, **credentials)
        email = credentials.get("email")
        if not email:
            return
        users = filter_users_by_email(email, is_active=None, prefer_verified=True)
        if users:
            detail = {"reauthentication": True} if self.reauthenticating else {}
            security.record(users[0], Kind.LOGIN_FAILED, request, step="password", **detail)
