"""The staff console's page of the security log: every account's events, read only (they are
written with the changes they record, accounts.security), filtered by kind and by account,
searched by email."""

from django.contrib import admin

from accounts.security import SecurityEvent


class AccountFilter(admin.SimpleListFilter):
    """?user=<id>: one account's events, the (user, at) index's range; linked from a person's
    page."""

    title = "account"
    parameter_name = "user"

    def lookups(self, request, model_admin):
        if self.value():
            return [(self.value(), f"#{self.value()}")]  # shown only while it filters
        return []

    def queryset(self, request, queryset):
        return queryset.filter(user_id=self.value()) if self.value() else queryset


@admin.register(SecurityEvent)
class SecurityEventAdmin(admin.ModelAdmin):
    list_display = ("at", "person", "kind", "description", "address", "user_agent_short")
    list_filter = ("kind", AccountFilter, "at")
    search_fields = ("user__email", "user__username")
    list_select_related = ("user",)
    date_hierarchy = "at"
    ordering = ("-at",)
    fields = ("at", "user", "kind", "description", "address", "user_agent", "detail")
    readonly_fields = fields
    list_per_page = 100

    def has_add_permission(self, request):
        return False  # events are written with what they record, never by hand

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # beat prunes them after THISDB_SECURITY_LOG_DAYS

    @admin.display(description="person", ordering="user__email")
    def person(self, event):
        return event.user.email or event.user.username

    @admin.display(description="browser")
    def user_agent_short(self, event):
        return event.user_agent[:60] + ("…" if len(event.user_agent) > 60 else "")
