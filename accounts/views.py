"""The "check your inbox" page of email verification, with its resend button. (The pages of
API keys and of the account itself are dashboard.account's.)"""

from allauth.account.internal.flows.email_verification import send_verification_email_at_login
from allauth.account.internal.stagekit import get_pending_stage
from allauth.account.stages import EmailVerificationStage
from allauth.account.views import EmailVerificationSentView
from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect
from django.views.decorators.http import require_POST


class VerificationSentView(EmailVerificationSentView):
    """allauth's "check your inbox" page, saying where emails go when no mail server is set."""

    def get_context_data(self, **kwargs) -> dict:
        context = super().get_context_data(**kwargs)
        context["console_email"] = settings.EMAIL_BACKEND.endswith("console.EmailBackend")
        return context


@require_POST
def resend_confirmation(request):
    """Send the pending login's verification email again (from signup, or a login before the
    address was confirmed). allauth's own step sends it, within its cooldown of one email per
    address per 3 minutes, and answers a registered email's signup as it did the first time.
    (allauth's internal API of 65.x: tests/accounts/test_account_pages.py tells if it moves.)"""
    stage = get_pending_stage(request)  # None when logged in or no login waits
    if stage is None or stage.key != EmailVerificationStage.key:
        messages.info(request, "Log in with your email and password: we send a new link then.")
        return redirect("account_login")
    if not send_verification_email_at_login(request, stage.login):
        messages.info(request, "A link was sent less than 3 minutes ago: wait for it a little.")
    return redirect("account_email_verification_sent")
