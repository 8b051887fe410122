"""The run report: ``report.md``, a self-contained ``report.html`` and the Pareto plot, from a run folder.

Everything comes from ``runs.jsonl`` (and ``environment.jsonl`` for the machine it ran on); the decisions —
which configs are comparable, adequate, on the front, recommended — are the policy's
(:func:`rightsize.recommend.recommend`), never re-derived here. The report is written once as a small
document model (headings, paragraphs, tables) and rendered twice, so the Markdown and the HTML say the
same thing. The HTML inlines its CSS and the plot (base64 PNG, or the SVG itself), so it opens offline.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from datetime import datetime, timedelta
from typing import Sequence

from rightsize import energy_quality
from rightsize import markdown as md
from rightsize import recommend as policy
from rightsize.adequacy import Target, comparable
from rightsize.errors import RightsizeError
from rightsize.footprint import JOULES_PER_KWH, WhereAndWhen, footprint_lines
from rightsize.plots import FORMATS, HourlyView, ParetoView, Point, RegionBars, draw_hourly, draw_regions, save_figure, save_pareto
from rightsize.held_out import verdict_sentence
from rightsize.records import Record
from rightsize.results import STUDY_FILE, RunLog
from rightsize.tables import ESTIMATE_NOTE, human_count, human_grams, human_joules, relative_energy

LABEL_ALL_UP_TO = 16  # configs (the full ladder has 13); above this only the front, the recommended and the largest are named


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`build_report` wrote, and the recommendation it shows."""

    markdown: Path
    html: Path
    plots: list[Path]
    study: Path | None  # the search's Optuna study, when the run folder has one
    recommendation: policy.Recommendation | None  # None: no config finished an evaluation (see tried)
    tried: list[dict] = field(default_factory=list)


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
        plots = save_pareto(pareto_view(rec, _watts(environments), x_axis), out, formats)
        charts = {}
        if rec.footprint["regions"]:
            charts["regions"] = save_figure(draw_regions(region_bars(rec)), out, formats, "regions")
        if "hourly" in rec.footprint:
            charts["hours"] = save_figure(draw_hourly(hourly_view(rec, where)), out, formats, "hours")
        doc = document(rec, group, failed, environments, study, plot_name=plots[0].name, pruned=pruned,
                       charts={name: paths[0].name for name, paths in charts.items()})
        plots += [p for paths in charts.values() for p in paths]
        md_path.write_text(to_markdown(doc), encoding="utf-8")
        html_path.write_text(to_html(doc, title=f"rightsize report — {rec.task}", plots=plots), encoding="utf-8")
    except OSError as exc:
        raise RightsizeError(f"--out {out}: cannot write the report ({exc.strerror or exc})") from None
    except ValueError as exc:  # nothing plottable, e.g. every J/query is 0
        raise RightsizeError(f"{run.path}: {exc}") from None
    return ReportFiles(md_path, html_path, plots, study, rec)


def _report_tried(run: RunLog, tried: list[dict], out_dir: str | Path | None) -> ReportFiles:
    """A report for a run folder where no config finished an evaluation: what was tried, and why
    each one stopped."""
    out = _out_folder(run, out_dir)
    task = next((r.task for r in run.records() if r.task), "?")
    rows = [[f"`{t['label']}`", str(t["status"]), _error_text(t["reason"]) or "-"] for t in tried]
    doc: list[Block] = [
        ("h1", f"rightsize report — {task}"),
        ("p", f"**No recommendation: no config finished a complete evaluation.** {len(tried)} tried, each pruned "
              "(its CI upper bound could not reach the target) or failed."),
        ("table", ["config", "status", "why it stopped"], rows, "lll"),
        ("h2", "Environment"), ("ul", _environment(run.environments())),
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


def _error_text(error: str, limit: int = 160) -> str:
    # Library messages quote code with backticks and can run long; neither belongs in a table note.
    text = " ".join(str(error).replace("`", "'").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ------------------------------------------------------------------------------------ the plot's view


def pareto_view(rec: policy.Recommendation, watts_per_core: float | None = None,
                x_axis: str = "per-query") -> ParetoView:
    """The plot's content, decided by the policy's recommendation; ``x_axis`` ``lifetime`` plots each
    config's lifetime energy (fit + queries × J/query) instead of its J/query."""
    lifetime = x_axis == "lifetime"
    points = [Point(key=e["key"], name=e["label"], x=e["lifetime_joules"] if lifetime else e["joules_per_query"],
                    y=e["metric"], lo=(e["ci"] or [e["metric"]] * 2)[0], hi=(e["ci"] or [e["metric"]] * 2)[1],
                    adequate=e["adequate"], trained=e.get("trained", False))
              for e in rec.configs]
    target = Target.from_any(rec.target)
    threshold = target.threshold(rec.best["metric"])
    label = f"target: {target.description(rec.metric)}"
    if target.rule == "within":
        label += f"; line at {threshold:.3f}"
    if rec.coverage.get("certain") is False:
        missing = ", ".join(m["name"] for m in rec.coverage.get("missing") or ())
        label += f"; UNCERTAIN: {missing} not evaluated, the best may be higher"
    front = [e["key"] for e in rec.configs if e["pareto_lifetime" if lifetime else "pareto"]]
    # A ladder's handful of configs are all named; a search's hundreds would bury the front in text.
    others = [p.key for p in points if p.key not in front] if len(points) <= LABEL_ALL_UP_TO else []
    return ParetoView(
        points=points, metric=rec.metric, front=front, extra_labels=others,
        recommended=rec.chosen["key"] if rec.chosen else None, largest=rec.largest["key"],
        threshold=threshold, threshold_label=label, split=rec.split,
        title=f"{rec.task}: {rec.metric} vs {'lifetime energy' if lifetime else 'energy per query'} "
              f"({len(points)} configs)",
        caption=plot_caption(rec, watts_per_core, lifetime),
        x_label=(f"lifetime energy (J, log scale: fit + {_queries(rec)} queries × J/query) — lower is better"
                 if lifetime else ParetoView.x_label),
    )


def _queries(rec: policy.Recommendation) -> str:
    a = rec.assumptions
    return f"{a['queries_per_day'] * a['days']:,.0f}"


def plot_caption(rec: policy.Recommendation, watts_per_core: float | None = None, lifetime: bool = False) -> str:
    source = energy_words(rec, watts_per_core)
    adequacy = f"filled: adequate for {Target.from_any(rec.target).description(rec.metric)}"
    if rec.rule == "within":
        adequacy += ", so the dashed line is only a guide"
    trained = "; squares: trained configs (their fit trains model weights)" if any(
        e.get("trained") for e in rec.configs) else ""
    cost = (f"lifetime energy = fit + {_queries(rec)} queries × J/query ({rec.assumptions['queries_per_day']:,g} "
            f"queries/day for {rec.assumptions['days']:,g} days). " if lifetime else "")
    return (f"Energy: {source}. {cost}{rec.split.capitalize()} split, {rec.n_examples} examples; bars: 95% bootstrap "
            f"intervals; {adequacy}{trained}; line: Pareto front (no config is both better and cheaper).")


def energy_words(rec: policy.Recommendation, watts_per_core: float | None = None) -> str:
    """The energy source in words; an estimate is always called one."""
    sources = ", ".join(sorted({str(e.get("energy_source")) for e in rec.configs}))
    if rec.estimated:
        watts = f"{watts_per_core:g} W" if watts_per_core else "watts"
        return (f"{sources} (process CPU time × {watts} per core) — an estimate, not a measurement: ratios between "
                "configs measured on one machine are meaningful, absolute joules are not")
    return f"measured by {sources}"


def _watts(environments: Sequence[dict]) -> float | None:
    values = {(e.get("meter") or {}).get("cpu_watts_per_core") for e in environments} - {None}
    return values.pop() if len(values) == 1 else None


# ------------------------------------------------------------------------------------ the document

# Blocks: ("h1"|"h2"|"p", text), ("ul", [text]), ("table", headers, rows, align), ("plot", alt), ("code", text).
# Text may carry **bold** and `code`; everything else is escaped by each renderer.
Block = tuple


def document(rec: policy.Recommendation, group: dict[str, Record], failed: list[Record], environments: list[dict],
             study: Path | None, plot_name: str, pruned: int = 0, charts: dict[str, str] | None = None) -> list[Block]:
    target = Target.from_any(rec.target).description(rec.metric)
    watts = _watts(environments)
    doc: list[Block] = [
        ("h1", f"rightsize report — {rec.task}"),
        ("p", f"{rec.split.capitalize()} split, {rec.n_examples} examples · metric `{rec.metric}` · target: {target} · "
              f"energy: {energy_words(rec, watts)}."),
        ("h2", "Recommendation"),
        *_recommendation(rec),
        # The caption is drawn into the figure itself, so the plot file travels with its energy note.
        ("plot", f"{rec.task}: {rec.metric} against J/query for every config, with the Pareto front", plot_name),
        ("h2", "Configs"),
        _config_table(rec, group),
        *(("p", note) for note in energy_quality.reading_notes(list(group.values()))),
    ]
    if failed or pruned or rec.excluded.get("other_examples"):
        notes = [f"`{r.rung}` failed in {r.failed_phase or '?'}: {_error_text(r.error or '')}" for r in failed]
        if pruned:
            notes.append(f"{pruned} search trial(s) stopped early by the pruner (their CI upper bound could not "
                         "reach the target)")
        if rec.excluded.get("other_examples"):
            notes.append(f"{rec.excluded['other_examples']} record(s) scored on other examples (another --limit, "
                         "split or task) are not compared here")
        doc += [("p", "Not in the table:"), ("ul", notes)]
    doc += _lifetime(rec)
    doc += _where_and_when(rec, charts or {})
    doc += [("h2", "Environment"), ("ul", _environment(environments))]
    if study is not None:
        doc += [("h2", "Search study"),
                ("p", "The search's Optuna study (trial user attributes: rung, metric, J/query, adequacy) opens in "
                      "optuna-dashboard (`pip install optuna-dashboard` if it is not installed):"),
                ("code", dashboard_command(study))]
    return doc


def dashboard_command(study: Path) -> str:
    return f"optuna-dashboard sqlite:///{study.resolve()}"


def _coverage(rec: policy.Recommendation) -> list[Block]:
    """What the answer could not rule out (rightsize.coverage), in words."""
    notes = rec.coverage.get("notes") or ()
    if rec.coverage.get("certain") is False:
        return [("p", "**Not certain:** " + "; ".join(notes) + ".")]
    if notes:
        return [("p", "Note: " + "; ".join(notes) + ".")]
    return []


def _recommendation(rec: policy.Recommendation) -> list[Block]:
    multiplicity = policy.multiplicity_sentence(rec.multiplicity)
    return _answer(rec) + ([("p", multiplicity[0].upper() + multiplicity[1:] + ".")] if multiplicity else []) + \
        _coverage(rec)


def _answer(rec: policy.Recommendation) -> list[Block]:
    if rec.chosen is None:
        closest = ", ".join(f"`{e['label']}` ({e['detail']})" for e in rec.closest)
        return [("p", f"**No evaluated config is adequate.** Closest to the target: {closest}."),
                ("p", "Try larger rungs, more training data, or reconsider the target.")]
    c, big = rec.chosen, rec.largest
    out: list[Block] = [
        ("p", f"Deploy **{c['label']}** ({_what(c)}, {human_count(c['n_params'])} parameters): {rec.metric} "
              f"{_metric(c)} at **{human_joules(c['joules_per_query'])}/query**."),
        ("p", f"Why it is adequate ({c['rule']} rule): {c['detail']}. It is the adequate config with "
              f"{policy.Objective(**rec.objective).describe()}."),
    ]
    if c["key"] == big["key"]:
        out.append(("p", "It is also the largest config evaluated: nothing smaller meets the target."))
    else:
        s, g = rec.savings or {}, rec.given_up or {}
        pct = s.get("percent_saved")
        out.append(("p", f"Against the largest config, **{big['label']}** ({human_count(big['n_params'])} parameters, "
                         f"{rec.metric} {_metric(big)}, {human_joules(big['joules_per_query'])}/query): "
                         f"**{relative_energy(pct)} energy per query**, and {_given_up_words(g, rec.metric)}."
                    if pct is not None else
                    f"The largest config, {big['label']}, has no positive J/query to compare against."))
    out += _against_top(rec)
    if c.get("test"):
        t = c["test"]
        out.append(("p", f"Held-out test split ({t['n_examples']} examples): {rec.metric} {_metric(t)}."))
    if rec.test_verdict:
        out.append(("p", verdict_sentence(rec.test_verdict) + "."))
    return out


def _against_top(rec: policy.Recommendation) -> list[Block]:
    """The ladder's largest rung, measured or estimated: its own paragraph, the estimate said so."""
    top, jpq = rec.top, rec.chosen["joules_per_query"]
    if not top or (not top["measured"] and not top["estimate"]):
        return []
    head = f"Against the ladder's largest rung, `{top['rung']}` ({human_count(top['compute_weights'])} compute weights)"
    figure = top["measured"] or top["estimate"]
    pct = figure["percent_saved"]
    saved = f"**{pct:.0f}% less energy per query**" if pct is not None else "no positive J/query to compare against"
    if top["measured"]:
        return [("p", f"{head}, measured on {figure['split']} at {human_joules(figure['joules_per_query'])}/query: "
                      f"{saved}.")]
    return [("p", f"{head}, not evaluated: an **estimate**, not a measurement, of about "
                  f"{human_joules(figure['joules_per_query'])}/query ({figure['basis']}): {saved}. "
                  f"`rightsize report --measure-largest` measures it on test.")]


def _given_up_words(given_up: dict, metric: str) -> str:
    """``given_up`` is largest minus chosen: positive is a loss, negative a gain."""
    parts = []
    for split in ("validation", "test"):
        d = given_up.get(split)
        if d is None:
            continue
        parts.append(f"gives up {d:.4f} {metric} on {split}" if d > 0 else
                     f"scores {-d:.4f} higher on {split}" if d < 0 else f"scores the same on {split}")
    return " and ".join(parts) or "no score difference recorded"


def _what(e: dict) -> str:
    cfg = e["config"] or {}
    return f"{cfg.get('kind')}" + (f", `{cfg['model']}`" if cfg.get("model") else "")


def _metric(e: dict) -> str:
    ci = e.get("ci")
    return f"{e['metric']:.4f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def _config_table(rec: policy.Recommendation, group: dict[str, Record]) -> Block:
    headers = ["config", "kind", "model", "knobs", f"{rec.metric} [95% CI]", "adequate", "J/query", "params",
               "load J", "fit J", "infer J", "seconds", "note"]
    rows = []
    for e in rec.configs:
        r = group[e["key"]]
        joules = r.joules or {}
        notes = [n for n, on in (("recommended", rec.chosen and e["key"] == rec.chosen["key"]),
                                 ("largest", e["key"] == rec.largest["key"]), ("front", e["pareto"])) if on]
        config = e["config"] or {}
        model = config.get("model")
        knobs = ", ".join(f"{k}={v}" for k, v in config.items() if k not in ("kind", "model") and v is not None)
        notes += energy_quality.notes(r)
        rows.append([f"`{e['label']}`", config.get("kind", "-"), model.rstrip("/").split("/")[-1] if model else "-",
                     knobs or "-", _metric(e), "yes" if e["adequate"] else "no",
                     energy_quality.with_uncertainty(e["joules_per_query"], e.get("joules_per_query_uncertainty"),
                                                     human_joules),
                     human_count(e["n_params"]), *(human_joules(joules.get(p)) for p in ("load", "fit", "infer")),
                     f"{r.seconds_total or 0:.1f}", ", ".join(notes)])
    return ("table", headers, rows, "llllrlrrrrrrl")


def _lifetime(rec: policy.Recommendation) -> list[Block]:
    a = rec.assumptions
    queries = a["queries_per_day"] * a["days"]
    grid = (f"region `{a['region']}` at {a['grid_g_per_kwh']:g} gCO2e/kWh ({a['grid_year']}; {a['grid_source']})"
            if a.get("region") else "no region given, so no carbon figure (pass `--region`, an ISO country code)")
    blocks: list[Block] = [
        ("h2", "Lifetime energy and carbon"),
        ("p", f"Assumptions: {a['queries_per_day']:,.0f} queries/day for {a['days']:g} days ({queries:,.0f} queries); "
              f"lifetime = fit once + queries × J/query (loading is not counted); PUE {a['pue']:g}; {grid}. "
              f"Energy is the IT load as recorded ({'estimated' if rec.estimated else 'measured'}); carbon = kWh × "
              "PUE × grid intensity."),
    ]
    rows = []
    shown = [("recommended", rec.chosen)] if rec.chosen else []
    if not rec.chosen or rec.largest["key"] != rec.chosen["key"]:
        shown.append(("largest", rec.largest))
    for role, e in shown:
        rows.append([f"{role}: `{e['rung']}`", human_joules(e["lifetime_joules"]), f"{e['lifetime_joules'] / JOULES_PER_KWH:.3g}",
                     human_grams(e["lifetime_carbon_g"])])
    if rec.savings and rec.chosen and rec.chosen["key"] != rec.largest["key"]:
        s = rec.savings
        rows.append(["**saved**", human_joules(s["lifetime_joules_saved"]), f"{s['lifetime_kwh_saved']:.3g}",
                     human_grams(s["lifetime_carbon_g_saved"])])
    blocks.append(("table", ["config", "lifetime energy", "kWh", "carbon (CO2e)"], rows, "lrrr"))
    if rec.break_even:
        blocks += [("p", "Against each adequate config that costs less to make, the query volume after which the "
                         "recommended config has used less energy in total (fit + queries × J/query):"),
                   ("ul", [policy.describe_break_even(rec.chosen, b, a["queries_per_day"]) for b in rec.break_even])]
    return blocks


def _where_and_when(rec: policy.Recommendation, charts: dict[str, str]) -> list[Block]:
    """The facility, the regions and the hours (rightsize.footprint), with their charts."""
    fp = rec.footprint
    blocks: list[Block] = [("h2", "Where and when"), ("ul", footprint_lines(fp))]
    if "regions" in charts:
        blocks.append(("plot", "lifetime carbon of the recommended and the largest config in each region", charts["regions"]))
    if "hours" in charts:
        blocks.append(("plot", "grid intensity by hour of day, with the window and each job's best start", charts["hours"]))
    if fp["attribution"]:
        blocks.append(("p", "Sources: " + "; ".join(fp["attribution"])))
    return blocks


def region_bars(rec: policy.Recommendation) -> RegionBars:
    """The region chart's content: each region's lifetime carbon of each role, cleanest grid first."""
    rows, a = rec.footprint["regions"], rec.footprint["assumptions"]
    roles = list(rows[0]["lifetime_carbon"])
    return RegionBars(regions=[r["region"] for r in rows],
                      grams={role: [r["lifetime_carbon"][role]["value"] for r in rows] for role in roles},
                      title=f"{rec.task}: lifetime carbon by grid region",
                      caption=(f"Lifetime = fit + {_queries(rec)} queries × J/query; facility energy (PUE {a['pue']:g}) "
                               f"× each country's annual grid intensity. {rec.footprint['attribution'][0]}"))


def hourly_view(rec: policy.Recommendation, where: WhereAndWhen) -> HourlyView:
    """The hour-of-day chart's content: the profile's hourly means on ``where.tz``, the window and starts."""
    fp = rec.footprint

    def hour(t: datetime) -> float:
        local = t.astimezone(where.tz)
        return local.hour + local.minute / 60

    window = None
    if where.window:
        start, end = where.window
        window = (hour(start), hour(start) + min((end - start) / timedelta(hours=1), 24.0))
    starts = {s["job"]: hour(datetime.fromisoformat(s["best_start"])) for s in fp["shifts"]}
    return HourlyView(hourly=fp["hourly"]["value"], clock=str(where.tz), window=window, starts=starts,
                      title=f"{rec.task}: grid intensity by hour of day",
                      caption=f"Profile: {fp['hourly']['assumptions']['source'].split(' ', 1)[-1]}. Shaded: --window; dashed: the "
                              "start of each one-time job that emits least within it.")


def _environment(environments: list[dict]) -> list[str]:
    if not environments:
        return ["no environment.jsonl in the run folder"]
    lines = []
    for env in environments:
        meter = env.get("meter") or {}
        watts = f", {meter['cpu_watts_per_core']:g} W per core" if meter.get("cpu_watts_per_core") else ""
        v = env.get("versions") or {}
        versions = ", ".join(f"{k} {v[k]}" for k in ("torch", "transformers", "sentence-transformers", "faiss-cpu",
                                                       "scikit-learn", "rightsize") if v.get(k))
        gpus = ", ".join(env.get("gpus") or []) or "none"
        counters = "".join(f"; {part}: {_board(b)}" for part, b in (meter.get("gpu_boards") or {}).items())
        lines.append(f"run `{env.get('run_id')}` ({env.get('time')}): host `{env.get('host')}`, {env.get('cpu')} × "
                     f"{env.get('cpu_count')} CPUs ({env.get('torch_threads')} torch threads), device "
                     f"{env.get('device')}, GPUs: {gpus}; meter {meter.get('source')}{watts}{counters}; Python "
                     f"{env.get('python')}; {versions}; git {env.get('git') or 'unknown'}")
    return lines


def _board(b: dict) -> str:
    """A characterised GPU board in words: what it is and how its energy counter behaves."""
    step = b.get("update_interval_s")
    idle = b.get("idle_watts")
    limit = b.get("power_limit_w")
    return (f"{b.get('name') or 'GPU'} (driver {b.get('driver') or '?'}, power limit "
            f"{f'{limit:g} W' if limit else '?'}, MIG {b.get('mig_mode') or 'n/a'}), counter step "
            f"{f'{step * 1000:.0f} ms' if step else 'not observed'}, idle {f'{idle:.1f} W' if idle else 'unknown'}")


# ------------------------------------------------------------------------------------ renderers

_BOLD = re.compile(r"\*\*(.+?)\*\*")
_CODE = re.compile(r"`([^`]+)`")


def to_markdown(doc: list[Block]) -> str:
    """Markdown of the document: its **bold** and `code` markup kept, everything else escaped."""
    out = []
    for block in doc:
        kind = block[0]
        if kind == "h1":
            out.append(f"# {_md_inline(block[1])}")
        elif kind == "h2":
            out.append(f"## {_md_inline(block[1])}")
        elif kind == "p":
            out.append(_md_inline(block[1]))
        elif kind == "ul":
            out.append("\n".join(f"- {_md_inline(item)}" for item in block[1]))
        elif kind == "code":
            fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", block[1])), default=0))
            out.append(f"{fence}\n{block[1]}\n{fence}")
        elif kind == "plot":
            out.append(f"![{md.text(block[1], brackets=True)}]({block[2]})")
        elif kind == "table":
            _, headers, rows, align = block
            cells = lambda row: "| " + " | ".join(_md_inline(str(c), table=True) for c in row) + " |"  # noqa: E731
            rule = "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"
            out.append("\n".join([cells(headers), rule, *map(cells, rows)]))
    return "\n\n".join(out) + "\n"


_MARKUP = re.compile(r"`([^`]+)`|\*\*(.+?)\*\*")


def _md_inline(text: str, table: bool = False) -> str:
    """A block's text in Markdown: its `code` and **bold** as such, the rest escaped (rightsize.markdown)."""
    out, pos = [], 0
    for m in _MARKUP.finditer(text):
        out.append(md.text(text[pos:m.start()]))
        out.append(md.code(m.group(1), table) if m.group(1) is not None else f"**{_md_inline(m.group(2), table)}**")
        pos = m.end()
    out.append(md.text(text[pos:]))
    return "".join(out)


_CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1a1a1a;max-width:1200px;margin:2em auto;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px;margin:.5em 0;display:block;overflow-x:auto}
th,td{padding:4px 8px;border-bottom:1px solid #e5e5e5;text-align:left;vertical-align:top}th{background:#f5f5f5}
td.r,th.r{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}td:first-child,td code{white-space:nowrap}
code,pre{font:13px ui-monospace,Menlo,Consolas,monospace;background:#f3f3f3;border-radius:3px;padding:1px 4px}
pre{padding:8px;overflow-x:auto}figure{margin:1em 0}img,svg{max-width:100%;height:auto}
""".strip()


def _inline(text: str) -> str:
    escaped = html.escape(str(text), quote=False)
    return _CODE.sub(r"<code>\1</code>", _BOLD.sub(r"<strong>\1</strong>", escaped))


def to_html(doc: list[Block], *, title: str, plots: Sequence[Path]) -> str:
    """A standalone page: inline CSS and the plots embedded (PNG as base64, SVG inline); no links out."""
    by_name = {p.name: p for p in plots}
    body = []
    for block in doc:
        kind = block[0]
        if kind in ("h1", "h2"):
            body.append(f"<{kind}>{_inline(block[1])}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{_inline(block[1])}</p>")
        elif kind == "ul":
            body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in block[1]) + "</ul>")
        elif kind == "code":
            body.append(f"<pre><code>{html.escape(block[1])}</code></pre>")
        elif kind == "plot":
            body.append(f"<figure>{_embedded(by_name[block[2]], block[1])}</figure>")
        elif kind == "table":
            _, headers, rows, align = block
            cls = lambda i: ' class="r"' if align[i] == "r" else ""  # noqa: E731
            head = "".join(f"<th{cls(i)}>{_inline(h)}</th>" for i, h in enumerate(headers))
            trs = "".join("<tr>" + "".join(f"<td{cls(i)}>{_inline(c)}</td>" for i, c in enumerate(row)) + "</tr>"
                          for row in rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def _embedded(plot: Path, alt: str) -> str:
    if plot.suffix == ".svg":
        svg = plot.read_text(encoding="utf-8")
        return svg[svg.index("<svg"):]  # drop the XML prolog and doctype: not allowed inside HTML
    data = base64.b64encode(plot.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def summary_lines(files: ReportFiles) -> list[str]:
    """What the CLI prints: where each file went, and the dashboard hint when there is a study."""
    lines = [f"wrote {p}" for p in (*files.plots, files.markdown, files.html)]
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
