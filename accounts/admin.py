from django.contrib import admin

from accounts.models import Account, ApiKey, Plan, UsageHour
from accounts.quotas import FIELDS


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("prefix", "name", "user", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("prefix", "name", "user__username", "user__email")
    readonly_fields = ("prefix", "hashed_secret", "created_at", "last_used_at", "revoked_at")
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False  # keys are made by their owners (or createapikey): the secret is shown once

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request, queryset):
        for api_key in queryset:
            api_key.revoke()


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ("name", "is_default", *FIELDS)


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ("user", "plan", "stored_bytes", *FIELDS)
    list_filter = ("plan",)
    search_fields = ("user__username", "user__email")
    readonly_fields = ("stored_bytes", "effective_quotas")
    raw_id_fields = ("user",)

    @admin.display(description="Quotas in force")
    def effective_quotas(self, account):
        quotas = account.quotas()
        return ", ".join(f"{name.replace('_', ' ')}: {getattr(quotas, name)}" for name in FIELDS)


@admin.register(UsageHour)
class UsageHourAdmin(admin.ModelAdmin):
    list_display = ("hour", "api_key", "requests")
    list_filter = ("hour",)
    search_fields = ("api_key__prefix", "api_key__user__username")
    raw_id_fields = ("api_key",)
    date_hierarchy = "hour"
