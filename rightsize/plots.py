"""The report's charts: the accuracy–energy Pareto plot (every config as a point with its interval,
J/query on a log axis), and where and when energy is drawn (lifetime carbon by region; the grid's
hour-of-day intensity with the window and chosen starts).

Readability rules: Okabe–Ito colours plus distinct marker shapes (so colour is never the only cue);
labels on the configs a reader acts on (the recommended, the largest, the front) and on the others
while they fit; label boxes placed in display space so that none overlaps another label, a point
or the axes edge; a label that cannot be placed cleanly is dropped rather than drawn over another
(the recommended and the largest are placed first, so they always get the best spot). The plot
knows nothing about the policy: :mod:`rightsize.report_document` decides what is adequate, recommended and
on the front.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import matplotlib
import numpy as np

matplotlib.use("Agg")  # files only; never open a window (CI, servers)

from matplotlib import pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Text  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402

from rightsize.tables import human_joules  # noqa: E402

# Okabe & Ito (2008), "Color Universal Design": distinguishable with every common colour-vision deficiency.
OKABE_ITO = {
    "black": "#000000", "orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73",
    "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7",
}
GREY = "#8C8C8C"

WIDTH_IN, HEIGHT_IN, DPI = 10.0, 6.0, 120  # 1200 x 720 px: sharp in a PR comment, small as a file
FORMATS = ("png", "svg")


@dataclass(frozen=True)
class Point:
    """One evaluated config: ``x`` its energy (J/query, or lifetime joules), ``y`` the metric, ``lo``/``hi``
    its interval."""

    key: str
    name: str
    x: float
    y: float
    lo: float
    hi: float
    adequate: bool | None = None  # None: not assessed
    trained: bool = False  # its fit trains model weights: drawn with its own marker


@dataclass(frozen=True)
class ParetoView:
    """Everything the plot shows, already decided by the caller."""

    points: Sequence[Point]
    metric: str
    front: Sequence[str] = ()            # keys of the Pareto front (any order)
    recommended: str | None = None       # key
    largest: str | None = None           # key
    threshold: float | None = None       # the target line's height
    threshold_label: str = ""
    title: str = ""
    caption: str = ""
    split: str = "validation"
    extra_labels: Sequence[str] = field(default_factory=tuple)  # more keys to label if there is room, after the front
    x_label: str = "energy per query (J/query, log scale) — lower is better"


def draw_pareto(view: ParetoView) -> Figure:
    """Build the figure (not saved). Raises ValueError when there is nothing to plot."""
    points = [p for p in view.points if p.x > 0]
    if not points:
        raise ValueError("no evaluated config with a positive J/query to plot")
    by_key = {p.key: p for p in points}
    fig = plt.figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    # Fixed margins (no tight/constrained layout): label placement works in display space and
    # must not be moved afterwards. Right margin holds the legend, bottom the caption.
    ax = fig.add_axes((0.08, 0.2, 0.62, 0.7))
    ax.set_xscale("log")

    assessed = any(p.adequate is not None for p in points)
    for trained, marker, tag in ((False, "o", ""), (True, "s", ", trained")):  # a square: its fit trains weights
        adequate = [p for p in points if p.adequate and p.trained == trained]
        other = [p for p in points if not p.adequate and p.trained == trained]
        _scatter(ax, other, marker=marker, face="white", edge=GREY,
                 label=("not adequate" if assessed else "config") + tag, z=3)
        _scatter(ax, adequate, marker=marker, face=OKABE_ITO["blue"], edge=OKABE_ITO["blue"], label="adequate" + tag,
                 z=4)

    front = sorted((by_key[k] for k in view.front if k in by_key), key=lambda p: p.x)
    if front:
        # The best metric reachable within each energy budget: a step up at each front config.
        ax.plot([p.x for p in front], [p.y for p in front], drawstyle="steps-post", color=OKABE_ITO["sky"],
                lw=2, zorder=2, label="Pareto front")
    if view.threshold is not None:
        ax.axhline(view.threshold, color=OKABE_ITO["green"], ls="--", lw=1.5, zorder=1,
                   label=textwrap.fill(view.threshold_label or f"target {view.threshold:.3g}", 34))
    largest = by_key.get(view.largest) if view.largest else None
    if largest is not None:
        ax.scatter([largest.x], [largest.y], s=190, marker="D", facecolors="none", edgecolors=OKABE_ITO["purple"],
                   linewidths=2, zorder=5, label="largest config")
    rec = by_key.get(view.recommended) if view.recommended else None
    if rec is not None:
        ax.scatter([rec.x], [rec.y], s=320, marker="*", color=OKABE_ITO["vermillion"], edgecolors="black",
                   linewidths=0.6, zorder=6, label="recommended")

    _limits(ax, points, view.threshold)
    joules_ticks(ax)
    ax.set_xlabel(view.x_label)
    ax.set_ylabel(f"{view.metric} on {view.split} — higher is better")
    ax.grid(True, which="major", color="#E5E5E5", lw=0.8, zorder=0)
    ax.set_axisbelow(True)
    if view.title:
        ax.set_title(view.title, loc="left", fontsize=12, fontweight="bold")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, fontsize=9, borderaxespad=0,
              markerscale=0.8, labelspacing=0.9)
    if view.caption:
        # ~7 px per character at 8.5 pt and 120 dpi: wrap to the figure's width less its margins.
        fig.text(0.04, 0.015, textwrap.fill(view.caption, int(WIDTH_IN * DPI * 0.92 / 7.2)), fontsize=8.5,
                 va="bottom", ha="left", color="#333333")

    _place_labels(fig, ax, view, points, by_key)
    return fig


def joules_ticks(ax) -> None:
    """Tick the log x axis (its limits set) in joules with units."""
    lo, hi = ax.get_xlim()
    # 1-2-5 ticks read well over a few decades; over more they collide, so decades only.
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if hi / lo < 1e3 else (1.0,)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: human_joules(v)))
    ax.xaxis.set_minor_formatter(NullFormatter())


def save_pareto(view: ParetoView, out_dir: str | Path, formats: Sequence[str] = FORMATS,
                stem: str = "pareto") -> list[Path]:
    """Draw and write ``<stem>.<fmt>`` for each format; returns the paths written."""
    return save_figure(draw_pareto(view), out_dir, formats, stem)


def save_figure(fig: Figure, out_dir: str | Path, formats: Sequence[str], stem: str) -> list[Path]:
    """Write ``<stem>.<fmt>`` of a drawn figure for each format, then close it; the paths written."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        plt.close(fig)
        raise ValueError(f"unknown plot format {unknown[0]!r} (choose from {', '.join(FORMATS)})")
    out = Path(out_dir)
    paths = []
    try:
        for fmt in formats:
            path = out / f"{stem}.{fmt}"
            # Fixed metadata keeps the files reproducible (no creation date in them).
            meta = {"Software": "rightsize"} if fmt == "png" else {"Date": None, "Creator": "rightsize"}
            fig.savefig(path, format=fmt, dpi=DPI, metadata=meta)
            paths.append(path)
    finally:
        plt.close(fig)
    return paths


# ------------------------------------------------------------------------------------ where and when


@dataclass(frozen=True)
class RegionBars:
    """Lifetime carbon of each role (recommended, largest) in each region, regions in order."""

    regions: Sequence[str]
    grams: dict[str, Sequence[float]]  # role -> one value per region
    title: str = ""
    caption: str = ""


def draw_regions(view: RegionBars) -> Figure:
    """Grouped horizontal bars: one group per region, one bar per role, gCO2e on the x axis."""
    fig, ax = plt.subplots(figsize=(WIDTH_IN, max(3.0, 1.2 + 0.45 * len(view.regions) * len(view.grams))))
    colours, hatches = (OKABE_ITO["blue"], OKABE_ITO["orange"], OKABE_ITO["green"]), ("", "//", "..")
    height = 0.8 / max(len(view.grams), 1)
    y = np.arange(len(view.regions))
    for i, (role, values) in enumerate(view.grams.items()):
        ax.barh(y + i * height, values, height, label=role, color=colours[i % 3], hatch=hatches[i % 3],
                edgecolor="white")
    ax.set_yticks(y + height * (len(view.grams) - 1) / 2, [r.upper() for r in view.regions])
    ax.invert_yaxis()
    ax.set_xlabel("lifetime carbon (gCO2e) — lower is better")
    ax.set_title(view.title, fontsize=11, loc="left")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=8)
    ax.grid(axis="x", color="#e5e5e5")
    if view.caption:
        fig.text(0.01, 0.005, textwrap.fill(view.caption, 150), fontsize=7.5, va="bottom", ha="left", color="#333333")
    fig.tight_layout(rect=(0, 0.08 if view.caption else 0, 1, 1))
    return fig


@dataclass(frozen=True)
class HourlyView:
    """Mean grid intensity for each hour of the day, with a window and chosen starts marked."""

    hourly: Sequence[float]  # 24 values
    clock: str  # the time zone the hours are read on
    window: tuple[float, float] | None = None  # (start hour, end hour) on that clock, end may exceed 24
    starts: dict[str, float] = field(default_factory=dict)  # job -> chosen start hour on that clock
    title: str = ""
    caption: str = ""


def draw_hourly(view: HourlyView) -> Figure:
    """A step line of the 24 hourly intensities; the window shaded, each chosen start a dashed line."""
    fig, ax = plt.subplots(figsize=(WIDTH_IN, 4.5))
    hours = np.arange(25)
    ax.step(hours, [*view.hourly, view.hourly[-1]], where="post", color=OKABE_ITO["black"], label="grid intensity")
    if view.window:
        start, end = view.window
        for a, b in ((start, min(end, 24.0)), (0.0, end - 24.0)) if end > 24 else ((start, end),):
            ax.axvspan(a, b, color=OKABE_ITO["sky"], alpha=0.25, label="window" if a == start else None)
    styles = ("--", ":", "-.")
    for i, (job, hour) in enumerate(view.starts.items()):
        ax.axvline(hour, color=OKABE_ITO["vermillion"], linestyle=styles[i % 3], label=f"best start: {job}")
    ax.set_xlim(0, 24)
    ax.set_xticks(range(0, 25, 3))
    ax.set_xlabel(f"hour of day ({view.clock})")
    ax.set_ylabel("gCO2e/kWh")
    ax.set_ylim(bottom=0)
    ax.set_title(view.title, fontsize=11, loc="left")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=8)
    if view.caption:
        fig.text(0.01, 0.005, textwrap.fill(view.caption, 150), fontsize=7.5, va="bottom", ha="left", color="#333333")
    fig.tight_layout(rect=(0, 0.08 if view.caption else 0, 1, 1))
    return fig


# ------------------------------------------------------------------------------------ drawing parts


def _scatter(ax, points: Sequence[Point], *, marker: str, face: str, edge: str, label: str, z: int) -> None:
    if not points:
        return
    xs, ys = [p.x for p in points], [p.y for p in points]
    err = [[max(p.y - p.lo, 0) for p in points], [max(p.hi - p.y, 0) for p in points]]
    ax.errorbar(xs, ys, yerr=err, fmt="none", ecolor=edge if face == "white" else face, elinewidth=1.2,
                capsize=3, zorder=z - 1, alpha=0.9)
    ax.scatter(xs, ys, s=55, marker=marker, facecolors=face, edgecolors=edge, linewidths=1.5, zorder=z, label=label)


def _limits(ax, points: Sequence[Point], threshold: float | None) -> None:
    xs = [p.x for p in points]
    lo_x, hi_x = min(xs), max(xs)
    # At least a factor 10 of x range, plus room either side for labels; more on the right, where
    # the largest config (usually the costliest) needs its label to fit.
    span = max(hi_x / lo_x, 10.0)
    centre = (lo_x * hi_x) ** 0.5
    ax.set_xlim(centre / span ** 0.5 / 2.5, centre * span ** 0.5 * 2.5 * max(1.0, span ** 0.12))
    ys = [p.lo for p in points] + [p.hi for p in points] + ([threshold] if threshold is not None else [])
    y0, y1 = min(ys), max(ys)
    pad = max(y1 - y0, 0.02)
    ax.set_ylim(y0 - 0.12 * pad, y1 + 0.18 * pad)


# ------------------------------------------------------------------------------------ label placement

# Offsets in points, tried in order: close by first (no leader line), then further out.
_RINGS = (9, 20, 34, 52)
# (dx, dy, horizontal alignment): above and below, a label may also run left or right of its point.
_DIRECTIONS = ((1, 1, "left"), (1, -1, "left"), (-1, 1, "right"), (-1, -1, "right"), (1, 0, "left"),
               (-1, 0, "right"), (0, 1, "center"), (0, -1, "center"), (0, 1, "right"), (0, 1, "left"),
               (0, -1, "right"), (0, -1, "left"))
_SAME_SPOT = 8.0  # px: markers closer than this overlap on screen


def _label_text(p: Point, view: ParetoView, compact: bool = False) -> str:
    tags = []
    if p.key == view.recommended:
        tags.append("recommended")
    if p.key == view.largest:
        tags.append("largest")
    return p.name + (("\n" if compact else " ") + f"({', '.join(tags)})" if tags else "")


def _place_labels(fig: Figure, ax, view: ParetoView, points: Sequence[Point], by_key: dict[str, Point]) -> None:
    """Annotate the chosen points so that no two label boxes overlap (greedy, most important first).

    Each label tries offsets ring by ring (further rings draw a leader line) and takes the first spot
    whose box stays inside the axes and touches no data (markers, interval bars, the target rule, the
    front) and no placed label or leader; a leader may cross data, never a label. Configs drawn on
    the same spot share one label. A label with no clean spot is dropped, except the recommended and
    the largest, which take their least-bad spot (they are placed first, so at worst they sit on data,
    never on another label).
    """
    order: list[str] = []
    for key in [view.recommended, view.largest, *sorted(view.front, key=lambda k: by_key[k].x if k in by_key else 0),
                *view.extra_labels]:
        if key and key in by_key and key not in order:
            order.append(key)
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer).padded(-2)
    # Every marker and its interval bar (thin, with caps) are obstacles, so labels do not sit on data.
    obstacles: dict[str, list[Bbox]] = {}
    for p in points:
        cx, cy = ax.transData.transform((p.x, p.y))
        _, lo = ax.transData.transform((p.x, p.lo))
        _, hi = ax.transData.transform((p.x, p.hi))
        obstacles[p.key] = [Bbox.from_extents(cx - 7, cy - 7, cx + 7, cy + 7),
                            Bbox.from_extents(cx - 2, min(lo, cy), cx + 2, max(hi, cy)),
                            Bbox.from_extents(cx - 6, lo - 2, cx + 6, lo + 2), Bbox.from_extents(cx - 6, hi - 2, cx + 6, hi + 2)]
    # Lines are obstacles too: the target rule and each segment of the front's steps.
    lines: list[Bbox] = []
    if view.threshold is not None:
        _, ty = ax.transData.transform((frame.x0, view.threshold))
        lines.append(Bbox.from_extents(frame.x0, ty - 3, frame.x1, ty + 3))
    front = sorted((by_key[k] for k in view.front if k in by_key), key=lambda q: q.x)
    for a, b in zip(front, front[1:]):
        (ax_, ay), (bx, by_) = ax.transData.transform((a.x, a.y)), ax.transData.transform((b.x, b.y))
        lines.append(Bbox.from_extents(ax_, ay - 2, bx, ay + 2))                       # along, at a's height
        lines.append(Bbox.from_extents(bx - 2, min(ay, by_), bx + 2, max(ay, by_)))  # up to b
    placed: list[Bbox] = []  # label boxes, and the dots of their leader lines: nothing may cross them
    scale = fig.dpi / 72.0
    where = {k: ax.transData.transform((q.x, q.y)) for k, q in by_key.items()}
    named: set[str] = set()
    for key in order:
        if key in named:
            continue
        p = by_key[key]
        px, py = where[key]
        # Configs drawn on top of each other share one label (the more important one first).
        twins = [k for k in order if k != key and k not in named
                 and abs(where[k][0] - px) < _SAME_SPOT and abs(where[k][1] - py) < _SAME_SPOT]
        named.update([key, *twins])
        # A label may touch its own markers (it names them), never an interval bar, its own included.
        blocked = _extents([b for k, boxes in obstacles.items() for i, b in enumerate(boxes)
                            if not (i == 0 and (k == key or k in twins))] + lines)
        bold = key == view.recommended
        muted = key not in view.front and key not in (view.recommended, view.largest)
        # The one-line label first; if it has no clean spot, the narrower form with tags on their own line.
        best: tuple | None = None
        taken = _extents(placed)
        for compact in (False, True):
            text = "\n".join(_label_text(by_key[k], view, compact) for k in [key, *twins])
            # A label's box only moves with its offset: measure it once, then place it by arithmetic.
            probe = _annotate(ax, p, text, 0, 0, "left", bold=bold, leader=False, muted=muted)
            size = text_box(probe, renderer)
            probe.remove()
            for ring in _RINGS:
                for dx, dy, ha in _DIRECTIONS:
                    leader = ring > _RINGS[0]
                    if leader and dx == 0:  # a vertical leader would run along the point's own interval bar
                        continue
                    ox, oy = px + dx * ring * scale, py + dy * ring * scale
                    box = _box_at(ox, oy, size.width, size.height, ha, dy).padded(2)
                    mine = _extents([box])
                    cost = (0.0 if _contains(frame, box) else 1e9) + _overlap(mine, blocked)
                    if leader:  # a leader may cross data, never another label or leader
                        mine = np.vstack([mine, _extents(_leader_dots((ox, oy), (px, py)))])
                    cost += 100 * _overlap(mine, taken)
                    if best is None or cost < best[0]:
                        best = (cost, dx * ring, dy * ring, leader, ha, text)
                    if cost == 0:
                        break
                if best[0] == 0:
                    break
            if best[0] == 0:
                break
        if best is None or (best[0] > 0 and key not in (view.recommended, view.largest)):
            continue
        ann = _annotate(ax, p, best[5], best[1], best[2], best[4], bold=bold, leader=best[3], muted=muted)
        placed.append(text_box(ann, renderer).padded(2))
        if best[3]:
            placed.extend(_leader_dots((px + best[1] * scale, py + best[2] * scale), (px, py)))


def _leader_dots(start: tuple[float, float], end: tuple[float, float], step: float = 5.0) -> list[Bbox]:
    """Small boxes along a leader line (display space), stopping short of the point it marks."""
    (x0, y0), (x1, y1) = start, end
    length = ((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5
    n = int(max(length - 10, 0) // step)  # the last 10 px touch the point's own marker
    return [Bbox.from_extents(x - 1.5, y - 1.5, x + 1.5, y + 1.5)
            for x, y in ((x0 + (x1 - x0) * i * step / length, y0 + (y1 - y0) * i * step / length)
                         for i in range(n + 1))] if length else []


def _box_at(x: float, y: float, width: float, height: float, ha: str, dy: float) -> Bbox:
    """The display box of a ``width`` x ``height`` label anchored at (x, y) as :func:`_annotate` aligns it."""
    x0 = x if ha == "left" else x - width if ha == "right" else x - width / 2
    y0 = y if dy > 0 else y - height if dy < 0 else y - height / 2
    return Bbox.from_bounds(x0, y0, width, height)


def text_box(ann, renderer) -> Bbox:
    """The box of an annotation's text alone (its leader line may cross other things)."""
    ann.update_positions(renderer)
    return Text.get_window_extent(ann, renderer)


def _annotate(ax, p: Point, text: str, dx: float, dy: float, ha: str, *, bold: bool, leader: bool,
              muted: bool = False):
    va = "bottom" if dy > 0 else "top" if dy < 0 else "center"
    # The leader starts at the label's anchor corner, where placement checked it (by default
    # matplotlib starts it at the box's centre, and the drawn line could then cross another label).
    start = ({"left": 0.0, "center": 0.5, "right": 1.0}[ha], {"bottom": 0.0, "center": 0.5, "top": 1.0}[va])
    return ax.annotate(
        text, (p.x, p.y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va, fontsize=9,
        color="#595959" if muted else "black",
        fontweight="bold" if bold else "normal", zorder=7,
        bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="none", alpha=0.85),
        arrowprops=dict(arrowstyle="-", color="#555555", lw=0.7, shrinkA=0, shrinkB=4, relpos=start)
        if leader else None,
    )


def _contains(frame: Bbox, box: Bbox) -> bool:
    return frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1


def _extents(boxes: Sequence[Bbox]) -> np.ndarray:
    return np.array([b.extents for b in boxes], dtype=float).reshape(-1, 4)


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Total overlap area (px²) between every box of ``a`` and every box of ``b`` (rows x0, y0, x1, y1)."""
    if not len(a) or not len(b):
        return 0.0
    w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    return float((np.clip(w, 0, None) * np.clip(h, 0, None)).sum())


def label_boxes(fig: Figure) -> list[Bbox]:
    """Display-space boxes of the point labels drawn on ``fig`` (for checks that none overlap)."""
    renderer = fig.canvas.get_renderer()
    return [text_box(t, renderer) for ax in fig.axes for t in ax.texts]
