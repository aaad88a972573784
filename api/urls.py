"""Routes of the v1 API. /v1/tokens comes before /v1/<bucket>; each route also answers without
(or with) its trailing slash, because a redirected POST would lose its body."""

from django.urls import path

from api.views import BucketViewSet, ItemViewSet, TokenViewSet

create_bucket = BucketViewSet.as_view({"post": "create"})
bucket = BucketViewSet.as_view({"get": "retrieve", "patch": "partial_update", "delete": "destroy"})
tokens = TokenViewSet.as_view({"post": "create"})
item = ItemViewSet.as_view(
    {
        "get": "retrieve",
        "post": "update",
        "put": "update",  # kvdb.io clients set keys with PUT
        "patch": "partial_update",
        "delete": "destroy",
    }
)

urlpatterns = [
    path("v1", create_bucket),
    path("v1/", create_bucket, name="v1-root"),
    path("v1/tokens", tokens, name="v1-tokens"),
    path("v1/tokens/", tokens),
    path("v1/<str:bucket_id>", bucket, name="v1-bucket"),
    path("v1/<str:bucket_id>/", bucket),
    path("v1/<str:bucket_id>/<path:key>", item, name="v1-item"),
]
