"""The run report: ``report.md``, a self-contained ``report.html`` and the charts, from a run folder.

Everything comes from ``runs.jsonl`` (and ``environment.jsonl`` for the machine it ran on). This
module reads the run, asks the policy (:func:`rightsize.recommend.recommend`) for its decisions and
writes the files; what the report says is :mod:`rightsize.report_document` (with the cascades'
curves from :mod:`rightsize.report_cascades`), how it is written :mod:`rightsize.report_render`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from rightsize import recommend as policy
from rightsize.adequacy import comparable
from rightsize.cascade_curve import cascade_curves
from rightsize.cascade_plot import draw_cascades
from rightsize.errors import RightsizeError
from rightsize.footprint import WhereAndWhen
from rightsize.plots import FORMATS, draw_hourly, draw_regions, save_figure, save_pareto
from rightsize.records import Record
from rightsize.report_document import (Block, dashboard_command, environment_lines, error_text, document,
                                       hourly_view, pareto_view, region_bars, watts_per_core)
from rightsize.report_cascades import cascade_blocks, cascade_view, curves_json
from rightsize.report_render import to_html, to_markdown
from rightsize.results import STUDY_FILE, RunLog
from rightsize.tables import ESTIMATE_NOTE, human_joules

@dataclass(frozen=True)
class ReportFiles:
    """What :func:`build_report` wrote, and the recommendation it shows."""

    markdown: Path
    html: Path
    plots: list[Path]
    study: Path | None  # the search's Optuna study, when the run folder has one
    recommendation: policy.Recommendation | None  # None: no config finished an evaluation (see tried)
    tried: list[dict] = field(default_factory=list)
    cascades: Path | None = None  # cascades.json: the cascades' curves, when the run has cascades


def build_report(run_dir: str | Path, out_dir: str | Path | None = None, *, queries_per_day: float = 10_000,
                 days: float = 365, region: str | None = None, where: WhereAndWhen = WhereAndWhen(),
                 formats: Sequence[str] = FORMATS, objective: str = "per-query", adjust: str = "holm",
                 x_axis: str = "per-query") -> ReportFiles:
    """Write ``pareto.<fmt>``, ``report.md`` and ``report.html`` into ``out_dir`` (default: the run folder).

    ``objective``: what the recommendation minimizes; ``x_axis``: the plot's energy, ``per-query`` or ``lifetime``.
    """
    run = RunLog(run_dir, create=False)
    records = run.records()
    formats = tuple(dict.fromkeys(formats))
    if x_axis not in policy.OBJECTIVES:
        raise RightsizeError(f"--x {x_axis!r}: choose from {', '.join(policy.OBJECTIVES)}")
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise RightsizeError(f"--format {','.join(formats)}: choose from {', '.join(FORMATS)}")
    try:
        rec = policy.recommend(records, queries_per_day=queries_per_day, days=days, region=region, where=where,
                               plans=run.plans(), objective=objective, adjust=adjust)
    except policy.NothingCompleted as exc:
        return _report_tried(run, exc.tried, out_dir)
    group = {r.key: r for r in comparable(records)}
    used_runs = {r.run_id for r in group.values()}
    environments = [e for e in run.environments() if e.get("run_id") in used_runs] or run.environments()[-1:]
    failed = unresolved_failures([r for r in records if r.task == rec.task and r.split == rec.split])
    pruned = len({r.key for r in records if r.status == "pruned"})

    out = _out_folder(run, out_dir)
    study = run.dir / STUDY_FILE
    study = study if study.exists() else None
    md_path, html_path = out / "report.md", out / "report.html"
    try:
        plots = save_pareto(pareto_view(rec, watts_per_core(environments), x_axis), out, formats)
        charts = {}
        if rec.footprint["regions"]:
            charts["regions"] = save_figure(draw_regions(region_bars(rec)), out, formats, "regions")
        if "hourly" in rec.footprint:
            charts["hours"] = save_figure(draw_hourly(hourly_view(rec, where)), out, formats, "hours")
        curves = cascade_curves(list(group.values()))
        if any(c.points for c in curves):
            charts["cascades"] = save_figure(draw_cascades(cascade_view(rec, curves, watts_per_core(environments))),
                                             out, formats, "cascades")
        curves_path = out / "cascades.json" if curves else None
        if curves_path:
            curves_path.write_text(json.dumps(curves_json(rec, curves), indent=1) + "\n", encoding="utf-8")
        cascades_plot = charts["cascades"][0].name if "cascades" in charts else None
        doc = document(rec, group, failed, environments, study, plot_name=plots[0].name, pruned=pruned,
                       charts={name: paths[0].name for name, paths in charts.items()},
                       cascades=cascade_blocks(rec, curves, cascades_plot))
        plots += [p for paths in charts.values() for p in paths]
        md_path.write_text(to_markdown(doc), encoding="utf-8")
        html_path.write_text(to_html(doc, title=f"rightsize report — {rec.task}", plots=plots), encoding="utf-8")
    except OSError as exc:
        raise RightsizeError(f"--out {out}: cannot write the report ({exc.strerror or exc})") from None
    except ValueError as exc:  # nothing plottable, e.g. every J/query is 0
        raise RightsizeError(f"{run.path}: {exc}") from None
    return ReportFiles(md_path, html_path, plots, study, rec, cascades=curves_path)


def _report_tried(run: RunLog, tried: list[dict], out_dir: str | Path | None) -> ReportFiles:
    """A report for a run folder where no config finished an evaluation: what was tried, and why
    each one stopped."""
    out = _out_folder(run, out_dir)
    task = next((r.task for r in run.records() if r.task), "?")
    rows = [[f"`{t['label']}`", str(t["status"]), error_text(t["reason"]) or "-"] for t in tried]
    doc: list[Block] = [
        ("h1", f"rightsize report — {task}"),
        ("p", f"**No recommendation: no config finished a complete evaluation.** {len(tried)} tried, each pruned "
              "(its CI upper bound could not reach the target) or failed."),
        ("table", ["config", "status", "why it stopped"], rows, "lll"),
        ("h2", "Environment"), ("ul", environment_lines(run.environments())),
    ]
    md_path, html_path = out / "report.md", out / "report.html"
    try:
        md_path.write_text(to_markdown(doc), encoding="utf-8")
        html_path.write_text(to_html(doc, title=f"rightsize report — {task}", plots=[]), encoding="utf-8")
    except OSError as exc:
        raise RightsizeError(f"--out {out}: cannot write the report ({exc.strerror or exc})") from None
    study = run.dir / STUDY_FILE
    return ReportFiles(md_path, html_path, [], study if study.exists() else None, None, tried)


def _out_folder(run: RunLog, out_dir: str | Path | None) -> Path:
    out = Path(out_dir) if out_dir is not None else run.dir
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RightsizeError(f"--out {out}: cannot create the folder ({exc.strerror or exc})") from None
    return out


def unresolved_failures(records: Sequence[Record]) -> list[Record]:
    """Failed records, latest per rung, unless a later record of that config or rung succeeded.

    A failure that a later run fixed (a rerun, or the rung run again with another knob) is history.
    """
    latest: dict[str, Record] = {}
    for r in records:
        name = str(r.rung)
        if r.status == "failed":
            latest[name] = r
        elif r.ok:
            latest.pop(name, None)
            for other, f in list(latest.items()):
                if f.key == r.key:
                    latest.pop(other)
    return list(latest.values())


def summary_lines(files: ReportFiles) -> list[str]:
    """What the CLI prints: where each file went, and the dashboard hint when there is a study."""
    written = (*files.plots, files.markdown, files.html, *([files.cascades] if files.cascades else []))
    lines = [f"wrote {p}" for p in written]
    rec = files.recommendation
    if rec is None:
        lines.append(f"recommended: none — no config finished a complete evaluation ({len(files.tried)} tried, "
                     "each pruned or failed; the report lists why)")
        return lines
    if rec.chosen:
        lines.append(f"recommended: {rec.chosen['label']} ({human_joules(rec.chosen['joules_per_query'])}/query)")
    else:
        lines.append("recommended: none — no evaluated config is adequate")
    lines += [f"{'UNCERTAIN' if rec.coverage.get('certain') is False else 'note'}: {n}"
              for n in rec.coverage.get("notes") or ()]
    if rec.estimated:
        lines.append(ESTIMATE_NOTE)
    if files.study is not None:
        lines.append(f"search study: {dashboard_command(files.study)}   (pip install optuna-dashboard)")
    return lines
