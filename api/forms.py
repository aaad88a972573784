"""Forms that check what the v1 API and the web pages both take, by the API's rules
(api.inputs), so a page and a request refuse the same input with the same words."""

from collections.abc import Callable
from typing import Any

from django import forms
from django.conf import settings

from api import inputs
from api.errors import ApiError, BadRequest


def api_rule(check: Callable[[Any], Any], value):
    """`check(value)`, its refusal (an ApiError) as the form's ValidationError."""
    try:
        return check(value)
    except ApiError as error:
        raise forms.ValidationError(str(error.detail)) from None


def checked(form: forms.Form) -> dict:
    """The form's cleaned data, or its first error (in field order) as the API's 400."""
    if not form.is_valid():
        raise BadRequest(str(next(iter(form.errors.values()))[0]))
    return form.cleaned_data


class WholeNumberField(forms.IntegerField):
    """A whole number in a range, refused in the API's words (inputs.whole_number); the page's
    input still gets the range as min and max."""

    def __init__(self, *, api_name: str, low: int, high: int, **kwargs):
        super().__init__(min_value=low, max_value=high, **kwargs)
        self.api_name, self.low, self.high = api_name, low, high

    def clean(self, value):
        return api_rule(
            lambda v: inputs.whole_number(v, self.api_name, low=self.low, high=self.high), value
        )


class TokenFields(forms.Form):
    """A token's fields besides its bucket (which each caller scopes): the lifetime, the prefix
    it reaches and its permissions. POST /v1/tokens sends `permissions` as text, which
    inputs.permissions reads into read and write first."""

    # Declared in the order the API reports them: the first refusal is the answer.
    ttl = WholeNumberField(
        api_name="ttl",
        low=1,
        high=settings.THISDB_TOKEN_MAX_TTL,  # spec: at most a day
        label="Lifetime (seconds)",
        initial=3600,
    )
    # The form metaclass takes fields out of the class: this does not hide Form.prefix.
    prefix = forms.CharField(  # type: ignore[assignment]
        strip=False,
        required=False,
        # The byte limit is check_prefix's; the page's input stops at as many characters.
        widget=forms.TextInput(attrs={"maxlength": settings.THISDB_KEY_MAX_BYTES}),
        help_text="The token reaches keys starting with this (a whole key name for one key; "
        "blank for the whole bucket).",
    )
    read = forms.BooleanField(required=False, initial=True)
    write = forms.BooleanField(required=False)

    def clean_prefix(self):
        return api_rule(inputs.check_prefix, self.cleaned_data["prefix"])

    def clean(self):
        cleaned = super().clean()
        assert cleaned is not None  # Form.clean returns cleaned_data
        if not cleaned.get("read") and not cleaned.get("write"):
            raise forms.ValidationError("Give the token read, write or both.")
        return cleaned
