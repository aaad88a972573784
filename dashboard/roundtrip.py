"""Keys and values through a browser's forms and links, unchanged.

A key may hold any character but NUL, yet a browser drops the newlines of an <input>'s value,
and the HTML parser turns every CR of a page into LF. So a key never travels as text in a page:
links and hidden fields carry it as base64url of its UTF-8 bytes (the encoding of the API's
cursor), which nothing between the page and the server changes.

A value is edited in a <textarea>, whose text a browser submits with every line break as CRLF
(HTML's form submission), whatever the stored value used. The form says which line ending the
value keeps (LF or CRLF, preset from the stored value), and the submitted text is given back
that ending, so saving an unchanged value stores the same bytes.
"""

import base64
import binascii

from api import inputs
from api.errors import BadRequest

LF, CRLF = "lf", "crlf"


def key_ref(key: str) -> str:
    """The key as it travels in a page: base64url of its UTF-8 bytes, without padding."""
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def key_from_ref(ref: str) -> str:
    """The key a page sent (see key_ref); BadRequest if the reference was damaged."""
    try:
        padded = ref + "=" * (-len(ref) % 4)
        key = base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeError, ValueError):
        raise BadRequest(
            "this link does not name a key: open the key again from the bucket's page"
        ) from None
    return inputs.check_key(key)


def text_of(value: bytes) -> str | None:
    """The value as text a <textarea> can hold exactly, or None (binary, or holding NUL, which
    the HTML parser replaces)."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if "\x00" in text else text


def preview(head: bytes, size: int, chars: int) -> tuple[str, bool] | None:
    """The first `chars` characters of a text value and whether it has more, from its first
    bytes `head` (of `size` in all: a list need not load whole values); None if the value is
    binary or holds NUL (see text_of). A head cut inside a character is still text."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as error:
        # A UTF-8 character is at most 4 bytes: an error in the last 3 may be the cut.
        cut_short = len(head) < size and error.start >= len(head) - 3
        if not cut_short:
            return None
        text = head[: error.start].decode("utf-8")
    if "\x00" in text:
        return None
    return text[:chars], len(text) > chars or len(head) < size


def line_ending(text: str) -> str:
    """CRLF if every line break of the text is CRLF, else LF (also for text with none)."""
    breaks = text.count("\n") + text.replace("\r\n", "").count("\r")
    return CRLF if breaks and text.count("\r\n") == breaks else LF


def mixes_line_endings(text: str) -> bool:
    """True if the text has both LF and CRLF breaks, or a lone CR: a textarea cannot keep it."""
    lone_cr = text.replace("\r\n", "").count("\r")
    crlf = text.count("\r\n")
    lf = text.count("\n") - crlf
    return bool(lone_cr) or (bool(crlf) and bool(lf))


def from_textarea(text: str, ending: str) -> str:
    """The submitted text with every line break made `ending` (the browser sent CRLF)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.replace("\n", "\r\n") if ending == CRLF else text
