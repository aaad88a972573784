"""Who is calling: API keys and tokens, looked up by hash and kept briefly in memory.

The hot path's budget is one SQL statement per key operation, so a key's or token's lookup is
cached in the worker for THISDB_AUTH_CACHE_SECONDS (10 s). Expiry is checked on every request,
so an expired token is never honoured, even from the cache.
"""

import hashlib
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from cachetools import TTLCache
from django.conf import settings
from django.utils import timezone

from accounts import keys
from accounts.models import ApiKey
from accounts.quotas import FIELDS as QUOTA_FIELDS
from accounts.quotas import Quotas, resolve
from api.models import TOKEN_RE, Token

LAST_USED_EVERY_SECONDS = 60  # last_used_at is written at most once a minute per key and worker


@dataclass(frozen=True)
class TokenScope:
    bucket_id: str
    prefix: str
    can_read: bool
    can_write: bool
    expires_at: datetime

    def covers(self, key: str) -> bool:
        return key.startswith(self.prefix)


@dataclass(frozen=True)
class Principal:
    """The account a request acts for, and the token's limits if it came with a token."""

    user_id: int
    api_key_id: int
    quotas: Quotas
    stored_bytes: int = 0  # the account's, as beat last counted it
    token: TokenScope | None = None

    is_authenticated = True  # read by DRF's IsAuthenticated


def _account_columns(user_path: str) -> list[str]:
    """Columns that give the account's quotas and usage in the same query as the key."""
    account = f"{user_path}__account"
    return [
        *(f"{account}__{name}" for name in QUOTA_FIELDS),
        *(f"{account}__plan__{name}" for name in QUOTA_FIELDS),
        f"{account}__stored_bytes",
    ]


def _account_figures(row) -> tuple[Quotas, int]:
    n = len(QUOTA_FIELDS)
    return resolve(row[:n], row[n : 2 * n]), row[2 * n] or 0


@dataclass(frozen=True)
class _CachedKey:
    hashed_secret: str
    principal: Principal


_lock = threading.Lock()
_api_keys: TTLCache = TTLCache(maxsize=100_000, ttl=settings.THISDB_AUTH_CACHE_SECONDS)
_tokens: TTLCache = TTLCache(maxsize=100_000, ttl=settings.THISDB_AUTH_CACHE_SECONDS)
_last_used_written: dict[int, float] = {}


def forget_all() -> None:
    with _lock:
        _api_keys.clear()
        _tokens.clear()
        _last_used_written.clear()


def forget_api_key(prefix: str, api_key_id: int) -> None:
    """Drop a key and the tokens it made from this worker's cache (on revocation)."""
    with _lock:
        _api_keys.pop(prefix, None)
        for hashed in [h for h, p in _tokens.items() if p.api_key_id == api_key_id]:
            _tokens.pop(hashed, None)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def principal_for_api_key(secret: str) -> Principal | None:
    prefix = keys.parse(secret)
    if prefix is None:
        return None  # malformed: refused before any query
    with _lock:
        cached = _api_keys.get(prefix)
    if cached is None:
        row = (
            ApiKey.objects.filter(prefix=prefix, revoked_at__isnull=True, user__is_active=True)
            .values_list("hashed_secret", "user_id", "id", *_account_columns("user"))
            .first()
        )
        if row is None:
            return None
        quotas, stored_bytes = _account_figures(row[3:])
        principal = Principal(row[1], row[2], quotas, stored_bytes)
        cached = _CachedKey(row[0], principal)
        with _lock:
            _api_keys[prefix] = cached
    if not keys.matches(secret, cached.hashed_secret):
        return None
    _touch_last_used(cached.principal.api_key_id)
    return cached.principal


def principal_for_token(token: str) -> Principal | None:
    if not TOKEN_RE.fullmatch(token):
        return None  # malformed: refused before any query
    hashed = hash_token(token)
    with _lock:
        principal = _tokens.get(hashed)
    if principal is None:
        row = (
            Token.objects.filter(
                hashed_token=hashed,
                created_by__revoked_at__isnull=True,
                created_by__user__is_active=True,
            )
            .values_list(
                "bucket_id",
                "prefix",
                "can_read",
                "can_write",
                "expires_at",
                "created_by__user_id",
                "created_by_id",
                *_account_columns("created_by__user"),
            )
            .first()
        )
        if row is None:
            return None
        quotas, stored_bytes = _account_figures(row[7:])
        principal = Principal(row[5], row[6], quotas, stored_bytes, token=TokenScope(*row[:5]))
        with _lock:
            _tokens[hashed] = principal
    if principal.token.expires_at <= timezone.now():
        return None  # expired tokens are refused even before the sweeper deletes them
    return principal


def _touch_last_used(api_key_id: int) -> None:
    now = time.monotonic()
    with _lock:
        last = _last_used_written.get(api_key_id)
        if last is not None and now - last < LAST_USED_EVERY_SECONDS:
            return
        _last_used_written[api_key_id] = now
    ApiKey.objects.filter(pk=api_key_id).update(last_used_at=timezone.now())
