from allauth.account import forms as allauth_forms
from django import forms
from django.contrib.auth.hashers import make_password

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

    def __init__(self, user, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_password(self):
        password = self.cleaned_data["password"]
        if not self.user.check_password(password):
            raise forms.ValidationError("That is not your password. Nothing was deleted.")
        return password
