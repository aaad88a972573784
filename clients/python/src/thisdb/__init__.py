"""ThisDB: a Python client (sync and async) for servers of the ThisDB v1 API."""

from thisdb._version import __version__
from thisdb.async_client import AsyncClient
from thisdb.client import Client
from thisdb.errors import (
    ApiError,
    BadRequest,
    ClientClosed,
    ConfigurationError,
    Forbidden,
    InvalidArgument,
    LengthRequired,
    MethodNotAllowed,
    NetworkError,
    NotAcceptable,
    NotFound,
    NotJSON,
    NotTheAPI,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    ThisDBError,
    Unavailable,
    UnexpectedResponse,
)
from thisdb.models import BucketInfo, BucketPage, Item, KeyPage, RateLimit

__all__ = [
    "ApiError",
    "AsyncClient",
    "BadRequest",
    "BucketInfo",
    "BucketPage",
    "Client",
    "ClientClosed",
    "ConfigurationError",
    "Forbidden",
    "InvalidArgument",
    "Item",
    "KeyPage",
    "LengthRequired",
    "MethodNotAllowed",
    "NetworkError",
    "NotAcceptable",
    "NotFound",
    "NotJSON",
    "NotTheAPI",
    "PayloadTooLarge",
    "RateLimit",
    "RateLimited",
    "ServerError",
    "ThisDBError",
    "Unavailable",
    "UnexpectedResponse",
    "__version__",
]
