"""Staff console pages for people, their API keys, plans and usage.

Every staff action on a person (suspend, reactivate, revoke keys, change plan) goes through the
same functions the platform uses (api.lifecycle), is recorded in Django's admin log, and is
listed on that person's page. A person's page suspends or reactivates them with a button, after a
confirmation that asks for the reason (recorded with it).
"""

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.http import Http404
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from accounts.models import Account, ApiKey, Plan, UsageHour, plan_name
from accounts.quotas import FIELDS
from api import lifecycle
from api.models import Bucket

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
            lifecycle.revoke_api_key(api_key, by_staff=True)
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


def person(user) -> str:
    """How staff know a person: the email, or the username of an account made without one
    (`manage.py createapikey --create-user`)."""
    return user.email or user.username


class ReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=500,  # a sentence or two, kept in the admin log
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Recorded in the admin log, on this person's page.",
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
        "person",
        "plan",
        "api_key_count",
        "bucket_count",
        "status",
        "is_staff",
        "joined",
        "last_seen",
    )
    list_display_links = ("person",)
    list_filter = ("is_active", "is_staff", "account__plan")
    search_fields = ("email", "username")
    ordering = ("-date_joined",)
    list_select_related = ("account__plan",)
    action_form = PlanActionForm
    actions = ["suspend", "reactivate", "revoke_keys", "change_plan"]
    # No "active" checkbox: suspension is the Suspend and Reactivate buttons (with a reason),
    # which also refuse or restore the person's keys and tokens at once on every worker.
    readonly_fields = (
        "staff_actions",
        "security_log",
        "summary",
        "suspension",
        "last_login",
        "date_joined",
    )
    fieldsets = (
        (None, {"fields": ("summary", "username", "email", "password")}),
        ("Status", {"fields": ("suspension", "is_staff", "is_superuser", "groups")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
        ("Staff actions", {"fields": ("staff_actions", "security_log")}),
    )

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(api_keys_n=_count(ApiKey, "user"), buckets_n=_count(Bucket, "owner"))
        )

    def get_urls(self):
        suspend = self.admin_site.admin_view(self.suspend_view)
        reactivate = self.admin_site.admin_view(self.reactivate_view)
        return [
            path("<id>/suspend/", suspend, name="auth_user_suspend"),
            path("<id>/reactivate/", reactivate, name="auth_user_reactivate"),
            *super().get_urls(),
        ]

    @admin.display(description="person", ordering="email")
    def person(self, user):
        return person(user)

    # Dates as 2026-12-04 rather than "Dec. 4, 2026, 6:10 p.m.": the list fits 1280 px.
    @admin.display(description="joined", ordering="date_joined")
    def joined(self, user):
        return timezone.localtime(user.date_joined).strftime("%Y-%m-%d")

    @admin.display(description="last login", ordering="last_login")
    def last_seen(self, user):
        if user.last_login is None:
            return "never"
        return timezone.localtime(user.last_login).strftime("%Y-%m-%d %H:%M")

    @admin.display(description="plan", ordering="account__plan__name")
    def plan(self, user):
        return plan_name(getattr(user, "account", None))

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
            "{}{} · {} · plan {} · {} live API key(s) of {} · {} bucket(s)",
            person(user),
            "" if user.email else " (no email)",
            self.status(user),
            self.plan(user),
            live_keys,
            user.api_keys.count(),
            user.buckets.count(),
        )

    @admin.display(description="Suspension")
    def suspension(self, user):
        if user.pk is None:
            return "-"
        if user.is_active:
            return "Active: can log in, and the API keys and tokens work. Suspend stops both."
        last = (
            self._entries(user)
            .filter(change_message__startswith="Suspended the account")
            .select_related("user")
            .first()
        )
        when = (
            format_html(
                " since {} by {} ({})",
                timezone.localtime(last.action_time).strftime("%Y-%m-%d %H:%M"),
                last.user,
                last.get_change_message(),
            )
            if last
            else ""
        )
        return format_html(
            "Suspended{}: cannot log in, and the API keys and tokens are refused (403); the data "
            "stays. Reactivate restores both.",
            when,
        )

    @staticmethod
    def _entries(user):
        return LogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(User), object_id=str(user.pk)
        )

    @admin.display(description="Recorded")
    def staff_actions(self, user):
        if user.pk is None:
            return "-"
        entries = self._entries(user).select_related("user")[:50]
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

    @admin.display(description="Security log")
    def security_log(self, user):
        if user.pk is None:
            return "-"
        url = reverse("admin:accounts_securityevent_changelist") + f"?user={user.pk}"
        count = user.security_events.count()
        days = settings.THISDB_SECURITY_LOG_DAYS
        return format_html('<a href="{}">{} event(s) in the last {} days</a>', url, count, days)

    def suspend_view(self, request, id):
        return self._suspension_view(request, id, suspend=True)

    def reactivate_view(self, request, id):
        return self._suspension_view(request, id, suspend=False)

    def _suspension_view(self, request, id, *, suspend: bool):
        """The confirmation page of the Suspend or Reactivate button, which asks for the reason;
        its POST does it and records it with the reason."""
        user = self.get_object(request, unquote(id))
        if user is None:
            raise Http404("no such person")
        if not self.has_change_permission(request, user):
            raise PermissionDenied
        back = reverse("admin:auth_user_change", args=[user.pk])
        if suspend and user.pk == request.user.pk:
            messages.error(request, "You cannot suspend your own account.")
            return redirect(back)
        if user.is_active != suspend:
            messages.info(request, f"{person(user)} is {self.status(user)} already.")
            return redirect(back)
        form = ReasonForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            if suspend:
                lifecycle.suspend_account(user)
            else:
                lifecycle.reactivate_account(user)
            done = "Suspended" if suspend else "Reactivated"
            log_action(request, user, f"{done} the account: {form.cleaned_data['reason']}")
            messages.success(request, f"{done} {person(user)}.")
            return redirect(back)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": user,
            "name": person(user),
            "suspend": suspend,
            "form": form,
            "title": f"{'Suspend' if suspend else 'Reactivate'} {person(user)}?",
        }
        return TemplateResponse(request, "admin/auth/user/suspension.html", context)

    @admin.action(description="Suspend the selected accounts")
    def suspend(self, request, queryset):
        done = 0
        for user in queryset.exclude(pk=request.user.pk).filter(is_active=True):
            lifecycle.suspend_account(user)
            log_action(request, user, "Suspended the account")
            done += 1
        if queryset.filter(pk=request.user.pk).exists():
            messages.warning(request, "You cannot suspend your own account.")
        messages.success(request, f"Suspended {done} account(s).")

    @admin.action(description="Reactivate the selected accounts")
    def reactivate(self, request, queryset):
        done = 0
        for user in queryset.filter(is_active=False):
            lifecycle.reactivate_account(user)
            log_action(request, user, "Reactivated the account")
            done += 1
        messages.success(request, f"Reactivated {done} account(s).")

    @admin.action(description="Revoke all API keys of the selected accounts")
    def revoke_keys(self, request, queryset):
        done = 0
        for user in queryset:
            revoked = list(ApiKey.objects.filter(user=user, revoked_at__isnull=True))
            for api_key in revoked:
                lifecycle.revoke_api_key(api_key, by_staff=True)
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
        for user in lifecycle.change_plan(queryset, plan):
            log_action(request, user, f"Changed the plan to {plan.name}")
        messages.success(request, f"Moved {queryset.count()} account(s) to the {plan.name} plan.")
