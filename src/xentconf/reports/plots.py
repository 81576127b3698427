"""Geometry of the accuracy plots: strip-and-box plots of errors in budget units, log scale.

No plotting library: this module only computes coordinates and labels (plain numbers and
strings); the template ``_plots.html.j2`` writes them out as inline SVG, escaped like
everything else. One plot per API; one strip per target run × dtype showing every
example's worst error (``samples``, in units of the ``stable`` budget: 1 is the limit of a
pass), a box from the lower to the upper quartile with the median, and the worst error
of the strip (``worst_budget``) as a diamond. Zeros (bit-exact examples) cannot sit on a
log axis and get their own lane left of it; values beyond the axis are drawn at its ends.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from xentconf.results import json_number

__all__ = ["MAP_COLOURINGS", "Domain", "Strip", "StripPlot", "StripRow", "SweepMap", "fmt_num",
           "log_domain", "strip_plot", "sweep_map"]

#: viewBox geometry (user units; the SVG scales to the page width).
WIDTH = 1100
LABEL_RIGHT = 190  # labels end here
ZERO_X = 204  # the lane of zeros
PLOT_LEFT = 232
PLOT_RIGHT = 930
NOTE_X = 942  # the worst-error text
ROW_H = 16
TOP = 8
AXIS_H = 30
GROUP_H = 18  # the target run's heading above its strips
MAX_DOTS = 120  # more samples are thinned to this many evenly spaced quantiles


def _sci(value: float, digits: int) -> str:
    mantissa, exponent = f"{value:.{digits - 1}e}".split("e")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def fmt_num(value: float | int | None, digits: int = 3) -> str:
    """A short, readable number: ``0``, ``0.0123``, ``4.5``, ``1234``, ``2.5e7``, ``inf``."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value) if abs(value) < 10**6 else _sci(value, digits)
    if not math.isfinite(value):
        return json_number(value)
    if value == 0:
        return "0"
    if value == int(value) and abs(value) < 10**6:
        return str(int(value))
    if 1e-4 <= abs(value) < 10**6:
        text = f"{value:.{digits}g}"
        return text if "e" not in text else _sci(value, digits)
    return _sci(value, digits)


@dataclass(frozen=True)
class Domain:
    """A log10 axis from ``10**lo`` to ``10**hi`` (whole decades)."""

    lo: int = -3
    hi: int = 1

    def x(self, value: float) -> float:
        """The x coordinate of a positive ``value`` (clamped to the axis)."""
        if value <= 0:
            return PLOT_LEFT
        t = (math.log10(value) - self.lo) / (self.hi - self.lo) if math.isfinite(value) else 1.0
        t = min(max(t, 0.0), 1.0)
        return round(PLOT_LEFT + t * (PLOT_RIGHT - PLOT_LEFT), 1)

    def ticks(self) -> list[tuple[float, str]]:
        """``(x, label)`` at every decade."""
        return [(self.x(10.0**k), _decade(k)) for k in range(self.lo, self.hi + 1)]


def _decade(k: int) -> str:
    if -3 < k < 4:
        return fmt_num(10.0**k)
    return f"1e{k}"


def log_domain(values: Sequence[float], *, min_lo: int = -6, max_hi: int = 4) -> Domain:
    """The decades spanning the positive finite ``values``; always shows 10⁻¹…10¹ (the
    pass limit, 1, in the middle region) and never more than ``10**min_lo``…``10**max_hi``."""
    pos = [v for v in values if v > 0 and math.isfinite(v)]
    if not pos:
        return Domain()
    lo = min(max(math.floor(math.log10(min(pos))), min_lo), -1)
    hi = max(min(math.ceil(math.log10(max(pos))), max_hi), 1)
    return Domain(lo, hi)


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    pos = q * (len(sorted_values) - 1)
    i = math.floor(pos)
    j = min(i + 1, len(sorted_values) - 1)
    return sorted_values[i] + (sorted_values[j] - sorted_values[i]) * (pos - i)


@dataclass
class Strip:
    """The input of one strip: a dtype of one target run."""

    dtype: str
    samples: list[float]
    worst_budget: float | None = None
    worst_ulps: float | None = None


@dataclass
class StripRow:
    """One drawn strip."""

    y: float
    dtype: str
    dots: list[tuple[float, float]] = field(default_factory=list)
    zeros: int = 0
    box: tuple[float, float, float] | None = None  # q1, median, q3 (x)
    whiskers: tuple[float, float] | None = None  # min, max of the nonzero samples (x)
    worst: tuple[float, float] | None = None  # (x, y) of the diamond
    over: bool = False  # worst error beyond the budget
    clamped: bool = False  # worst error beyond the axis: drawn as an arrow at its end
    note: str = ""
    title: str = ""
    empty: bool = False


@dataclass
class StripPlot:
    """A whole plot: axis, strips and separators between target runs."""

    title: str
    subtitle: str
    width: int
    height: int
    rows: list[StripRow]
    groups: list[tuple[float, str]]  # (baseline y, label) of each target run's heading
    ticks: list[tuple[float, str]]
    separators: list[float]
    budget_x: float
    zero_x: float = ZERO_X
    plot_left: float = PLOT_LEFT
    plot_right: float = PLOT_RIGHT
    note_x: float = NOTE_X
    label_right: float = LABEL_RIGHT
    top: float = TOP
    axis_y: float = 0.0


def strip_plot(title: str, subtitle: str, groups: Sequence[tuple[str, Sequence[Strip]]],
               domain: Domain) -> StripPlot:
    """Lay out one plot: ``groups`` are ``(target run label, strips)`` in display order."""
    rows: list[StripRow] = []
    heads: list[tuple[float, str]] = []
    separators: list[float] = []
    top = TOP
    for g, (label, strips) in enumerate(groups):
        if g:
            separators.append(top)
        heads.append((top + 13, label))
        y = top + GROUP_H + ROW_H / 2
        for strip in strips:
            rows.append(_strip_row(strip, y, domain))
            y += ROW_H
        top = y - ROW_H / 2 + 4
    axis_y = top
    return StripPlot(title=title, subtitle=subtitle, width=WIDTH, height=int(axis_y + AXIS_H),
                     rows=rows, groups=heads, ticks=domain.ticks(), separators=separators,
                     budget_x=domain.x(1.0), axis_y=axis_y)


def _strip_row(strip: Strip, y: float, domain: Domain) -> StripRow:
    values = sorted(v for v in strip.samples if math.isfinite(v) or v > 0)
    row = StripRow(y=y, dtype=strip.dtype)
    row.zeros = sum(1 for v in values if v <= 0)
    positive = [v for v in values if v > 0]
    shown = positive
    if len(positive) > MAX_DOTS:
        shown = [_quantile(positive, k / (MAX_DOTS - 1)) for k in range(MAX_DOTS)]
    for k, v in enumerate(shown):
        jitter = ((k * 0.6180339887) % 1.0 - 0.5) * 9
        row.dots.append((domain.x(v), round(y + jitter, 1)))
    if positive:
        row.box = (domain.x(_quantile(positive, 0.25)), domain.x(_quantile(positive, 0.5)),
                   domain.x(_quantile(positive, 0.75)))
        row.whiskers = (domain.x(positive[0]), domain.x(positive[-1]))
    worst = strip.worst_budget
    if worst is None and values:
        worst = values[-1]
    if worst is not None and not math.isnan(worst):
        row.worst = (ZERO_X if worst <= 0 else domain.x(worst), y)
        row.over = worst > 1
        row.clamped = worst > 10.0**domain.hi
    parts = []
    if worst is not None:
        parts.append(f"{fmt_num(worst)} b")
    if strip.worst_ulps is not None:
        parts.append(f"{fmt_num(strip.worst_ulps)} ulp")
    row.note = " · ".join(parts) if parts else "no graded examples"
    row.empty = not values and worst is None
    n = len(values)
    row.title = (f"{strip.dtype}: {n} example{'s' if n != 1 else ''}"
                 + (f", {row.zeros} exact (0 error)" if row.zeros else "")
                 + (f", median {fmt_num(_quantile(values, 0.5))} b" if values else "")
                 + (f", worst {fmt_num(worst)} budget units" if worst is not None else "")
                 + (f", {fmt_num(strip.worst_ulps)} ulps" if strip.worst_ulps is not None
                    else ""))
    return row


# ------------------------------------------------------------------ sweep maps

MAP_CELL = 9  # user units per map cell
MAP_LEFT = 110  # room for the y labels
MAP_TOP = 24


@dataclass
class MapCell:
    x: float
    y: float
    w: float
    h: float
    fill: str  # the colour: grey when nothing failed, light to dark red by failure density
    title: str


@dataclass
class SweepMap:
    """A sweep's failure map: the first logit's sign and exponent across, the second's
    down; a cell's colour is the share of its rows that failed."""

    title: str
    subtitle: str
    width: int
    height: int
    cells: list[MapCell]
    xticks: list[tuple[float, str]]
    yticks: list[tuple[float, str]]
    x_label: str
    y_label: str
    legend: list[tuple[float, str, str]]  # (x, fill, text)
    left: float = MAP_LEFT
    top: float = MAP_TOP
    plot_w: float = 0.0
    plot_h: float = 0.0


_MAP_NONE = "#e6ebf0"  # no failing row / every row exact
_MAP_UNKNOWN = "#ffffff"  # not judged (a chunk that crashed), or a file without errors


def _ramp(t: float, rgb: tuple[int, int, int]) -> str:
    r, g, b = (int(round(255 + (c - 255) * t)) for c in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


def _density_fill(share: float) -> str:
    if share <= 0:
        return _MAP_NONE
    return _ramp(min(1.0, 0.25 + 0.75 * math.log10(1 + 9 * share)),  # visible at a few rows
                 (165, 15, 21))


def _error_fill(units) -> str:
    """Worst error in stable-budget units: grey when exact, blues within the budget
    (10⁻³ to 1, log scale), reds beyond it (1 to 10⁶), near-black for a wrong NaN/inf."""
    if units is None:
        return _MAP_UNKNOWN
    v = float(units)  # a results file holds inf as the string "inf"
    if v == 0:
        return _MAP_NONE
    if not math.isfinite(v):
        return "#3b0008"
    if v <= 1:
        return _ramp(0.2 + 0.6 * min(1.0, max(0.0, (math.log10(v) + 3) / 3)), (33, 102, 172))
    return _ramp(0.35 + 0.65 * min(1.0, math.log10(v) / 6), (165, 15, 21))


#: what a sweep map can be coloured by: (fill, cell text, legend)
MAP_COLOURINGS = {
    "failures": "share of rows that fail",
    "error": "worst error, in units of each row's stable budget",
}


def sweep_map(title: str, subtitle: str, sweep: dict, by: str = "failures") -> SweepMap:
    """Lay out the map of one ``sweeps`` entry of a results document, its cells coloured
    ``by`` the share of their rows that fail or by their worst error."""
    m = sweep["map"]
    xs, ys = m["x_bins"], m["y_bins"]
    ch = MAP_CELL if len(ys) > 16 else 3 * MAP_CELL
    plot_w, plot_h = len(xs) * MAP_CELL, len(ys) * ch
    cells = []
    for xb, yb, n, bad, *w in m["cells"]:
        share = bad / n if n else 0.0
        where = f"logit 0 {xs[xb]}, logit 1 {ys[yb]}: {bad} of {n} rows fail " \
                f"({100 * share:.3g}%)"
        worst = float(w[0]) if w and w[0] is not None else None
        if by == "error":
            fill = _error_fill(worst)
            where += "; worst error " + ("not recorded" if worst is None else
                                         f"{fmt_num(worst)} × the budget")
        else:
            fill = _density_fill(share)
        cells.append(MapCell(MAP_LEFT + xb * MAP_CELL, MAP_TOP + yb * ch, MAP_CELL, ch,
                             fill, where))
    step = max(1, len(xs) // 8)
    xticks = [(MAP_LEFT + (k + 0.5) * MAP_CELL, xs[k]) for k in range(0, len(xs), step)]
    ystep = max(1, len(ys) // 8)
    yticks = [(MAP_TOP + (k + 0.5) * ch, ys[k]) for k in range(0, len(ys), ystep)]
    legend_y = MAP_TOP + plot_h + 44
    if by == "error":
        keys = [(_MAP_NONE, "exact"), (_error_fill(1e-3), "10⁻³"), (_error_fill(1.0), "1"),
                (_error_fill(1e3), "10³"), (_error_fill(1e6), "≥10⁶"),
                (_error_fill(math.inf), "NaN/inf")]
        width = 82
    else:
        keys = [(_density_fill(v), text) for v, text in
                [(0, "none fail"), (0.001, "0.1%"), (0.01, "1%"), (0.1, "10%"),
                 (1.0, "all fail")]]
        width = 120
    legend = [(MAP_LEFT + i * width, fill, text) for i, (fill, text) in enumerate(keys)]
    return SweepMap(title, f"{subtitle} · {MAP_COLOURINGS[by]}",
                    max(MAP_LEFT + plot_w + 20, MAP_LEFT + len(keys) * width),
                    int(legend_y + 16), cells, xticks, yticks,
                    m.get("x") or "logit 0", m.get("y") or "logit 1", legend,
                    plot_w=plot_w, plot_h=plot_h)
