"""The home page and the docs, named without a namespace: every page's layout links them."""

from django.urls import path

from dashboard import views

urlpatterns = [
    path("", views.home, name="home"),
    path("docs/", views.docs, name="docs"),
]
