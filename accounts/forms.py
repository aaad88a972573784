from django import forms

from accounts.models import EXPIRY_CHOICES, ApiKey


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
