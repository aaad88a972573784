"""Who is calling: API keys and tokens, looked up by hash and kept briefly in memory.

The hot path's budget is one SQL statement per key operation, so a key's or token's lookup is
cached in the worker for THISDB_AUTH_CACHE_SECONDS (10 s). Expiry is checked on every request,
so an expired key or token is never honoured, even from the cache. A revoked key or token and a
suspended account are refused on every worker at once by markers in Redis that the request's one
rate-limit round trip reads (Principal.blocks, api.limits).
"""

import time
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

from django.utils import timezone

from accounts import keys
from accounts.models import ApiKey
from accounts.quotas import FIELDS as QUOTA_FIELDS
from accounts.quotas import Quotas, resolve
from api import limits, notify
from api.caching import ShortCache
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


SUSPENDED = "this account is suspended: contact the platform's staff"
KEY_REVOKED = "this API key has been revoked: create a new one in your account"
TOKEN_REVOKED = "this token has been revoked: create a new one with POST /v1/tokens"


class Refused(Exception):
    """Credentials that are genuine but may not be used (revoked, expired, suspended)."""


@dataclass(frozen=True)
class Principal:
    """The account a request acts for, and the token's limits if it came with a token."""

    user_id: int
    api_key_id: int | None  # None for a person on the web pages
    quotas: Quotas
    stored_bytes: int = 0  # the account's, as beat last counted it
    token: TokenScope | None = None
    read_only: bool = False  # the API key may only read
    key_expires_at: datetime | None = None  # of the API key (the token's creator for a token)
    # Redis markers that refuse this caller at once, each with the message to answer with.
    blocks: tuple[tuple[str, str], ...] = ()

    is_authenticated = True  # what DRF asks of a user

    @cached_property
    def block_names(self) -> tuple[str, ...]:
        """The markers of `blocks`, as every request of this caller passes them to Redis."""
        return tuple(name for name, _ in self.blocks)


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
    revoked_at: datetime | None
    is_active: bool


@dataclass(frozen=True)
class _CachedToken:
    principal: Principal
    token_id: int
    revoked_at: datetime | None  # of the API key that made it
    is_active: bool  # its account


# Keyed by the secret and the token themselves, once they proved right: a request of a cached
# key makes no parse, no hash and no query. A wrong secret is never kept.
_api_keys = ShortCache()
_tokens = ShortCache()
_last_used_written: dict[int, float] = {}


def forget_all() -> None:
    _api_keys.clear()
    _tokens.clear()
    _last_used_written.clear()


def forget_api_key(user_id: int, prefix: str, api_key_id: int) -> None:
    """Refuse a revoked key and the tokens it made: dropped from this worker's cache, and on the
    others by a Redis marker until their caches forget it too."""
    marker = limits.block_key(user_id, "key", api_key_id)
    limits.block(marker)
    notify.blocked(marker)  # its watch streams end
    _api_keys.drop_where(lambda cached: cached.principal.api_key_id == api_key_id)
    _tokens.drop_where(lambda cached: cached.principal.api_key_id == api_key_id)


def forget_token(user_id: int, token_id: int) -> None:
    """Refuse a deleted token at once on every worker (see forget_api_key)."""
    marker = limits.block_key(user_id, "token", token_id)
    limits.block(marker)
    notify.blocked(marker)
    _tokens.drop_where(lambda cached: cached.token_id == token_id)


def forget_user(user_id: int, *, suspended: bool) -> None:
    """Drop a user's keys and tokens from this worker's cache; while `suspended`, a marker refuses
    them on the other workers until their caches forget them too."""
    name = limits.block_key(user_id, "user", user_id)
    if suspended:
        limits.block(name)
        notify.blocked(name)
    else:
        limits.unblock(name)
    _api_keys.drop_where(lambda cached: cached.principal.user_id == user_id)
    _tokens.drop_where(lambda cached: cached.principal.user_id == user_id)


def _key_blocks(api_key_id: int, user_id: int) -> tuple[tuple[str, str], ...]:
    return (
        (limits.block_key(user_id, "user", user_id), SUSPENDED),
        (limits.block_key(user_id, "key", api_key_id), KEY_REVOKED),
    )


def _check_key_state(revoked_at, is_active, expires_at, now: datetime | None = None) -> None:
    """Refuse a genuine key that may not be used, saying why (the secret was right). The clock
    is read only for a key that expires (most never do), unless the caller read it already."""
    if not is_active:
        raise Refused(SUSPENDED)
    if revoked_at is not None:
        raise Refused(KEY_REVOKED)
    if expires_at is not None and expires_at <= (now or timezone.now()):
        raise Refused(
            f"this API key expired on {expires_at:%Y-%m-%d %H:%M} UTC: "
            "create a new one in your account"
        )


def principal_for_api_key(secret: str) -> Principal | None:
    """The caller of an API key; None if it is not a key of ours, Refused if it may not act."""
    cached = _api_keys.live(secret)
    if cached is None:
        prefix = keys.parse(secret)
        if prefix is None:
            return None  # malformed: refused before any query
        row = (
            ApiKey.objects.filter(prefix=prefix)
            .values_list(
                "hashed_secret",
                "user_id",
                "id",
                "read_only",
                "expires_at",
                "revoked_at",
                "user__is_active",
                *_account_columns("user"),
            )
            .first()
        )
        if row is None:
            return None
        hashed, user_id, key_id, read_only, expires_at, revoked_at, is_active = row[:7]
        quotas, stored_bytes = _account_figures(row[7:])
        principal = Principal(
            user_id,
            key_id,
            quotas,
            stored_bytes,
            read_only=read_only,
            key_expires_at=expires_at,
            blocks=_key_blocks(key_id, user_id),
        )
        cached = _CachedKey(hashed, principal, revoked_at, is_active)
        if not keys.matches(secret, cached.hashed_secret):
            return None
        if is_active:  # a suspension may be lifted any moment: ask the database again then
            _api_keys.keep(secret, cached)
    principal = cached.principal
    assert principal.api_key_id is not None  # an API key's principal has its id
    _check_key_state(cached.revoked_at, cached.is_active, principal.key_expires_at)
    _touch_last_used(principal.api_key_id)
    return principal


def principal_for_token(token: str) -> Principal | None:
    """The caller of a token; None if it is no live token, Refused if its account may not act."""
    cached = _tokens.live(token)
    if cached is None:
        if not TOKEN_RE.fullmatch(token):
            return None  # malformed: refused before any query
        row = (
            Token.objects.filter(hashed_token=keys.hash_secret(token))
            .values_list(
                "bucket_id",
                "prefix",
                "can_read",
                "can_write",
                "expires_at",
                "created_by__user_id",
                "created_by_id",
                "id",
                "created_by__expires_at",
                "created_by__revoked_at",
                "created_by__user__is_active",
                *_account_columns("created_by__user"),
            )
            .first()
        )
        if row is None:
            return None
        user_id, key_id, token_id, key_expires_at, revoked_at, is_active = row[5:11]
        quotas, stored_bytes = _account_figures(row[11:])
        principal = Principal(
            user_id,
            key_id,
            quotas,
            stored_bytes,
            token=TokenScope(*row[:5]),
            key_expires_at=key_expires_at,
            blocks=(
                (limits.block_key(user_id, "token", token_id), TOKEN_REVOKED),
                *_key_blocks(key_id, user_id),
            ),
        )
        cached = _CachedToken(principal, token_id, revoked_at, is_active)
        if is_active:  # as for keys: a reactivated account works at once on every worker
            _tokens.keep(token, cached)
    principal = cached.principal
    assert principal.token is not None  # a token's principal has its scope
    now = timezone.now()
    if principal.token.expires_at <= now:
        return None  # expired tokens are refused even before the sweeper deletes them
    _check_key_state(cached.revoked_at, cached.is_active, principal.key_expires_at, now)
    return principal


def _touch_last_used(api_key_id: int) -> None:
    # No lock: two threads racing here write the same minute twice, which is harmless.
    now = time.monotonic()
    last = _last_used_written.get(api_key_id)
    if last is not None and now - last < LAST_USED_EVERY_SECONDS:
        return
    _last_used_written[api_key_id] = now
    ApiKey.objects.filter(pk=api_key_id).update(last_used_at=timezone.now())


def principal_for_user(user_id: int) -> Principal:
    """A person on the web pages: their account's quotas, no API key (pages count no requests)."""
    from accounts.models import Account

    account = Account.objects.select_related("plan").filter(user_id=user_id).first()
    if account is None:
        blank = [None] * len(QUOTA_FIELDS)
        return Principal(user_id, None, resolve(blank, blank))
    return Principal(user_id, None, account.quotas(), account.stored_bytes)
