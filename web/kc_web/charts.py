"""Server-rendered SVG charts (no JavaScript, no inline styles: classes styled by kc.css)."""
import itertools
from decimal import Decimal

from markupsafe import Markup, escape

from kc_web.formats import month_name, number, parse_date, to_decimal

_ids = itertools.count(1)


def _nice_max(value):
    value = max(Decimal(value), Decimal(1))
    magnitude = Decimal(10) ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        top = Decimal(str(step)) * magnitude
        if top >= value:
            return top
    return value


def traffic_chart(months, included_gb, title="Traffic"):
    """Bars: traffic used per month; dashed line: what is included; the running month's
    projection as a lighter bar; months over the included traffic in red."""
    included = to_decimal(included_gb) or Decimal(0)
    rows = [(m["month"], to_decimal(m["used_gb"]) or Decimal(0), to_decimal(m.get("projected_gb")),
             bool(m.get("over_use")), bool(m.get("complete", True))) for m in months]
    if not rows:
        return Markup('<p class="muted">Noch keine Traffic-Daten.</p>')
    top = _nice_max(max([included] + [r[1] for r in rows] + [r[2] or 0 for r in rows]) * Decimal("1.1"))
    width, height, left, bottom, top_pad = 640, 260, 84, 36, 16
    plot_w, plot_h = width - left - 12, height - bottom - top_pad
    slot = plot_w / len(rows)
    bar_w = min(56, slot * 0.6)

    def y(value):
        return top_pad + plot_h - float(value / top) * plot_h

    uid = next(_ids)
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
             f'aria-labelledby="chart-{uid}-t chart-{uid}-d" preserveAspectRatio="xMidYMid meet">',
             f'<title id="chart-{uid}-t">{escape(title)}</title>',
             f'<desc id="chart-{uid}-d">{escape(_describe(rows, included))}</desc>']
    for i in range(5):  # grid and axis labels
        value = top * i / 4
        yy = y(value)
        parts.append(f'<line class="grid" x1="{left}" x2="{width - 12}" y1="{yy:.1f}" y2="{yy:.1f}"/>')
        unit = " GB" if i == 4 else ""
        parts.append(f'<text class="axis" x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end">{number(value)}{unit}</text>')
    for i, (month, used, projected, over, complete) in enumerate(rows):
        x = left + slot * i + (slot - bar_w) / 2
        if not complete and projected and projected > used:
            parts.append(f'<rect class="bar-projected" x="{x:.1f}" y="{y(projected):.1f}" width="{bar_w:.1f}" '
                         f'height="{y(0) - y(projected):.1f}"/>')
        cls = "bar-over" if over else "bar"
        parts.append(f'<rect class="{cls}" x="{x:.1f}" y="{y(used):.1f}" width="{bar_w:.1f}" '
                     f'height="{max(0.5, y(0) - y(used)):.1f}"/>')
        parts.append(f'<text class="value" x="{x + bar_w / 2:.1f}" y="{y(max(used, projected or 0)) - 5:.1f}" '
                     f'text-anchor="middle">{number(used)}</text>')
        label = month_name(month) + ("" if complete else " *")
        parts.append(f'<text class="axis" x="{x + bar_w / 2:.1f}" y="{height - bottom + 18}" '
                     f'text-anchor="middle">{escape(label)}</text>')
    if included:
        yy = y(included)
        parts.append(f'<line class="limit" x1="{left}" x2="{width - 12}" y1="{yy:.1f}" y2="{yy:.1f}"/>')
        parts.append(f'<text class="limit-label" x="{width - 14}" y="{yy - 5:.1f}" text-anchor="end">'
                     f'inklusive {number(included)} GB</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _describe(rows, included):
    text = [f"Inklusive {number(included)} GB je Monat."]
    for month, used, projected, over, complete in rows:
        line = f"{month_name(month)}: {number(used)} GB"
        if not complete and projected:
            line += f" bisher, hochgerechnet {number(projected)} GB"
        if over:
            line += " (mehr als inklusive)"
        text.append(line + ".")
    return " ".join(text)


def daily_chart(days, title="Traffic je Tag"):
    """The last days as a small bar chart (GB per day)."""
    if not days:
        return Markup("")
    values = [(parse_date(d["day"]), to_decimal(d["gb"]) or Decimal(0)) for d in days]
    top = _nice_max(max(v for _, v in values) * Decimal("1.1"))
    width, height, left, bottom, top_pad = 640, 160, 64, 28, 10
    plot_w, plot_h = width - left - 12, height - bottom - top_pad
    slot = plot_w / len(values)
    uid = next(_ids)
    parts = [f'<svg class="chart chart-daily" viewBox="0 0 {width} {height}" role="img" '
             f'aria-labelledby="chart-{uid}-t"><title id="chart-{uid}-t">{escape(title)}</title>']
    for i in range(3):
        value = top * i / 2
        yy = top_pad + plot_h - float(value / top) * plot_h
        parts.append(f'<line class="grid" x1="{left}" x2="{width - 12}" y1="{yy:.1f}" y2="{yy:.1f}"/>')
        parts.append(f'<text class="axis" x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end">{number(value)}</text>')
    for i, (day, value) in enumerate(values):
        h = float(value / top) * plot_h
        x = left + slot * i + slot * 0.15
        parts.append(f'<rect class="bar" x="{x:.1f}" y="{top_pad + plot_h - h:.1f}" width="{slot * 0.7:.1f}" '
                     f'height="{max(h, 0.5):.1f}"><title>{day.strftime("%d.%m.")}: {number(value, 1)} GB</title></rect>')
        if i % 5 == 0:
            parts.append(f'<text class="axis" x="{x + slot * 0.35:.1f}" y="{height - 8}" text-anchor="middle">'
                         f'{day.strftime("%d.%m.")}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
