"""What the sync and the async client hold alike, as the base class both derive from."""

from __future__ import annotations

from typing import Any, TypeVar

import httpx

from thisdb import _core
from thisdb._core import Call
from thisdb.models import RateLimit

T = TypeVar("T")


class BaseClient:
    """What both clients hold: where the server is, the credentials, the retry rule, and the
    rate-limit figures of the last answer."""

    def __init__(
        self,
        api_key: str | None,
        token: str | None,
        base_url: str | None,
        retries: int,
        max_retry_wait: float,
    ):
        self._settings = _core.resolve_settings(api_key, token, base_url)
        self._retry = _core.RetryPolicy(retries, max_retry_wait)
        self.rate_limit: RateLimit | None = None
        """X-RateLimit-* of the last answer (None before any, or if it carried none)."""
        # Whether the server takes NDJSON imports (thisdb.bulk), once an import has found out.
        self._bulk_import: bool | None = None

    @property
    def base_url(self) -> str:
        """The API's root, ending in /v1."""
        return self._settings.base_url

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.base_url}>"

    def _answered(self, call: Call[T], response: httpx.Response) -> T:
        self.rate_limit = _core.rate_limit(response)
        return call.parse(_core.check(response, self.base_url, call.not_modified))

    def _failed(self, call: Call[Any], request: httpx.Request, exc: httpx.RequestError) -> str:
        return f"{call.method} {request.url}: {_core.describe_network_error(exc)}"
