"""Charts of daily usage, drawn on the server as inline SVG (no script, no CDN).

    Series(name, values)              one line or one layer of bars: a value per day
    stacked_bars(chart) -> SafeString  a bar per day, the series stacked (the largest at the bottom)
    lines(chart) -> SafeString         a line per series
    fold_rest(series, limit)           the first series as given, the rest summed as "other"

Both draw a y axis with round ticks, a date axis, a tooltip on every bar and point (SVG
<title>, shown on hover) and label the series where the data is: beside the end of each line,
or beside a strip showing each series' share of the window, in the stacking order. Colours come
from the series' position, so charts drawn from one ordering colour a series alike.

Every text is escaped: key names are the tenant's own input.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_CEILING, Decimal

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

Number = int | Decimal

# Colour-blind-safe (Okabe-Ito, reordered for contrast between neighbours); "other" is grey.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#332288"]
OTHER_COLOUR = "#9AA0A6"
OTHER = "other"

WIDTH, HEIGHT = 800, 240
LEFT, RIGHT, TOP, BOTTOM = 84, 220, 14, 28
PLOT_WIDTH, PLOT_HEIGHT = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
LABEL_GAP = 13  # px between two direct labels
TEXT = 'font-size="11" fill="#4a5568"'


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    values: Sequence[Number]

    @property
    def total(self) -> Number:
        return sum(self.values)


@dataclass(frozen=True, slots=True)
class Chart:
    """What to draw: ``chart_id`` (unique in the page), a title for screen readers, the days of
    the x axis, the series (a value per day each) and how to write a value: exactly in
    tooltips ("12 requests", "$0.0000015"), and shortly on the axis and the labels ("12")."""

    def short(self, value: Number) -> str:
        return (self.format_short or self.format_value)(value)

    chart_id: str
    title: str
    days: Sequence[date]
    series: Sequence[Series]
    format_value: Callable[[Number], str]
    format_short: Callable[[Number], str] | None = None  # where room is short: ticks, direct labels


def fold_rest(series: Sequence[Series], limit: int = 6) -> list[Series]:
    """The first ``limit - 1`` series as given (order them largest first) and the rest summed as
    one "other" series: a chart with twenty colours is read by nobody."""
    if len(series) <= limit:
        return list(series)
    kept, rest = series[: limit - 1], series[limit - 1:]
    return [*kept, Series(OTHER, [sum(values) for values in zip(*(s.values for s in rest), strict=True)])]


def colour_of(index: int, name: str) -> str:
    return OTHER_COLOUR if name == OTHER else PALETTE[index % len(PALETTE)]


def nice_ticks(top: Number, count: int = 4, *, whole: bool = False) -> list[Decimal]:
    """Round tick values from 0 past ``top``: steps of 1, 2, 2.5 or 5 times a power of ten
    (``whole``: counts, so never less than 1)."""
    top = Decimal(top)
    if top <= 0:
        return [Decimal(0), Decimal(1)]
    raw = top / count
    power = Decimal(10) ** (raw.adjusted())
    step = next(power * m for m in (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5), Decimal(10))
                if power * m >= raw)
    if whole:
        step = max(Decimal(1), step.to_integral_value(rounding=ROUND_CEILING))
    ticks = [Decimal(0)]
    while ticks[-1] < top:
        ticks.append(ticks[-1] + step)
    return ticks


def day_label(day: date) -> str:
    return f"{day:%b} {day.day}"


def spread(wanted: list[float], *, low: float, high: float, gap: float = LABEL_GAP) -> list[float]:
    """Label positions as near as possible to ``wanted`` (sorted ascending), at least ``gap``
    apart and within [low, high]."""
    placed: list[float] = []
    for y in wanted:
        placed.append(max(y, placed[-1] + gap) if placed else max(y, low))
    overflow = placed[-1] - high if placed else 0
    if overflow > 0:
        placed[-1] -= overflow
        for index in range(len(placed) - 2, -1, -1):
            placed[index] = min(placed[index], placed[index + 1] - gap)
    return placed


class Canvas:
    """Axes and frame shared by both kinds of chart."""

    def __init__(self, chart: Chart, top_value: Number):
        self.chart = chart
        whole = all(isinstance(value, int) for series in chart.series for value in series.values)
        self.ticks = nice_ticks(top_value, whole=whole)
        self.scale = Decimal(PLOT_HEIGHT) / self.ticks[-1]
        self.slot = PLOT_WIDTH / max(1, len(chart.days))
        self.parts: list[str] = []

    def y(self, value: Number) -> float:
        return TOP + PLOT_HEIGHT - float(Decimal(value) * self.scale)

    def x_centre(self, index: int) -> float:
        return LEFT + self.slot * (index + 0.5)

    def add(self, part: str) -> None:
        self.parts.append(part)

    def draw_axes(self) -> None:
        for tick in self.ticks:
            y = self.y(tick)
            self.add(f'<line x1="{LEFT}" x2="{LEFT + PLOT_WIDTH}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="{"#718096" if tick == 0 else "#e2e8f0"}" stroke-width="1"/>')
            self.add(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" {TEXT}>{escape(self.chart.short(tick))}</text>')
        days = self.chart.days
        for index, day in enumerate(days):
            if (len(days) - 1 - index) % 7 == 0:  # weekly, ending on the last day
                x = self.x_centre(index)
                self.add(f'<text x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="middle" {TEXT}>{escape(day_label(day))}</text>')

    def draw_empty_note(self) -> None:
        self.add(f'<text x="{LEFT + PLOT_WIDTH / 2:.1f}" y="{TOP + PLOT_HEIGHT / 2:.1f}" text-anchor="middle" '
                 f'font-size="13" fill="#718096">No usage in these {len(self.chart.days)} days</text>')

    def svg(self, description: str) -> SafeString:
        chart = self.chart
        head = (f'<svg class="chart" id="{escape(chart.chart_id)}" width="100%" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
                f'aria-labelledby="{escape(chart.chart_id)}-title {escape(chart.chart_id)}-desc" '
                f'xmlns="http://www.w3.org/2000/svg" font-family="system-ui, sans-serif">'
                f'<title id="{escape(chart.chart_id)}-title">{escape(chart.title)}</title>'
                f'<desc id="{escape(chart.chart_id)}-desc">{escape(description)}</desc>')
        return mark_safe(head + "".join(self.parts) + "</svg>")  # every text in it was escaped


def describe(chart: Chart) -> str:
    totals = ", ".join(f"{s.name or 'all'} {chart.format_value(s.total)}" for s in chart.series)
    return f"{chart.title}, {day_label(chart.days[0])} to {day_label(chart.days[-1])}: {totals or 'none'}."


def has_data(chart: Chart) -> bool:
    return any(value for series in chart.series for value in series.values)


def stacked_bars(chart: Chart) -> SafeString:
    """A bar per day, the series stacked in the given order (first at the bottom); beside the
    plot, a strip of each series' share of the window total, labelled with its name and total."""
    day_totals = [sum(values) for values in zip(*(s.values for s in chart.series), strict=True)] or [0]
    canvas = Canvas(chart, max(day_totals))
    canvas.draw_axes()
    bar_width = max(2.0, canvas.slot * 0.72)
    for index, day in enumerate(chart.days):
        x = canvas.x_centre(index) - bar_width / 2
        total = day_totals[index] if index < len(day_totals) else 0
        # The whole column answers a hover with the day's total; the segments on top of it
        # with their own value.
        canvas.add(f'<rect x="{LEFT + canvas.slot * index:.1f}" y="{TOP}" width="{canvas.slot:.1f}" '
                   f'height="{PLOT_HEIGHT}" fill="transparent"><title>{escape(day_label(day))}: '
                   f'{escape(chart.format_value(total))} in all</title></rect>')
        base: Number = 0
        for number, series in enumerate(chart.series):
            value = series.values[index]
            if not value:
                continue
            y_top, y_base = canvas.y(base + value), canvas.y(base)
            canvas.add(f'<rect x="{x:.1f}" y="{y_top:.1f}" width="{bar_width:.1f}" '
                       f'height="{max(1.0, y_base - y_top):.1f}" fill="{colour_of(number, series.name)}">'
                       f'<title>{escape(day_label(day))} · {escape(series.name or chart.title)}: '
                       f'{escape(chart.format_value(value))}</title></rect>')
            base += value
    if has_data(chart):
        draw_share_strip(canvas)
    else:
        canvas.draw_empty_note()
    return canvas.svg(describe(chart))


def draw_share_strip(canvas: Canvas) -> None:
    chart = canvas.chart
    grand = sum(s.total for s in chart.series)
    strip_x = LEFT + PLOT_WIDTH + 18
    canvas.add(f'<text x="{strip_x + 3}" y="{TOP - 4}" text-anchor="middle" font-size="9" fill="#718096">'
               f'{len(chart.days)} days</text>')
    bottom = float(TOP + PLOT_HEIGHT)
    centres, segments = [], []
    for number, series in enumerate(chart.series):
        height = float(Decimal(series.total) / Decimal(grand)) * PLOT_HEIGHT if grand else 0.0
        top = bottom - height
        if height:
            segments.append(f'<rect x="{strip_x}" y="{top:.1f}" width="6" height="{height:.1f}" '
                            f'fill="{colour_of(number, series.name)}"><title>{escape(series.name)}: '
                            f'{escape(chart.format_value(series.total))} in {len(chart.days)} days</title></rect>')
        centres.append((bottom - height / 2, number, series))
        bottom = top
    canvas.parts.extend(segments)
    centres.sort(key=lambda item: item[0])
    label_ys = spread([y for y, _, _ in centres], low=TOP + 8, high=TOP + PLOT_HEIGHT)
    for label_y, (wanted_y, number, series) in zip(label_ys, centres, strict=True):
        draw_label(canvas, strip_x + 6, wanted_y, label_y, number, series)


def draw_label(canvas: Canvas, from_x: float, wanted_y: float, label_y: float, number: int, series: Series) -> None:
    """A series' name and window total, in its colour, with a leader line when it was moved."""
    chart = canvas.chart
    if abs(label_y - wanted_y) > 1:
        canvas.add(f'<polyline points="{from_x:.1f},{wanted_y:.1f} {from_x + 6:.1f},{label_y:.1f} '
                   f'{from_x + 9:.1f},{label_y:.1f}" fill="none" stroke="#a0aec0" stroke-width="1"/>')
    name = series.name if len(series.name) <= 22 else series.name[:21] + "…"
    canvas.add(f'<text x="{from_x + 11:.1f}" y="{label_y + 4:.1f}" font-size="11" '
               f'fill="{colour_of(number, series.name)}" font-weight="600" class="series-label">'
               f'<title>{escape(series.name)}</title>{escape(name)} '
               f'<tspan fill="#4a5568" font-weight="400">{escape(chart.short(series.total))}</tspan></text>')


def lines(chart: Chart) -> SafeString:
    """A line per series with a point per day (its tooltip the day's value), each line labelled
    at its right end with its name and window total."""
    top_value = max((value for s in chart.series for value in s.values), default=0)
    canvas = Canvas(chart, top_value)
    canvas.draw_axes()
    if not has_data(chart):
        canvas.draw_empty_note()
        return canvas.svg(describe(chart))
    ends = []
    for number, series in enumerate(chart.series):
        colour = colour_of(number, series.name)
        points = [(canvas.x_centre(i), canvas.y(value)) for i, value in enumerate(series.values)]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        canvas.add(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2" '
                   'stroke-linejoin="round"/>')
        for (x, y), day, value in zip(points, chart.days, series.values, strict=True):
            canvas.add(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{3 if value else 1.5}" fill="{colour}">'
                       f'<title>{escape(day_label(day))} · {escape(series.name or chart.title)}: '
                       f'{escape(chart.format_value(value))}</title></circle>')
        ends.append((points[-1][1], number, series))
    ends.sort(key=lambda item: item[0])
    label_ys = spread([y for y, _, _ in ends], low=TOP + 8, high=TOP + PLOT_HEIGHT)
    for label_y, (wanted_y, number, series) in zip(label_ys, ends, strict=True):
        draw_label(canvas, LEFT + PLOT_WIDTH + 2, wanted_y, label_y, number, series)
    return canvas.svg(describe(chart))


def format_count(value: Number, unit: str) -> str:
    """``1,234 tokens``, ``1 request``."""
    return f"{value:,} {unit}{'' if value == 1 else 's'}"


def format_money_short(value: Number) -> str:
    """USD to four significant digits (cents from a dollar up): ``$12.50``, ``$0.001235``."""
    amount = Decimal(value)
    if amount == 0 or abs(amount) >= 1:
        return f"${amount:,.2f}"
    return format_money(round(amount, 3 - amount.adjusted()))


def format_money(value: Number) -> str:
    """Exact USD, never rounded away: ``$12.50``, ``$0.0000015``."""
    amount = Decimal(value).normalize()
    if amount == amount.to_integral_value() or amount.as_tuple().exponent > -2:
        return f"${amount:,.2f}"
    return f"${amount:,f}"


def spend_bar(*, spent: Decimal, reserved: Decimal, limit: Decimal | None) -> SafeString:
    """This month's settled spend and what requests in flight hold, against the plan's cap."""
    width, height, bar_y, bar_height = 760, 46, 6, 16
    parts = [f'<svg class="spend-bar" width="100%" viewBox="0 0 {width} {height}" role="img" aria-labelledby="spend-bar-title" '
             'xmlns="http://www.w3.org/2000/svg" font-family="system-ui, sans-serif">']
    if limit:
        share = min(Decimal(1), spent / limit)
        held = min(Decimal(1) - share, reserved / limit)
        title = (f"{format_money(spent)} spent of the {format_money(limit)} monthly limit "
                 f"({spent / limit:.1%}), {format_money(reserved)} held by requests in flight")
    else:
        share = held = Decimal(0)
        title = f"{format_money(spent)} spent this month; the plan has no spend limit"
    parts.append(f'<title id="spend-bar-title">{escape(title)}</title>')
    parts.append(f'<rect x="0" y="{bar_y}" width="{width}" height="{bar_height}" rx="3" fill="#edf2f7"/>')
    spent_width = float(share) * width
    colour = "#C53030" if share >= Decimal("0.9") else "#DD6B20" if share >= Decimal("0.75") else "#0072B2"
    if spent_width:
        parts.append(f'<rect x="0" y="{bar_y}" width="{max(1.0, spent_width):.1f}" height="{bar_height}" rx="3" '
                     f'fill="{colour}"><title>{escape(format_money(spent))} spent</title></rect>')
    if held:
        parts.append(f'<rect x="{spent_width:.1f}" y="{bar_y}" width="{max(1.0, float(held) * width):.1f}" '
                     f'height="{bar_height}" fill="{colour}" fill-opacity="0.35"><title>{escape(format_money(reserved))} '
                     'held by requests in flight</title></rect>')
    parts.append(f'<text x="0" y="{height - 4}" {TEXT}>{escape(title)}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # every text in it was escaped
