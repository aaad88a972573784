"""Routes of the v1 API. /v1/tokens comes before /v1/<bucket>; each route also answers without
(or with) its trailing slash, because a redirected POST would lose its body."""

from django.urls import path, re_path, register_converter

from api.views import BucketViewSet, ItemViewSet, TokenViewSet, not_found


class KeyConverter:
    """The rest of the path, whatever it holds: Django's `path` converter is `.+`, which stops
    at a newline, and a key may hold any character but NUL."""

    regex = r"[\s\S]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(KeyConverter, "key")

create_bucket = BucketViewSet.as_view({"post": "create", "get": "list_buckets"})
bucket = BucketViewSet.as_view(
    {"get": "retrieve", "post": "transaction", "patch": "partial_update", "delete": "destroy"}
)
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
    # A key's route first: most requests are for keys. It needs a "/" after the bucket id, so
    # /v1/tokens and /v1/<bucket> never reach it; /v1/tokens/<x> is a key of bucket "tokens",
    # as before (a 404: no bucket has that id).
    path("v1/<str:bucket_id>/<key:key>", item, name="v1-item"),
    path("v1", create_bucket),
    path("v1/", create_bucket, name="v1-root"),
    path("v1/tokens", tokens, name="v1-tokens"),
    path("v1/tokens/", tokens),
    path("v1/<str:bucket_id>", bucket, name="v1-bucket"),
    path("v1/<str:bucket_id>/", bucket),
    # Any other path under /v1/ (an empty bucket id: /v1//x) is the API's 404, not a page's.
    re_path(r"^v1/", not_found),
]
