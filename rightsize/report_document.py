"""The report's content: what it says about a run, as a small document model (headings, paragraphs,
tables, plots) that :mod:`rightsize.report_render` writes as Markdown and as HTML, and the views the
charts draw.

The decisions — which configs are comparable, adequate, on the front, recommended — are the
policy's (:func:`rightsize.recommend.recommend`), never re-derived here.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Sequence

from rightsize import energy_quality
from rightsize import recommend as policy
from rightsize.adequacy import Target
from rightsize.footprint import JOULES_PER_KWH, WhereAndWhen, footprint_lines
from rightsize.held_out import verdict_sentence
from rightsize.plots import HourlyView, ParetoView, Point, RegionBars
from rightsize.records import Record
from rightsize.tables import human_count, human_grams, human_joules, relative_energy

LABEL_ALL_UP_TO = 16  # configs (the full ladder has 13); above it only the front, the choice and the largest are named

def error_text(error: str, limit: int = 160) -> str:
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


def watts_per_core(environments: Sequence[dict]) -> float | None:
    values = {(e.get("meter") or {}).get("cpu_watts_per_core") for e in environments} - {None}
    return values.pop() if len(values) == 1 else None


# ------------------------------------------------------------------------------------ the document

# Blocks: ("h1"|"h2"|"p", text), ("ul", [text]), ("table", headers, rows, align), ("plot", alt), ("code", text).
# Text may carry **bold** and `code`; everything else is escaped by each renderer.
Block = tuple


def document(rec: policy.Recommendation, group: dict[str, Record], failed: list[Record], environments: list[dict],
             study: Path | None, plot_name: str, pruned: int = 0, charts: dict[str, str] | None = None,
             cascades: Sequence[Block] = ()) -> list[Block]:
    """The report's blocks; ``cascades`` is the cascades' section (:mod:`rightsize.report_cascades`),
    placed after the configs."""
    target = Target.from_any(rec.target).description(rec.metric)
    watts = watts_per_core(environments)
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
        notes = [f"`{r.rung}` failed in {r.failed_phase or '?'}: {error_text(r.error or '')}" for r in failed]
        if pruned:
            notes.append(f"{pruned} search trial(s) stopped early by the pruner (their CI upper bound could not "
                         "reach the target)")
        if rec.excluded.get("other_examples"):
            notes.append(f"{rec.excluded['other_examples']} record(s) scored on other examples (another --limit, "
                         "split or task) are not compared here")
        doc += [("p", "Not in the table:"), ("ul", notes)]
    doc += cascades
    doc += _lifetime(rec)
    doc += _where_and_when(rec, charts or {})
    doc += [("h2", "Environment"), ("ul", environment_lines(environments))]
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
    sentences = [policy.multiplicity_sentence(rec.multiplicity),
                 policy.energy_tie_sentence(rec.energy_tie, rec.objective)]
    return _answer(rec) + [("p", x[0].upper() + x[1:] + ".") for x in sentences if x] + _coverage(rec)


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
    top = rec.top
    if not top or (not top["measured"] and not top["estimate"]):
        return []
    head = f"Against the ladder's largest rung, `{top['rung']}` ({human_count(top['compute_weights'])} compute weights)"
    figure = top["measured"] or top["estimate"]
    pct = figure["percent_saved"]
    saved = f"**{relative_energy(pct)} energy per query**" if pct is not None else "no positive J/query to compare against"
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


def environment_lines(environments: list[dict]) -> list[str]:
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
