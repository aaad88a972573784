from django.urls import path

from dashboard import views

app_name = "dashboard"

urlpatterns = [
    path("buckets/", views.buckets, name="buckets"),
    path("buckets/<str:bucket_id>/", views.bucket, name="bucket"),
    # The bucket page's live list: a watch stream (Server-Sent Events) for the page's script.
    path("buckets/<str:bucket_id>/watch/", views.watch, name="watch"),
    path("buckets/<str:bucket_id>/settings/", views.bucket_settings, name="bucket-settings"),
    path("buckets/<str:bucket_id>/delete/", views.delete_bucket, name="delete-bucket"),
    # Keys travel in the query string as base64url (?k=, dashboard.roundtrip): a key may hold
    # '/', '?', a newline or any other character but NUL.
    path("buckets/<str:bucket_id>/delete-prefix/", views.delete_prefix, name="delete-prefix"),
    # Download all and import: bulk transfers, which the front (thisdb_site.front) streams in
    # its bulk threads by these paths.
    path("buckets/<str:bucket_id>/export/", views.export_keys, name="export"),
    path("buckets/<str:bucket_id>/import/", views.import_keys, name="import"),
    path("buckets/<str:bucket_id>/key/", views.edit_key, name="key"),
    path("buckets/<str:bucket_id>/key/delete/", views.delete_key, name="delete-key"),
    path("buckets/<str:bucket_id>/key/increment/", views.increment_key, name="increment-key"),
    path("buckets/<str:bucket_id>/key/download/", views.download_key, name="download-key"),
    path("buckets/<str:bucket_id>/tokens/", views.tokens, name="tokens"),
    path(
        "buckets/<str:bucket_id>/tokens/<int:token_id>/revoke/",
        views.revoke_token,
        name="revoke-token",
    ),
    path("usage/", views.usage_page, name="usage"),
]
