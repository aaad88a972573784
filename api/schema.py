"""OpenAPI: how the v1 API authenticates, so the docs page can send X-Api-Key or X-Token."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyOrTokenScheme(OpenApiAuthenticationExtension):
    target_class = "api.authentication.ApiKeyOrTokenAuthentication"
    name = ["ApiKey", "Token"]

    def get_security_definition(self, auto_schema):
        return [
            {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
            {"type": "apiKey", "in": "header", "name": "X-Token"},
        ]


def drop_route_twins(endpoints):
    """Document each route once: /v1/<bucket>/ and /v1/tokens/ are the same views as their
    twins without the slash (kept for clients), and /v1 is /v1/."""
    return [
        (path, path_regex, method, view)
        for path, path_regex, method, view in endpoints
        if path != "/v1" and (path == "/v1/" or not path.endswith("/"))
    ]
