"""Keys as a person can read them: a newline, a tab or a trailing space is otherwise invisible
on a page, and `a\\nb` would look like `a b`. Control characters are shown as their Unicode
control pictures (␊ ␉ ␍), spaces at either end as ␠; in HTML these sit in a span of their own
(class "ctl"), so a key that really holds the character ␊ still looks different."""

from django import template
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

NAMES = {"\t": "tab", "\n": "newline (LF)", "\r": "carriage return (CR)", " ": "space"}


def _picture(char: str) -> str | None:
    code = ord(char)
    if code < 0x20:
        return chr(0x2400 + code)  # the Control Pictures block: U+2400 + the C0 code
    if code == 0x7F:
        return "\u2421"  # ␡
    return None


def _parts(key: str) -> list[tuple[str, bool]]:
    """(text, is_a_picture) runs of the key."""
    body = key.strip(" ")
    lead = len(key) - len(key.lstrip(" "))
    trail = len(key) - lead - len(body) if body else 0
    parts: list[tuple[str, bool]] = [(" ", True)] * lead
    for char in body:
        parts.append((char, _picture(char) is not None))
    parts += [(" ", True)] * trail
    return parts


@register.filter
def show_key(key: str) -> SafeString:
    """The key as HTML, with its invisible characters made visible."""
    html = []
    for char, special in _parts(key):
        if special:
            picture = "\u2420" if char == " " else _picture(char)
            name = NAMES.get(char, f"U+{ord(char):04X}")
            html.append(format_html('<span class="ctl" title="{}">{}</span>', name, picture))
        else:
            html.append(escape(char))
    return mark_safe("".join(html))  # every part escaped above


@register.filter
def plain_key(key: str) -> str:
    """The key as plain text (a confirmation prompt), with its invisible characters made
    visible the same way."""
    return "".join(
        ("\u2420" if char == " " else _picture(char) or char) if special else char
        for char, special in _parts(key)
    )
