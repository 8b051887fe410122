"""The report's cascades: each cascade's accuracy–energy curve over thresholds beside the single rungs,
as a chart, a section of the report and ``cascades.json``.

The curves are derived (:mod:`rightsize.cascade_curve`) and always called so; the cascade configs
evaluated are measured and shown apart, with the policy's adequacy. Text from data (rung names) is
escaped by the renderers.
"""

from __future__ import annotations

from typing import Any, Sequence

from rightsize import recommend as policy
from rightsize.adequacy import Target
from rightsize.cascade_curve import CascadeCurve, CurvePoint
from rightsize.cascade_plot import CascadeView, CurveLine
from rightsize.plots import Point
from rightsize.records import Record
from rightsize.report_document import LABEL_ALL_UP_TO, Block, energy_words
from rightsize.tables import human_joules

SCHEMA = "rightsize.cascade-curves/1"
TABLE_THRESHOLDS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)  # the rows of each curve's table
DERIVED = ("derived from measured per-stage figures, not measured: the stages' recorded answers at each threshold, "
           "priced as each stage's own measured J/query × the share of queries reaching it")


def target_line(rec: policy.Recommendation) -> float:
    return Target.from_any(rec.target).threshold(rec.best["metric"])


def _entries(rec: policy.Recommendation) -> dict[str, dict]:
    return {e["key"]: e for e in rec.configs}


def _point(e: dict) -> Point:
    lo, hi = e["ci"] or [e["metric"]] * 2
    return Point(key=e["key"], name=e["label"], x=e["joules_per_query"] or 0.0, y=e["metric"], lo=lo, hi=hi,
                 adequate=e["adequate"])


def cascade_view(rec: policy.Recommendation, curves: Sequence[CascadeCurve],
                 watts_per_core: float | None = None) -> CascadeView:
    """The chart's content: every single config measured, each curve derived and its configs measured."""
    entries = _entries(rec)
    singles = [_point(e) for e in rec.configs if (e["config"] or {}).get("kind") != "cascade"]
    stage_rungs = {name for c in curves for name in c.stages}
    labelled = [p.key for p in singles if len(singles) <= LABEL_ALL_UP_TO or entries[p.key]["rung"] in stage_rungs]
    lines = [CurveLine(name=c.name, thresholds=[p.threshold for p in c.points],
                       x=[p.joules_per_query for p in c.points], y=[p.metric for p in c.points],
                       measured=[_point(entries[r.key]) for r in c.measured if r.key in entries])
             for c in curves if c.points]
    target = Target.from_any(rec.target)
    return CascadeView(
        metric=rec.metric, singles=singles, curves=lines, target=target_line(rec),
        target_label=f"target: {target.description(rec.metric)}", labelled=labelled,
        title=f"{rec.task}: cascades over thresholds beside the single rungs",
        caption=(f"Energy: {energy_words(rec, watts_per_core)}. {rec.split.capitalize()} split, {rec.n_examples} "
                 f"examples. Dashed lines: each cascade over thresholds 0 to 1 (numbers: thresholds), {DERIVED}. "
                 "Stars: cascade configs measured; circles: single rungs measured; bars: 95% bootstrap intervals."))


def _shares(c: CascadeCurve, shares: Sequence[float]) -> str:
    return " · ".join(f"{name} {share:.0%}" for name, share in zip(c.stages, shares))


def _ci(metric: float, ci: Sequence[float] | None) -> str:
    return f"{metric:.4f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def _measured_thresholds(r: Record) -> str:
    return ", ".join(f"{t:g}" for t in (r.facts or {}).get("thresholds") or ()) or "?"


def _cheapest_above(points: Sequence[CurvePoint], line: float) -> CurvePoint | None:
    above = [p for p in points if p.metric >= line]
    return min(above, key=lambda p: (p.joules_per_query, -p.metric)) if above else None


def _verdict(rec: policy.Recommendation, c: CascadeCurve, line: float) -> str:
    """Where the curve clears the target line and whether that is cheaper than every adequate single rung."""
    best = _cheapest_above(c.points, line)
    if best is None:
        return f"No threshold brings `{c.name}` to the target line ({line:.3f})."
    adequate = [e for e in rec.configs if e["adequate"] and (e["config"] or {}).get("kind") != "cascade"]
    cheapest = min(adequate, key=lambda e: e["joules_per_query"]) if adequate else None
    head = (f"Cheapest derived point of `{c.name}` at or above the target line ({line:.3f}): threshold "
            f"{best.threshold:g}, {rec.metric} {best.metric:.4f} at {human_joules(best.joules_per_query)}/query")
    if cheapest is None:
        against = "no single rung is adequate to compare with"
    elif best.joules_per_query < cheapest["joules_per_query"]:
        against = (f"cheaper than every adequate single rung (the cheapest, `{cheapest['label']}`, "
                   f"{human_joules(cheapest['joules_per_query'])}/query)")
    else:
        against = (f"not cheaper than the adequate single rung `{cheapest['label']}` "
                   f"({human_joules(cheapest['joules_per_query'])}/query)")
    return f"{head}: {against}. A derived point is a lead, not a result: measure it (`threshold: {best.threshold:g}`)."


def cascade_blocks(rec: policy.Recommendation, curves: Sequence[CascadeCurve], plot_name: str | None) -> list[Block]:
    """The report's section on the cascades (nothing when the run has none)."""
    if not curves:
        return []
    entries = _entries(rec)
    line = target_line(rec)
    blocks: list[Block] = [
        ("h2", "Cascades over thresholds"),
        ("p", f"Each cascade's curve is **{DERIVED}** (J1 + deferred share × J2 for two stages). Its stages "
              "are fit on the train split less the calibration slice, as in the cascade, and priced by their own "
              "records on these examples. The cascade configs evaluated are **measured** and listed apart."),
    ]
    if plot_name and any(c.points for c in curves):
        blocks.append(("plot", f"{rec.task}: each cascade's {rec.metric} against J/query over thresholds, derived, "
                               "beside the single rungs and the cascade configs measured", plot_name))
    for c in curves:
        prices = ", ".join(f"`{name}` {human_joules(j) if j is not None else 'not evaluated'}/query"
                           for name, j in zip(c.stages, c.stage_joules_per_query))
        blocks.append(("p", f"**`{c.name}`**: {' → '.join(f'`{s}`' for s in c.stages)} (measured alone: {prices})."))
        if c.missing:
            blocks.append(("p", f"No curve: {c.missing}."))
        else:
            rows = [[f"{p.threshold:g}", _ci(p.metric, p.ci), human_joules(p.joules_per_query),
                     _shares(c, p.answered_share), "yes" if p.metric >= line else "no"] for p in c.at(TABLE_THRESHOLDS)]
            headers = ["threshold", f"{rec.metric} [95% CI] (derived)", "J/query (derived)", "answered by stage",
                       "at or above the target line (a guide, not adequacy)"]
            blocks.append(("table", headers, rows, "lrrll"))
            blocks.append(("p", _verdict(rec, c, line)))
        measured = [(r, entries[r.key]) for r in c.measured if r.key in entries]
        rows = [[f"`{e['label']}`", _measured_thresholds(r), _ci(e["metric"], e["ci"]),
                 human_joules(r.joules_per_query), _shares(c, (r.facts or {}).get("answered_share") or ()),
                 "yes" if e["adequate"] else "no"]
                for r, e in measured]
        if rows:
            blocks.append(("table", ["config (measured)", "thresholds", f"{rec.metric} [95% CI]", "J/query",
                                     "answered by stage", "adequate"], rows, "llrrll"))
    return blocks


def _point_dict(p: CurvePoint) -> dict[str, Any]:
    return {"threshold": p.threshold, "metric": p.metric, "ci": list(p.ci) if p.ci else None,
            "joules_per_query": p.joules_per_query, "answered_share": list(p.answered_share)}


def curves_json(rec: policy.Recommendation, curves: Sequence[CascadeCurve]) -> dict[str, Any]:
    """``cascades.json``: every curve's derived points (labelled derived) and its measured configs."""
    entries = _entries(rec)
    return {
        "schema": SCHEMA, "task": rec.task, "metric": rec.metric, "split": rec.split, "n_examples": rec.n_examples,
        "target_line": target_line(rec), "estimated": rec.estimated,
        "cascades": [{
            "name": c.name,
            "stages": [{"rung": s, "joules_per_query": j, "measured": j is not None}
                       for s, j in zip(c.stages, c.stage_joules_per_query)],
            "curve": {"derived": True, "how": DERIVED, "missing": c.missing,
                      "points": [_point_dict(p) for p in c.points],
                      "table": [_point_dict(p) for p in c.at(TABLE_THRESHOLDS)]},
            "measured": [{"key": r.key, "label": entries[r.key]["label"], "metric": entries[r.key]["metric"],
                          "ci": entries[r.key]["ci"], "joules_per_query": r.joules_per_query,
                          "thresholds": (r.facts or {}).get("thresholds"),
                          "answered_share": (r.facts or {}).get("answered_share"),
                          "adequate": entries[r.key]["adequate"]} for r in c.measured if r.key in entries],
        } for c in curves],
    }
