"""The account's pages (dashboard.account), named in the `account` namespace."""

from django.urls import path

from dashboard import account

app_name = "account"

urlpatterns = [
    path("keys/", account.keys, name="keys"),
    path("keys/<int:key_id>/revoke/", account.revoke_key, name="revoke-key"),
    path("account/", account.settings_page, name="settings"),
    path("account/security/", account.security_log, name="security-log"),
    path("account/delete/", account.delete_account, name="delete"),
]
