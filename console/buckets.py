"""Staff console pages for buckets, tokens and keys (items). Items are shown, never edited: a
change goes through the API's operations, not a form."""

from django.contrib import admin
from django.db.models import BinaryField
from django.db.models.functions import Length, Substr
from django.template.defaultfilters import filesizeformat, truncatechars

from api.models import Bucket, Item, Token
from dashboard import roundtrip

VALUE_PREVIEW_CHARS = 80
VALUE_PREVIEW_BYTES = 4 * VALUE_PREVIEW_CHARS  # enough bytes for 80 characters of UTF-8


@admin.register(Bucket)
class BucketAdmin(admin.ModelAdmin):
    list_display = ("id", "owner_email", "key_count", "stored", "default_ttl", "created_at")
    search_fields = ("=id", "owner__email", "owner__username")
    raw_id_fields = ("owner",)
    readonly_fields = ("key_count", "stored_bytes", "created_at")
    list_select_related = ("owner",)

    @admin.display(description="owner", ordering="owner__email")
    def owner_email(self, bucket):
        return bucket.owner.email or bucket.owner.username

    @admin.display(description="stored", ordering="stored_bytes")
    def stored(self, bucket):
        return filesizeformat(bucket.stored_bytes)


@admin.register(Token)
class TokenAdmin(admin.ModelAdmin):
    list_display = ("bucket", "prefix", "can_read", "can_write", "expires_at", "created_by")
    search_fields = ("=bucket__id", "prefix", "created_by__prefix")
    readonly_fields = ("hashed_token",)
    raw_id_fields = ("bucket", "created_by")
    list_select_related = ("created_by",)


class BucketIdFilter(admin.SimpleListFilter):
    """?bucket=<id>: one bucket's keys, the (bucket, key) index's range; links from a bucket."""

    title = "bucket"
    parameter_name = "bucket"

    def lookups(self, request, model_admin):
        return []

    def queryset(self, request, queryset):
        return queryset.filter(bucket_id=self.value()) if self.value() else queryset


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    """Keys, searchable by bucket id (exact) and key (prefix): both use the (bucket, key) index.
    Values are cut short; binary ones show their size."""

    list_display = ("bucket_id", "key_short", "value_preview", "size", "expires_at", "updated_at")
    search_fields = ("=bucket__id", "^key")
    list_filter = (BucketIdFilter,)
    fields = ("bucket", "key", "value_preview", "size", "expires_at", "updated_at")
    readonly_fields = fields
    show_full_result_count = False  # no second COUNT(*) over millions of keys
    list_per_page = 50

    def get_queryset(self, request):
        # A page of 50 keys must not load 50 values of up to 1 MiB: only their first bytes.
        return (
            super()
            .get_queryset(request)
            .defer("value")
            .annotate(
                value_head=Substr("value", 1, VALUE_PREVIEW_BYTES, output_field=BinaryField()),
                value_size=Length("value"),
            )
        )

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="key", ordering="key")
    def key_short(self, item):
        return truncatechars(item.key, 60)

    @admin.display(description="value")
    def value_preview(self, item):
        shown = roundtrip.preview(bytes(item.value_head), item.value_size, VALUE_PREVIEW_CHARS)
        if shown is None:
            return f"(binary, {filesizeformat(item.value_size)})"
        text, cut = shown
        return text + "…" if cut else text

    @admin.display(description="size", ordering="value_size")
    def size(self, item):
        return filesizeformat(item.value_size)
