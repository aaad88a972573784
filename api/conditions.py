"""HTTP's validators for keys: a key's version as its ETag, and the conditions of a request.

A version is an integer; its ETag is the strong validator `"<version>"`. A write's conditions
come from If-Match (`"v1", "v2"` or `*`) and If-None-Match (`*`), as RFC 9110 has them, and
become a statements.Condition, which the write's own statement decides. A GET's If-None-Match
answers 304 while one of its tags is current.
"""

import re

from api.errors import BadRequest
from api.statements import Condition

# An entity tag: optionally weak (W/), then a quoted string of visible characters (RFC 9110
# 8.8.3); or a version without its quotes, as a person types it (If-Match: 17).
_TAG = re.compile(r'\s*(?:(W/)?"([^"]*)"|([0-9]+))\s*(?:,|$)')
MAX_TAGS = 100  # tags one header may list: a client names the few versions it has seen


def etag(version: int) -> str:
    return f'"{version}"'


def _tags(header: str, name: str) -> list[tuple[bool, str]]:
    """(weak, tag) of each entity tag in a header's list; BadRequest if it is not one."""
    tags: list[tuple[bool, str]] = []
    position = 0
    header = header.strip()
    while position < len(header):
        match = _TAG.match(header, position)
        if match is None or len(tags) >= MAX_TAGS:
            raise BadRequest(
                f'{name} must be * or a list of up to {MAX_TAGS} entity tags such as "17", '
                "as the ETag header gives them"
            )
        quoted = match.group(2)
        tags.append((match.group(1) is not None, match.group(3) if quoted is None else quoted))
        position = match.end()
    if not tags:
        raise BadRequest(f'{name} is empty: send * or an entity tag such as "17"')
    return tags


def write_condition(meta: dict) -> Condition | None:
    """The condition of a set, increment or delete, from its If-Match / If-None-Match (read
    from the request's META: two lookups, where request.headers would copy every header)."""
    if_match, if_none_match = meta.get("HTTP_IF_MATCH"), meta.get("HTTP_IF_NONE_MATCH")
    if if_match is None and if_none_match is None:
        return None
    if if_none_match is not None:
        if if_none_match.strip() != "*":
            raise BadRequest(
                "If-None-Match on a write takes only * (the key must not exist); "
                'use If-Match: "<version>" to write over a version you have read'
            )
        if if_match is not None:
            # Both must hold (RFC 9110 13.2.2): If-Match needs the key, If-None-Match: * its
            # absence. No version matches: a 412, with the key's ETag if it exists.
            if if_match.strip() != "*":
                _tags(if_match, "If-Match")  # still a 400 when it cannot be read
            return Condition("versions", ())
        return Condition("absent")
    assert if_match is not None
    if if_match.strip() == "*":
        return Condition("exists")
    # Strong comparison (RFC 9110 13.1.1): a weak tag never matches, nor one that is not ours.
    versions = tuple(
        int(tag) for weak, tag in _tags(if_match, "If-Match") if not weak and _ours(tag)
    )
    return Condition("versions", versions)


def not_modified(meta: dict, version: int) -> bool:
    """True when a GET's If-None-Match names the key's current version (or is *): 304."""
    if_none_match = meta.get("HTTP_IF_NONE_MATCH")
    if if_none_match is None:
        return False
    if if_none_match.strip() == "*":
        return True
    # Weak comparison for If-None-Match (RFC 9110 13.1.2): W/"17" matches "17".
    return any(
        _ours(tag) and int(tag) == version for _, tag in _tags(if_none_match, "If-None-Match")
    )


def _ours(tag: str) -> bool:
    return tag.isascii() and tag.isdigit() and len(tag) <= 19  # a bigint's digits
