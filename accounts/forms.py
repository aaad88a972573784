from allauth.account import forms as allauth_forms
from django import forms
from django.contrib.auth.hashers import make_password

from accounts import twofactor
from accounts.models import EXPIRY_CHOICES, ApiKey


class SignupForm(allauth_forms.SignupForm):
    """allauth's signup, costing the same for a registered email as for a new one."""

    def try_save(self, request):
        if self.account_already_exists:
            # A new account hashes its password (PBKDF2, a quarter of a second); a registered
            # email, answered alike to hide that it is one, would otherwise answer that much
            # sooner and give itself away by time. Hash and drop the password.
            make_password(self.cleaned_data.get("password1"))
        return super().try_save(request)


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        max_length=ApiKey._meta.get_field("name").max_length,
        help_text="What uses it, e.g. \u201claptop\u201d or \u201cbilling service\u201d.",
    )
    expires_in_days = forms.TypedChoiceField(
        label="Expires",
        choices=EXPIRY_CHOICES,
        coerce=int,
        initial=90,
        help_text="We email you a week before it expires.",
    )
    read_only = forms.BooleanField(
        required=False,
        label="Read-only",
        help_text="It may read buckets and keys, never write, create tokens or create or delete "
        "buckets.",
    )


class DeleteAccountForm(forms.Form):
    password = forms.CharField(
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
        help_text="Your password, to show it is you.",
    )

    def __init__(self, request, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.request, self.user = request, request.user
        if twofactor.is_enabled(self.user):
            self.fields["code"] = forms.CharField(
                label="Two-factor code",
                widget=forms.TextInput(attrs={"autocomplete": "one-time-code"}),
                help_text="From your authenticator app, or one of your recovery codes.",
            )

    def clean_password(self):
        password = self.cleaned_data["password"]
        if not self.user.check_password(password):
            raise forms.ValidationError("That is not your password. Nothing was deleted.")
        return password

    def clean(self):
        cleaned_data = super().clean() or {}
        code = cleaned_data.get("code")
        # The code only after the right password, as at login: a wrong password must not spend
        # a recovery code or the code budget. Raises TooManyCodes past the budget (a 429).
        if code and "password" in cleaned_data:
            twofactor.checked_code(self.request, self.user, lambda: self._check_code(code))
        return cleaned_data

    def _check_code(self, code: str) -> str:
        if not twofactor.is_code_right(self.user, code):
            raise forms.ValidationError(
                {"code": "That code is not right (or was used already). Nothing was deleted."}
            )
        return code
