"""Bar charts as server-rendered SVG: no script, no CDN, readable without JavaScript.

A chart library would bring a script (and a CSP exception) for what is here a row of rectangles;
each bar carries a <title>, so hovering or a screen reader gives its exact figure.
"""

from dataclasses import dataclass

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

WIDTH, HEIGHT = 720, 180
LEFT, BOTTOM, TOP = 44, 22, 10  # room for the y labels, the x labels and the top label


@dataclass(frozen=True)
class Bar:
    label: str  # under the bar (only some are drawn) and in its tooltip
    value: int
    live: bool = False  # the current hour, read from Redis rather than the rolled-up table


def _nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5 x 10^n at or above value, so the axis reads in round figures."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def bar_chart(bars: list[Bar], *, label_every: int, title: str) -> SafeString:
    top = _nice_ceiling(max([bar.value for bar in bars] + [1]))
    plot_w, plot_h = WIDTH - LEFT, HEIGHT - BOTTOM - TOP
    slot = plot_w / max(len(bars), 1)
    gap = min(2.0, slot * 0.2)
    rects, labels = [], []
    for i, bar in enumerate(bars):
        h = plot_h * bar.value / top
        x = LEFT + i * slot
        rects.append(
            (
                "bar live" if bar.live else "bar",
                f"{x + gap / 2:.1f}",
                f"{TOP + plot_h - h:.1f}",
                f"{slot - gap:.1f}",
                f"{h:.1f}",
                f"{bar.label}: {bar.value:,} requests" + (" (live)" if bar.live else ""),
            )
        )
        if i % label_every == 0:
            labels.append((f"{x + slot / 2:.1f}", HEIGHT - 6, bar.label))
    body = format_html_join(
        "",
        '<rect class="{}" x="{}" y="{}" width="{}" height="{}"><title>{}</title></rect>',
        rects,
    )
    xlabels = format_html_join("", '<text x="{}" y="{}" text-anchor="middle">{}</text>', labels)
    axis = format_html(
        '<line class="axis" x1="{}" y1="{}" x2="{}" y2="{}"/>'
        '<text x="{}" y="{}" text-anchor="end">{}</text>'
        '<text x="{}" y="{}" text-anchor="end">0</text>',
        LEFT,
        TOP + plot_h,
        WIDTH,
        TOP + plot_h,
        LEFT - 6,
        TOP + 8,
        f"{top:,}",
        LEFT - 6,
        TOP + plot_h,
    )
    return format_html(
        '<svg class="chart" viewBox="0 0 {} {}" role="img" aria-label="{}">{}{}{}</svg>',
        WIDTH,
        HEIGHT,
        title,
        axis,
        body,  # format_html_join escaped every value; the result is safe to nest
        xlabels,
    )
