"""Staff console pages for people, their API keys, plans and usage.

Every staff action on a person (suspend, reactivate, revoke keys, change plan) goes through the
same methods the platform uses, is recorded in Django's admin log, and is listed on that person's
page.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.contenttypes.models import ContentType
from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from accounts.models import Account, ApiKey, Plan, UsageHour
from accounts.quotas import FIELDS

User = get_user_model()


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = (
        "prefix",
        "name",
        "user",
        "read_only",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    )
    list_filter = ("revoked_at", "read_only")
    search_fields = ("prefix", "name", "user__username", "user__email")
    readonly_fields = (
        "prefix",
        "hashed_secret",
        "created_at",
        "last_used_at",
        "revoked_at",
        "expiry_warned_at",
    )
    list_select_related = ("user",)
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False  # keys are made by their owners (or createapikey): the secret is shown once

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request, queryset):
        for api_key in queryset.select_related("user"):
            api_key.revoke()
            log_action(request, api_key.user, f"Revoked API key {api_key.display_prefix}")


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
    list_select_related = ("user", "plan")

    @admin.display(description="Quotas in force")
    def effective_quotas(self, account):
        quotas = account.quotas()
        return ", ".join(f"{name.replace('_', ' ')}: {getattr(quotas, name)}" for name in FIELDS)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and form.changed_data:
            log_action(request, obj.user, f"Changed the account: {', '.join(form.changed_data)}")


@admin.register(UsageHour)
class UsageHourAdmin(admin.ModelAdmin):
    list_display = ("hour", "api_key", "requests")
    list_filter = ("hour",)
    search_fields = ("api_key__prefix", "api_key__user__username", "api_key__user__email")
    raw_id_fields = ("api_key",)
    date_hierarchy = "hour"


def log_action(request, user, message: str) -> None:
    """Record a staff action on `user` in Django's admin log (shown on the user's page)."""
    LogEntry.objects.log_actions(
        user_id=request.user.pk,
        queryset=[user],
        action_flag=CHANGE,
        change_message=message,
        single_object=True,
    )


class PlanActionForm(ActionForm):
    plan = forms.ModelChoiceField(Plan.objects.all(), required=False, help_text="for “Change plan”")


def _count(model, field: str):
    """A per-user count as a subquery: two joined COUNTs would multiply each other."""
    rows = (
        model.objects.filter(**{field: OuterRef("pk")})
        .order_by()
        .values(field)
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Subquery(rows, output_field=IntegerField())


admin.site.unregister(User)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = (
        "email",
        "plan",
        "api_key_count",
        "bucket_count",
        "status",
        "is_staff",
        "date_joined",
        "last_login",
    )
    list_filter = ("is_active", "is_staff", "account__plan")
    search_fields = ("email", "username")
    ordering = ("-date_joined",)
    list_select_related = ("account__plan",)
    action_form = PlanActionForm
    actions = ["suspend", "reactivate", "revoke_keys", "change_plan"]
    readonly_fields = ("staff_actions", "summary", "last_login", "date_joined")
    fieldsets = (
        (None, {"fields": ("summary", "username", "email", "password")}),
        ("Status", {"fields": ("is_active", "is_staff", "is_superuser", "groups")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
        ("Staff actions", {"fields": ("staff_actions",)}),
    )

    def get_queryset(self, request):
        from api.models import Bucket

        return (
            super()
            .get_queryset(request)
            .annotate(api_keys_n=_count(ApiKey, "user"), buckets_n=_count(Bucket, "owner"))
        )

    @admin.display(description="plan", ordering="account__plan__name")
    def plan(self, user):
        account = getattr(user, "account", None)
        return account.plan.name if account and account.plan else "free"

    @admin.display(description="API keys", ordering="api_keys_n")
    def api_key_count(self, user):
        return user.api_keys_n or 0

    @admin.display(description="buckets", ordering="buckets_n")
    def bucket_count(self, user):
        return user.buckets_n or 0

    @admin.display(description="status", ordering="is_active")
    def status(self, user):
        return "active" if user.is_active else "suspended"

    @admin.display(description="Account")
    def summary(self, user):
        if user.pk is None:
            return "-"
        live_keys = ApiKey.objects.active().filter(user=user).count()
        return format_html(
            "{} · plan {} · {} live API key(s) of {} · {} bucket(s)",
            self.status(user),
            self.plan(user),
            live_keys,
            user.api_keys.count(),
            user.buckets.count(),
        )

    @admin.display(description="Recorded")
    def staff_actions(self, user):
        if user.pk is None:
            return "-"
        entries = LogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(User), object_id=str(user.pk)
        ).select_related("user")[:50]
        if not entries:
            return "none"
        rows = format_html_join(
            "",
            "<li>{} · {} · {}</li>",
            (
                (
                    timezone.localtime(e.action_time).strftime("%Y-%m-%d %H:%M"),
                    e.user,
                    e.get_change_message(),
                )
                for e in entries
            ),
        )
        return format_html("<ul>{}</ul>", rows)

    def save_model(self, request, obj, form, change):
        # Suspension through the form goes through the same path as the action: the account's
        # keys and tokens are refused at once on every worker.
        was_active = User.objects.filter(pk=obj.pk).values_list("is_active", flat=True).first()
        super().save_model(request, obj, form, change)
        if change and was_active is not None and was_active != obj.is_active:
            account, _ = Account.objects.get_or_create(user=obj)
            if obj.is_active:
                account.reactivate()
            else:
                account.suspend()

    @admin.action(description="Suspend the selected accounts")
    def suspend(self, request, queryset):
        done = 0
        for user in queryset.exclude(pk=request.user.pk).filter(is_active=True):
            Account.objects.get_or_create(user=user)[0].suspend()
            log_action(request, user, "Suspended the account")
            done += 1
        if queryset.filter(pk=request.user.pk).exists():
            messages.warning(request, "You cannot suspend your own account.")
        messages.success(request, f"Suspended {done} account(s).")

    @admin.action(description="Reactivate the selected accounts")
    def reactivate(self, request, queryset):
        done = 0
        for user in queryset.filter(is_active=False):
            Account.objects.get_or_create(user=user)[0].reactivate()
            log_action(request, user, "Reactivated the account")
            done += 1
        messages.success(request, f"Reactivated {done} account(s).")

    @admin.action(description="Revoke all API keys of the selected accounts")
    def revoke_keys(self, request, queryset):
        done = 0
        for user in queryset:
            revoked = list(ApiKey.objects.filter(user=user, revoked_at__isnull=True))
            for api_key in revoked:
                api_key.revoke()
            if revoked:
                log_action(request, user, f"Revoked all {len(revoked)} API key(s)")
            done += len(revoked)
        messages.success(request, f"Revoked {done} API key(s).")

    @admin.action(description="Change plan (choose it below)")
    def change_plan(self, request, queryset):
        plan_id = request.POST.get("plan")
        plan = Plan.objects.filter(pk=plan_id).first() if plan_id else None
        if plan is None:
            messages.error(request, "Choose a plan in the list beside the action first.")
            return
        for user in queryset:
            account, _ = Account.objects.get_or_create(user=user)
            if account.plan_id != plan.pk:
                account.plan = plan
                account.save(update_fields=["plan"])
                log_action(request, user, f"Changed the plan to {plan.name}")
        from api import principals

        principals.forget_all()  # this worker at once; the others within the cache's 10 s
        messages.success(request, f"Moved {queryset.count()} account(s) to the {plan.name} plan.")
