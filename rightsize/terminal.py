"""What the commands print: each result as terminal text, so the CLI (rightsize.cli) only parses, calls, prints and exits."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from rightsize import energy_quality
from rightsize.footprint import JOULES_PER_KWH, footprint_lines
from rightsize.held_out import verdict_sentence
from rightsize.recommend import energy_tie_sentence, multiplicity_sentence
from rightsize.records import Record
from rightsize.tables import (ESTIMATE_NOTE, human_count, human_grams, human_joules, records_table, relative_energy,
                              render)


def progress_line(index: int, total: int, spec, cached: bool) -> str:
    note = " (already recorded; skipped)" if cached else ""
    return f"[{index}/{total}] {spec.name}{note}"


def evaluation_text(records: Sequence[Record], runs_file: Path) -> str:
    lines = [records_table(records, records[0].metric), f"\nrecords: {runs_file}",
             *energy_quality.reading_notes(records)]
    if any(r.estimated for r in records):
        lines.append(ESTIMATE_NOTE)
    return "\n".join(lines)


def task_summary(file: Path, s: dict) -> str:
    lines = [f"{file}: ok — task {s.get('name')!r}, metric {s.get('metric')}, target {s.get('target')}"]
    splits = s.get("splits", {})
    for name, info in splits.items():
        lines.append(f"  {name:<10} {info.get('count', 0):>7} examples  ({info.get('source', 'file')})")
    balance = s.get("label_balance") or {}
    if balance:
        names = list(splits)
        rows = [[_quoted(label)] + [balance[label].get(sp, 0) for sp in names] for label in balance]
        shown = rows if len(rows) <= 20 else rows[:10] + [["..."] + [""] * len(names)] + rows[-5:]
        lines.append("  " + render(["label"] + names, shown, "l" + "r" * len(names)).replace("\n", "\n  "))
    pairs = (s.get("overlap") or {}).get("pairs") or []
    lines += ["  " + line for line in _overlap_lines(pairs)] if pairs else ["  no text is shared across splits"]
    return "\n".join(lines)


def _quoted(text: str, limit: int = 60, always: bool = False) -> str:
    """Text from data as one safe terminal line: as is when plain (unless ``always``), else repr()
    (quoted, control characters escaped); cut at ``limit``."""
    shown = text if text.isprintable() and text.strip() == text and not always else repr(text)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def _overlap_lines(pairs: Sequence[dict]) -> list[str]:
    """One line per pair of splits that shares texts (Overlaps.to_dict()["pairs"])."""
    lines = ["texts shared across splits (equal after case folding and whitespace collapsing):"]
    for p in pairs:
        (a, b), small = p["splits"], min(range(2), key=lambda i: (p["sizes"][i], i))
        how = " — IDENTICAL" if p["identical"] else " — MOSTLY OVERLAP" if p["blocking"] else ""
        samples = ", ".join(_quoted(t, 50, always=True) for t in p["samples"])
        lines.append(f"  {a} & {b}: {p['texts']} texts, {p['examples'][small]} of {p['splits'][small]}'s "
                     f"{p['sizes'][small]} examples ({p['fraction']:.1%}){how}; e.g. {samples}")
    return lines


def overlap_warning(found) -> str:
    """The warning evaluate and search give when the task's splits share texts (rightsize.tasks.Overlaps)."""
    return "\n".join(_overlap_lines([p.to_dict() for p in found.pairs]))


def assumed_task_text(assumed, kept: Path) -> str:
    """The task assumed for a bare data file, as the YAML kept for it with why each value (for stderr)."""
    why = {**assumed.notes, "splits": "train/validation/test carved 70/15/15 of the file, seeded, stratified"}
    body = assumed.yaml_text(kept).splitlines() + [f"# {k}: {v}" for k, v in why.items()]
    return f"no task file: assumed this task for {assumed.source}, kept as {kept} (pass that as TASK next time):\n" + \
        "\n".join("  " + line for line in body)


def asset_status_line(status: dict) -> str:
    return f"{status['status']:>10}  {status['name']}  {status['path']}  sha256 {status['sha256'][:16]}…"


def assets_table() -> str:
    from rightsize import assets

    rows = []
    for name, asset in assets.ASSETS.items():
        where = assets.snapshot_dir(name) if asset.kind == "model" else assets.dataset_dir(name)
        present = where is not None and Path(where).exists()
        rows.append([name, asset.kind, "optional" if asset.optional else "default", "yes" if present else "no"])
    return render(["name", "kind", "set", "assembled"], rows)


def cache_text(info: dict[str, Any]) -> str:
    mib = 1024**2
    lines = [f"{info['root']}: {info['bytes'] / mib:.1f} MiB of {info['max_bytes'] / mib:.0f} MiB"]
    rows = [[ns["namespace"][:12], ns.get("model", "?"), ns.get("layers") or "all", ns.get("precision", "?"),
             ns.get("device", "?"), ns.get("energy_source", "?"), ns["shards"], f"{ns['bytes'] / mib:.1f}"]
            for ns in info["namespaces"]]
    if rows:
        lines.append(render(["config", "model", "layers", "precision", "device", "source", "shards", "MiB"], rows,
                            "llllllrr"))
    return "\n".join(lines)


# ---------------------------------------------------------------- recommend


def tried_text(tried: list[dict]) -> str:
    """Nothing finished a complete evaluation: what was tried and why each one stopped."""
    lines = [f"no recommendation: no config finished a complete evaluation; tried {len(tried)}:"]
    lines += [f"  {t['label']}: {t['status']}" + (f" ({t['reason']})" if t["reason"] else "") for t in tried]
    return "\n".join(lines)


def coverage_lines(rec) -> list[str]:
    """What the answer could not rule out, one line each (nothing when the evidence is complete)."""
    cov = rec.coverage
    if cov.get("certain") is None:
        return [f"note: {cov.get('note')}"] if cov.get("note") else []
    lead = {False: "UNCERTAIN: "}.get(cov.get("certain"), "note: ")
    return [f"{lead if i == 0 else 'note: '}{n}" for i, n in enumerate(cov.get("notes") or ())]


def multiplicity_lines(rec) -> list[str]:
    """How many configs were compared, and what the multiplicity correction did to the answer."""
    sentence = multiplicity_sentence(rec.multiplicity)
    return [f"  {sentence}"] if sentence else []


def energy_tie_lines(rec) -> list[str]:
    """The configs the choice is tied with on energy within measurement error, and the rule that chose."""
    sentence = energy_tie_sentence(rec.energy_tie, rec.objective)
    return [f"  {sentence}"] if sentence else []


def _target_text(rec) -> str:
    from rightsize.adequacy import Target

    return Target.from_any(rec.target).description(rec.metric)


def _score_text(value: float, ci) -> str:
    return f"{value:.4f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def recommendation_text(rec, confirmations, no_confirm: bool) -> str:
    est = " (estimate)"
    lines = []
    if rec.chosen is None:
        lines.append(f"no adequate configuration for task {rec.task!r}: none reaches {_target_text(rec)}")
        lines += multiplicity_lines(rec)
        lines += coverage_lines(rec)
        lines.append(f"closest configs (of {len(rec.configs)}, on {rec.n_examples} validation examples):")
        for e in rec.closest:
            lines.append(f"  {e['label']}: {e['detail']}")
    else:
        c = rec.chosen
        lines.append(f"recommendation: {c['label']}  ({human_count(c['n_params'])} params, "
                     f"{human_joules(c['joules_per_query'])}/query{est if c['estimated'] else ''})")
        lines.append(f"  task {rec.task!r}, target {_target_text(rec)}")
        lines.append(f"  decided by rule '{c['rule']}': {c['detail']}")
        lines += multiplicity_lines(rec)
        lines += energy_tie_lines(rec)
        lines += coverage_lines(rec)
        lines += objective_lines(rec)
    lines += ["", f"configs (validation split, {rec.n_examples} examples, by J/query):"]
    rows = [[e["label"], human_count(e["n_params"]), _score_text(e["metric"], e["ci"]),
             human_joules(e["joules_per_query"]), f"{e['bound']:.4f} vs {e['threshold']:g}",
             e["energy_source"] or "-", "yes" if e["adequate"] else "no", "*" if e["pareto"] else ""]
            for e in rec.configs]
    table = render(["config", "params", f"{rec.metric} [95% CI]", "J/query", "bound vs threshold", "source",
                    "adequate", "pareto"], rows, "lrrrrlll")
    lines.append("  " + table.replace("\n", "\n  "))
    if rec.excluded.get("failed"):
        lines.append(f"  not considered: {rec.excluded['failed']} failed (validation records)")
    if rec.excluded.get("other_examples"):
        lines.append(f"  kept apart: {rec.excluded['other_examples']} validation records of another task or sample of "
                     "examples (task data, --limit, --seed) in this run folder; not compared with these")
    if rec.chosen is not None:
        lines += [""] + _savings_lines(rec)
    lines += footprint_text(rec.footprint)
    lines.append("")
    if no_confirm:
        lines.append("test split: not evaluated (--no-confirm); the scores above are validation only")
    elif confirmations is not None:
        done = "; ".join(f"{c.rung} {c.status}" + (f" ({c.detail})" if c.detail else "") for c in confirmations)
        lines.append(f"test split: {done}")
    if rec.chosen is not None and rec.test_verdict:
        lines.append(verdict_sentence(rec.test_verdict))
    if rec.estimated:
        lines.append(ESTIMATE_NOTE)
    lines += attributions(rec.assumptions["grid_source"], rec.footprint)
    return "\n".join(lines)


def footprint_text(fp: dict) -> list[str]:
    """Where and when the energy is drawn (rightsize.footprint), under its heading."""
    return ["", "where and when (facility, regions, hours):"] + [f"  {line}" for line in footprint_lines(fp)]


def attributions(grid_source: str | None, fp: dict) -> list[str]:
    """The sources to credit next to carbon figures, each once."""
    return list(dict.fromkeys(([grid_source] if grid_source else []) + list(fp.get("attribution") or ())))


def objective_lines(rec) -> list[str]:
    """What the choice minimized, and the break-even volume against each config that costs less to make."""
    from rightsize.recommend import Objective, describe_break_even

    goal, c = Objective(**rec.objective), rec.chosen
    lines = [f"  chosen for {goal.describe()}" + (f": {human_joules(c['lifetime_joules'])}"
                                                  if goal.name == "lifetime" else "")]
    if rec.break_even:
        lines.append("  against adequate configs that cost less to make:")
        lines += [f"    {describe_break_even(c, b, goal.queries_per_day)}" for b in rec.break_even]
    return lines


def _savings_lines(rec) -> list[str]:
    c, big, s, a = rec.chosen, rec.largest, rec.savings, rec.assumptions
    lines = [f"against the largest config evaluated, {big['label']} ({human_count(big['n_params'])} params):"]
    for split, left, right in (("validation", c, big), ("test", c["test"], big["test"])):
        if left and right:
            lines.append(f"  {split:<10} {rec.metric} {_score_text(left['metric'], left['ci'])} vs "
                         f"{_score_text(right['metric'], right['ci'])}  (given up: {rec.given_up[split]:+.4f})")
        else:
            lines.append(f"  {split:<10} not evaluated")
    pct = f": {relative_energy(s['percent_saved'])}" if s["percent_saved"] is not None else ""
    lines.append(f"  J/query    {human_joules(c['joules_per_query'])} vs {human_joules(big['joules_per_query'])}{pct}")
    kwh = JOULES_PER_KWH
    lines.append(f"  lifetime   {c['lifetime_joules'] / kwh:.4g} kWh vs {big['lifetime_joules'] / kwh:.4g} kWh: "
                 f"{_saves(s['lifetime_kwh_saved'], format(abs(s['lifetime_kwh_saved']), '.4g') + ' kWh')} "
                 f"({a['queries_per_day']:,g} queries/day x {a['days']:,g} days, "
                 f"plus fit)")
    if s["lifetime_carbon_g_saved"] is not None:
        lines.append(f"  carbon     {human_grams(c['lifetime_carbon_g'])} vs {human_grams(big['lifetime_carbon_g'])} "
                     f"CO2e: {_saves(s['lifetime_carbon_g_saved'], human_grams(abs(s['lifetime_carbon_g_saved'])))} "
                     f"(PUE {a['pue']:g}, grid {a['region']} "
                     f"{a['grid_g_per_kwh']:g} gCO2e/kWh, {a['grid_year']})")
    else:
        lines.append(f"  carbon     not computed: pass --region CC (e.g. de, us, fr) for the grid intensity (PUE {a['pue']:g})")
    if c["key"] == big["key"]:
        lines.append("  (the choice is the largest config evaluated: nothing smaller is adequate, so nothing is saved)")
    return lines + top_lines(rec)


def _saves(saved: float, amount: str) -> str:
    """``saves AMOUNT``, or ``uses AMOUNT more`` when the saving is negative (never "saves -3 kWh")."""
    return f"saves {amount}" if saved >= 0 else f"uses {amount} more"


def top_lines(rec) -> list[str]:
    """The choice against the ladder's top rung: a measured line, or an estimate's line, never one mixing both."""
    top = rec.top
    if not top or not rec.chosen:
        return []
    jpq = rec.chosen["joules_per_query"]
    head = (f"against the ladder's largest rung, {_quoted(str(top['rung']))} "
            f"({human_count(top['compute_weights'])} compute weights):")
    if top["measured"]:
        m = top["measured"]
        return [head, f"  J/query    {human_joules(jpq)} vs {human_joules(m['joules_per_query'])} measured on "
                      f"{m['split']}: {_saved_words(jpq, m)}"]
    if top["estimate"]:
        e = top["estimate"]
        return [head, f"  J/query    ESTIMATE (not measured): {human_joules(jpq)} vs about "
                      f"{human_joules(e['joules_per_query'])}: {_saved_words(jpq, e)}",
                f"             from {e['basis']}; --measure-largest measures it on test"]
    return [head, "  not evaluated, and nothing measured in this run to estimate it from"]


def _saved_words(jpq: float, top: dict) -> str:
    """The choice's J/query against the top rung's, in words that are never a negative saving."""
    diff = top["joules_per_query"] - jpq
    amount = f"{_saves(diff, human_joules(abs(diff)))} per query"
    if top["percent_saved"] is None:
        return amount
    words = relative_energy(top["percent_saved"])
    return f"{words} per query" if words == "about the same" else f"{words} energy per query ({amount})"


# ---------------------------------------------------------------- export


def export_text(result) -> str:
    copied = [m for m, e in result.models.items() if "path" in e]
    referenced = [m for m, e in result.models.items() if "path" not in e]
    models = "; ".join(part for part in (f"models copied: {', '.join(copied)}" if copied else "",
                                         f"models referenced by id: {', '.join(referenced)}" if referenced else "")
                       if part) or "no model"
    return (f"exported {result.label} to {result.folder} ({result.bytes / 1024**2:.1f} MiB; {models})\n"
            f"  label texts with: rightsize predict {result.folder} INPUT")


# ---------------------------------------------------------------- search


def trial_line(t) -> str:
    from rightsize.naming import knob_text

    score = f"{t.metric} {t.score:.4f}" if t.score is not None else f"{t.metric} -"
    jpq = f"{human_joules(t.joules_per_query)}/query" if t.joules_per_query is not None else "-"
    verdict = {True: ", adequate", False: ", not adequate"}.get(t.adequate, "") if t.outcome != "pruned" else ""
    detail = f" ({t.detail})" if t.detail and t.outcome != "complete" else ""
    return (f"trial {t.number:>3}  {t.rung}  {knob_text(t.searched) or '(ladder values)'}  |  {score}  |  "
            f"{jpq}  |  {t.outcome}{verdict}{detail}")


def search_text(result) -> str:
    counts = ", ".join(f"{n} {name}" for name, n in sorted(result.study_counts.items()))
    lines = [f"study {result.study!r} in {result.storage}: stopped: {result.stopped}",
             f"  trials (all workers): {counts or 'none'}; space: {result.space_size} configs"]
    rec = result.recommendation
    if rec is None:
        lines.append(tried_text(result.tried) if result.tried else f"no recommendation: {result.no_recommendation}")
    elif rec.chosen is None:
        lines.append(f"no adequate config among {len(rec.configs)} evaluated; closest:")
        lines += [f"  {e['label']}: {e['detail']}" for e in rec.closest]
    else:
        c, big = rec.chosen, rec.largest
        ci = f" [{c['ci'][0]:.3f}, {c['ci'][1]:.3f}]" if c.get("ci") else ""
        lines.append(f"recommendation: {c['label']}")
        lines.append(f"  {rec.metric} {c['metric']:.4f}{ci}, {human_joules(c['joules_per_query'])}/query; "
                     f"{c['detail']}")
        if rec.savings and big["key"] != c["key"]:
            pct = rec.savings.get("percent_saved")
            lines.append(f"  against the largest config evaluated ({big['label']}, "
                         f"{human_joules(big['joules_per_query'])}/query): "
                         f"{'not comparable' if pct is None else relative_energy(pct)} energy per query")
    if rec is not None:
        lines += multiplicity_lines(rec)
        lines += energy_tie_lines(rec)
        lines += coverage_lines(rec)
    if result.objective == "pareto" and result.pareto:
        lines.append(f"pareto front ({rec.metric if rec else 'metric'} vs J/query):")
        lines += [f"  {p['label']}: {p['metric']:.4f}, {human_joules(p['joules_per_query'])}/query"
                  for p in result.pareto]
    e = result.energy
    lines.append(f"search energy (this process, {e['source']}): {human_joules(e['total_joules'])} = "
                 f"{human_joules(e['evaluations_joules'])} evaluations (of which {human_joules(e['pruned_joules'])} "
                 f"in pruned trials) + {human_joules(e['overhead_joules'])} search overhead")
    budget = f" of a {human_joules(e['budget_joules'])} budget" if e.get("budget_joules") else ""
    lines.append(f"  the study so far (all workers): {human_joules(e['study_joules'])}{budget}")
    lines.append(f"records: {Path(result.out_dir) / 'runs.jsonl'}")
    if e["estimated"]:
        lines.append(ESTIMATE_NOTE)
    return "\n".join(lines)
