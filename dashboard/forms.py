"""Forms of the bucket pages. Each field is checked by the same rules as the API (api.inputs), so
a page and a request refuse the same input with the same words."""

from typing import cast

from django import forms
from django.conf import settings

from accounts.models import ApiKey
from api import inputs
from api.forms import TokenFields, api_rule
from dashboard import roundtrip


class TtlField(forms.IntegerField):
    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", 0)
        kwargs.setdefault("max_value", settings.THISDB_MAX_TTL)
        super().__init__(**kwargs)


class BucketForm(forms.Form):
    label = forms.CharField(
        required=False,
        max_length=100,
        help_text="Optional: a name of yours for this bucket, shown beside its id.",
    )
    default_ttl = TtlField(
        label="Default TTL (seconds)",
        initial=settings.THISDB_DEFAULT_TTL,
        help_text="Keys not written for this long expire. 604800 is a week; 0 means never.",
    )


class KeyForm(forms.Form):
    """Add a key, or change one (the view passes the key it edits, which no input carries)."""

    key = forms.CharField(strip=False, max_length=settings.THISDB_KEY_MAX_BYTES)
    value = forms.CharField(
        strip=False,
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false"}),
        help_text="Stored as UTF-8 text, byte for byte.",
    )
    line_endings = forms.ChoiceField(
        choices=[(roundtrip.LF, "LF (\\n)"), (roundtrip.CRLF, "CRLF (\\r\\n)")],
        required=False,  # absent: LF
        initial=roundtrip.LF,
        help_text="Every line break of the value is stored as this.",
    )
    ttl = TtlField(
        label="TTL (seconds)",
        required=False,
        help_text="Blank: the bucket's default TTL. 0: never expires.",
    )

    def clean_key(self):
        return api_rule(inputs.check_key, self.cleaned_data["key"])

    def clean(self):
        cleaned = super().clean()
        assert cleaned is not None  # Form.clean returns cleaned_data
        if "value" not in cleaned:
            return cleaned
        # The browser sent every line break as CRLF: give the value the ending chosen.
        ending = cleaned.get("line_endings") or roundtrip.LF
        value = roundtrip.from_textarea(cleaned["value"], ending).encode()
        if len(value) > settings.THISDB_VALUE_MAX_BYTES:
            self.add_error(
                "value",
                f"the value is larger than the limit of {settings.THISDB_VALUE_MAX_BYTES} bytes",
            )
        else:
            cleaned["value"] = value
        return cleaned


class IncrementForm(forms.Form):
    k = forms.CharField(widget=forms.HiddenInput)  # the key, as roundtrip.key_ref
    by = forms.IntegerField(initial=1, min_value=inputs.INT64_MIN, max_value=inputs.INT64_MAX)

    def clean_k(self):
        return api_rule(roundtrip.key_from_ref, self.cleaned_data["k"])


class TokenForm(TokenFields):
    """The API's token fields (api.forms.TokenFields), and the API key the token acts for."""

    api_key = forms.ModelChoiceField(
        queryset=ApiKey.objects.none(),
        label="Counts against API key",
        help_text="The token's requests count against this key's hourly limit, and it stops "
        "working when the key is revoked.",
    )

    def __init__(self, user, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Tokens act for a key that may write: a read-only key cannot create tokens.
        keys = ApiKey.objects.active().filter(user=user, read_only=False).order_by("-created_at")
        api_key = cast(forms.ModelChoiceField, self.fields["api_key"])
        api_key.queryset = keys
        api_key.empty_label = None  # the newest key is chosen unless changed


class DeletePrefixForm(forms.Form):
    """Delete every key that starts with a prefix: never an empty one, which would empty the
    bucket (deleting the bucket is its own page, which says so)."""

    # The form metaclass takes fields out of the class: this does not hide Form.prefix.
    prefix = forms.CharField(  # type: ignore[assignment]
        strip=False,
        error_messages={
            "required": "Filter by a prefix first: an empty prefix would delete every key. "
            "To delete them all, delete the bucket."
        },
    )

    def clean_prefix(self):
        return api_rule(inputs.check_prefix, self.cleaned_data["prefix"])
