from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("account/resend-confirmation/", views.resend_confirmation, name="resend-confirmation"),
]
