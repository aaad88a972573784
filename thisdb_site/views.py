from django.http import HttpResponse


def ratelimited(request, exception):
    """django-ratelimit's answer for the web pages: 429 (its default is 403)."""
    return HttpResponse(
        "Too many requests: wait a minute and try again.",
        status=429,
        content_type="text/plain; charset=utf-8",
        headers={"Retry-After": "60"},
    )
