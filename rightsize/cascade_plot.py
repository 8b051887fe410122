"""The cascades' chart: each cascade's accuracy–energy curve over thresholds beside the single rungs.

Three kinds of mark, never confused: single rungs as measured (circles with their interval), the
cascade configs as measured (stars with their interval, in their curve's colour), and each curve,
derived from measured per-stage figures (a dashed line through small dots, a few thresholds
written on it). What is derived and what is measured is the caller's (:mod:`rightsize.report_cascades`).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Sequence

from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from rightsize.plots import DPI, GREY, HEIGHT_IN, OKABE_ITO, WIDTH_IN, ParetoView, Point, joules_ticks

CURVE_COLOURS = (OKABE_ITO["blue"], OKABE_ITO["vermillion"], OKABE_ITO["green"], OKABE_ITO["purple"],
                 OKABE_ITO["orange"], OKABE_ITO["sky"])
MARKED_THRESHOLDS = (0.5, 0.7, 0.9)  # written beside the curve


@dataclass(frozen=True)
class CurveLine:
    """One cascade: its derived curve (``thresholds``, ``x`` J/query, ``y`` metric, in threshold order)
    and its measured configs."""

    name: str
    thresholds: Sequence[float]
    x: Sequence[float]
    y: Sequence[float]
    measured: Sequence[Point] = ()


@dataclass(frozen=True)
class CascadeView:
    """Everything the cascades' chart shows, already decided by the caller."""

    metric: str
    singles: Sequence[Point]
    curves: Sequence[CurveLine]
    target: float | None = None  # the target line's height
    target_label: str = ""
    title: str = ""
    caption: str = ""
    labelled: Sequence[str] = field(default_factory=tuple)  # keys of the singles to name


def _with_intervals(ax, points: Sequence[Point], **style) -> None:
    """Measured points with their 95% interval bars."""
    ax.errorbar([p.x for p in points], [p.y for p in points], capsize=3, **style,
                yerr=[[max(p.y - p.lo, 0) for p in points], [max(p.hi - p.y, 0) for p in points]])


def draw_cascades(view: CascadeView) -> Figure:
    """Build the figure (not saved). Raises ValueError when there is nothing to plot."""
    xs = [p.x for p in view.singles if p.x > 0] + [x for c in view.curves for x in c.x if x > 0]
    if not xs or not view.curves:
        raise ValueError("no cascade curve with a positive J/query to plot")
    fig = plt.figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    ax = fig.add_axes((0.08, 0.2, 0.62, 0.7))
    singles = [p for p in view.singles if p.x > 0]
    if singles:
        _with_intervals(ax, singles, fmt="o", ms=7, color=OKABE_ITO["black"], mfc="white", zorder=4,
                        label="single rung (measured)")
        for p in singles:
            if p.key in view.labelled:
                ax.annotate(p.name, (p.x, p.y), xytext=(6, -12), textcoords="offset points", fontsize=8.5, zorder=6,
                            bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.85))
    for i, curve in enumerate(view.curves):
        colour = CURVE_COLOURS[i % len(CURVE_COLOURS)]
        ax.plot(curve.x, curve.y, "--", marker=".", ms=3, lw=1.2, color=colour, zorder=3,
                label=textwrap.fill(f"{curve.name}: over thresholds (derived)", 34))
        for t, x, y in zip(curve.thresholds, curve.x, curve.y):
            if any(abs(t - m) < 1e-9 for m in MARKED_THRESHOLDS):
                ax.annotate(f"{t:g}", (x, y), xytext=(-4, 4), textcoords="offset points", fontsize=7.5,
                            color=colour, ha="right")
        if curve.measured:
            _with_intervals(ax, curve.measured, fmt="*", ms=12, color=colour, mec="black", mew=0.6, zorder=5,
                            label=textwrap.fill(f"{curve.name} (measured)", 34))
    if view.target is not None:
        ax.axhline(view.target, color=GREY, ls=":", lw=1, label=textwrap.fill(view.target_label or "target", 34))
    ax.set_xscale("log")
    ax.set_xlim(min(xs) / 1.6, max(xs) * 1.6)
    joules_ticks(ax)
    ax.set_xlabel(ParetoView.x_label)
    ax.set_ylabel(f"{view.metric} (validation) — higher is better")
    ax.set_title(view.title, fontsize=11, loc="left")
    ax.grid(color="#eeeeee", zorder=0)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, fontsize=8)
    if view.caption:
        fig.text(0.01, 0.01, textwrap.fill(view.caption, 150), fontsize=7.5, va="bottom", ha="left", color="#333333")
    return fig
