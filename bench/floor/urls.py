from django.urls import path

from bench.floor import views

urlpatterns = [
    path("v1/<str:bucket>", views.listing),
    path("v1/<str:bucket>/<path:key>", views.item),
]
