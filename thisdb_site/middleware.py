"""Web-page middleware that steps aside for the /v1/ API.

The API authenticates by header on every request and never uses sessions, CSRF cookies, the
logged-in user, flash messages or a page's security policy, so its hot path does not pay for them.
"""

from csp import middleware as csp_middleware
from django.contrib.auth import middleware as auth_middleware
from django.contrib.messages import middleware as messages_middleware
from django.contrib.sessions import middleware as sessions_middleware
from django.middleware import csrf


def is_api_path(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")


def skip_for_api(middleware_class):
    """Return a subclass of `middleware_class` that passes /v1/ requests straight through."""

    class SkipForApi(middleware_class):
        def __call__(self, request):
            if is_api_path(request.path_info):
                return self.get_response(request)
            return super().__call__(request)

        def process_view(self, request, callback, callback_args, callback_kwargs):
            if is_api_path(request.path_info) or not hasattr(super(), "process_view"):
                return None
            return super().process_view(request, callback, callback_args, callback_kwargs)

    SkipForApi.__name__ = middleware_class.__name__
    SkipForApi.__qualname__ = middleware_class.__qualname__
    return SkipForApi


SessionMiddleware = skip_for_api(sessions_middleware.SessionMiddleware)
CsrfViewMiddleware = skip_for_api(csrf.CsrfViewMiddleware)
AuthenticationMiddleware = skip_for_api(auth_middleware.AuthenticationMiddleware)
MessageMiddleware = skip_for_api(messages_middleware.MessageMiddleware)
CSPMiddleware = skip_for_api(csp_middleware.CSPMiddleware)
