"""The format of API key secrets: branded, checksummed, hashed at rest.

A secret reads `tdb_<prefix 8><random 32><checksum 6>`, all base62 after `tdb_`. The prefix finds
the row; the checksum lets a mistyped or truncated key be refused before any query; only the
SHA-256 of the whole secret is stored, so a database leak reveals no usable key. The secret has
about 238 random bits, so a fast hash is enough (a password hasher would cost ~100 ms a request).
"""

import hashlib
import hmac
import string
import zlib

from django.utils.crypto import get_random_string

ALPHABET = string.digits + string.ascii_letters  # base62
BRAND = "tdb_"
PREFIX_LENGTH = 8
RANDOM_LENGTH = 32
CHECKSUM_LENGTH = 6  # base62 of CRC-32 fits in 6 characters
SECRET_LENGTH = len(BRAND) + PREFIX_LENGTH + RANDOM_LENGTH + CHECKSUM_LENGTH

_BASE62 = frozenset(ALPHABET)


def _checksum(body: str) -> str:
    number = zlib.crc32(body.encode())
    digits = []
    for _ in range(CHECKSUM_LENGTH):
        number, rest = divmod(number, 62)
        digits.append(ALPHABET[rest])
    return "".join(reversed(digits))


def new_secret() -> str:
    body = get_random_string(PREFIX_LENGTH + RANDOM_LENGTH, ALPHABET)
    return BRAND + body + _checksum(body)


def parse(secret: str) -> str | None:
    """Return the lookup prefix of a well-formed secret, or None if it cannot be one of ours."""
    if len(secret) != SECRET_LENGTH or not secret.startswith(BRAND):
        return None
    rest = secret[len(BRAND) :]
    if not _BASE62.issuperset(rest):
        return None
    body, checksum = rest[:-CHECKSUM_LENGTH], rest[-CHECKSUM_LENGTH:]
    if not hmac.compare_digest(_checksum(body), checksum):
        return None
    return body[:PREFIX_LENGTH]


def hash_secret(secret: str) -> str:
    """SHA-256 hex of a secret, as stored: of API keys here, and of tokens (api.principals)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def matches(secret: str, hashed: str) -> bool:
    # Constant time, so response timing says nothing about how much of a guess was right.
    return hmac.compare_digest(hash_secret(secret), hashed)
