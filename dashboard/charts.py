"""Bar charts as server-rendered SVG: no script, no CDN, readable without JavaScript.

A chart library would bring a script (and a CSP exception) for what is here a row of rectangles.
Each bar sits in a group with a <title> and an invisible rectangle as tall as the plot, so
hovering anywhere in a bar's column (a bar of 0 has no height to hover) shows its exact figure,
without script; a screen reader reads the same title.
"""

from dataclasses import dataclass

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

WIDTH, HEIGHT = 720, 180
LEFT, BOTTOM, TOP = 44, 22, 10  # room for the y labels, the x labels and the top label


@dataclass(frozen=True)
class Bar:
    label: str  # under the bar: only every few are drawn, and the live bar's ("now")
    tip: str  # what the bar counts, in its tooltip: "14:00–15:00 UTC"
    value: int
    live: bool = False  # the current hour or day: still counting


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
    slots, labels = [], []
    for i, bar in enumerate(bars):
        h = plot_h * bar.value / top
        x = LEFT + i * slot
        slots.append(
            (
                "slot live" if bar.live else "slot",
                f"{bar.tip}: {bar.value:,} request{'' if bar.value == 1 else 's'}"
                + (" so far" if bar.live else ""),
                f"{x:.1f}",
                TOP,
                f"{slot:.1f}",
                plot_h,
                f"{x + gap / 2:.1f}",
                f"{TOP + plot_h - h:.1f}",
                f"{slot - gap:.1f}",
                f"{h:.1f}",
            )
        )
        # Every few bars' labels, and the live bar's ("now", ending at the chart's edge so it is
        # not cut off), with room between them.
        if bar.live:
            labels.append((f"{x + slot:.1f}", HEIGHT - 6, "end", bar.label))
        elif i % label_every == 0 and i < len(bars) - label_every / 2:
            labels.append((f"{x + slot / 2:.1f}", HEIGHT - 6, "middle", bar.label))
    body = format_html_join(
        "",
        '<g class="{}"><title>{}</title>'
        '<rect class="hit" x="{}" y="{}" width="{}" height="{}"/>'
        '<rect class="bar" x="{}" y="{}" width="{}" height="{}"/></g>',
        slots,
    )
    xlabels = format_html_join("", '<text x="{}" y="{}" text-anchor="{}">{}</text>', labels)
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
