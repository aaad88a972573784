from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("keys/", views.keys, name="keys"),
    path("keys/<int:key_id>/revoke/", views.revoke_key, name="revoke-key"),
    path("account/", views.settings_page, name="settings"),
    path("account/delete/", views.delete_account, name="delete"),
    path("account/resend-confirmation/", views.resend_confirmation, name="resend-confirmation"),
]
