from django.contrib import admin

from api.models import Bucket, Token


@admin.register(Bucket)
class BucketAdmin(admin.ModelAdmin):
    list_display = ("id", "owner", "default_ttl", "created_at")
    search_fields = ("id", "owner__username")
    raw_id_fields = ("owner",)


@admin.register(Token)
class TokenAdmin(admin.ModelAdmin):
    list_display = ("bucket", "prefix", "can_read", "can_write", "expires_at", "created_by")
    readonly_fields = ("hashed_token",)
    raw_id_fields = ("bucket", "created_by")
