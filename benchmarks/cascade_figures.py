"""Cascades against their single stages, tuned on validation and confirmed on test.

From the run folder of ``rightsize search TASK --ladder rightsize/ladders/cascades.yaml`` (validation),
each cascade's threshold is the one the search measured that the policy finds adequate at the least
J/query (none adequate: the most accurate). ``--confirm`` then evaluates the single rungs and the
cascades at those thresholds on the test split (``rightsize evaluate --split test``, the same
``--limit``/``--train-limit``) and judges adequacy there with the same policy. Prints a Markdown table
per task and a verdict: is a cascade adequate and cheaper than every adequate single rung?

Usage: python benchmarks/cascade_figures.py RUN_DIR --task tasks/trec6.yaml --confirm TEST_DIR
       [--limit 300 --train-limit 1000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import yaml

from rightsize.adequacy import comparable, judge
from rightsize.naming import variant_labels
from rightsize.results import RunLog
from rightsize.tables import human_joules

LADDER = Path(__file__).resolve().parent.parent / "rightsize" / "ladders" / "cascades.yaml"


def _entries(run_dir: Path, split: str) -> tuple[str, list[dict]]:
    """The metric and, per config scored on ``split``, its figures and the policy's adequacy there
    (one bootstrap over the configs compared, Holm-corrected, as ``rightsize recommend`` judges)."""
    records = RunLog(run_dir, create=False).records()
    group = comparable(records, split)
    if not group:
        raise SystemExit(f"{run_dir}: no ok {split} records")
    metric = group[-1].metric
    verdicts = judge(group, group[-1].target, metric, adjust="holm").verdicts
    labels = variant_labels(group)
    return metric, [{"config": labels[r.key], "rung": r.rung, "settings": r.config or {}, "metric": r.score(metric),
                     "ci": r.interval(metric), "joules_per_query": r.joules_per_query,
                     "adequate": verdicts[r.key].adequate, "answered_share": (r.facts or {}).get("answered_share")}
                    for r in group]


def _cascade(e: dict) -> bool:
    return e["settings"].get("kind") == "cascade"


def tuned_thresholds(run_dir: Path) -> dict[str, float]:
    """Per cascade rung, the threshold chosen on validation."""
    _, entries = _entries(run_dir, "validation")
    by_rung: dict[str, list[dict]] = {}
    for e in entries:
        if _cascade(e):
            by_rung.setdefault(e["rung"], []).append(e)
    chosen = {}
    for rung, members in by_rung.items():
        adequate = [e for e in members if e["adequate"]]
        best = (min(adequate, key=lambda e: e["joules_per_query"]) if adequate
                else max(members, key=lambda e: (e["metric"], -e["joules_per_query"])))
        chosen[rung] = best["settings"].get("threshold", 0.9)  # a config leaves out a default knob
    return chosen


def confirm(task: str, thresholds: dict[str, float], out: Path, limit: int, train_limit: int) -> None:
    """Evaluate the single rungs and the tuned cascades on the test split."""
    ladder = yaml.safe_load(LADDER.read_text())
    for rung in ladder["rungs"]:
        if rung["name"] in thresholds:
            rung["threshold"] = thresholds[rung["name"]]
    ladder.pop("search", None)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "tuned-ladder.yaml"
    path.write_text(yaml.safe_dump(ladder, sort_keys=False))
    subprocess.run([sys.executable, "-c", "import sys; from rightsize.cli import cli; sys.argv[0] = 'rightsize'; cli()",
                    "evaluate", task, "--ladder", str(path), "--split", "test", "--limit", str(limit),
                    "--train-limit", str(train_limit), "--meter", "estimate", "--out", str(out), "--quiet"],
                   check=False)


def rows(run_dir: Path, split: str, thresholds: dict[str, float]) -> tuple[str, list[dict]]:
    """One row per single rung and per cascade at its tuned threshold."""
    metric, entries = _entries(run_dir, split)
    singles = sorted((e for e in entries if not _cascade(e)), key=lambda e: e["joules_per_query"])
    tuned = [e for e in entries if _cascade(e) and e["settings"].get("threshold", 0.9) == thresholds.get(e["rung"])]
    cascades = sorted(tuned, key=lambda e: e["joules_per_query"])
    return metric, singles + [{**e, "config": f"{e['rung']} (threshold={thresholds[e['rung']]:g})"} for e in cascades]


def verdict(table: list[dict], split: str) -> str:
    singles = [r for r in table if not _cascade(r)]
    adequate_singles = [r for r in singles if r["adequate"]]
    cheapest = min(adequate_singles, key=lambda r: r["joules_per_query"]) if adequate_singles else None
    words = []
    for c in (r for r in table if _cascade(r)):
        if not c["adequate"]:
            words.append(f"`{c['config']}` is not adequate on {split}")
        elif cheapest is None:
            words.append(f"`{c['config']}` is adequate on {split} and no single rung is")
        elif c["joules_per_query"] < cheapest["joules_per_query"]:
            pct = 100 * (1 - c["joules_per_query"] / cheapest["joules_per_query"])
            words.append(f"`{c['config']}` is adequate on {split} and cheaper than every adequate single rung "
                         f"({pct:.0f}% less than `{cheapest['config']}`)")
        else:
            words.append(f"`{c['config']}` is adequate on {split} but not cheaper than `{cheapest['config']}`")
    return "; ".join(words) + "."


def markdown(metric: str, table: list[dict], split: str) -> str:
    lines = [f"| {split} | {metric} [95% CI] | J/query | answered by stage | adequate |", "|---|---:|---:|---|---|"]
    for r in table:
        ci = f" [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]" if r["ci"] else ""
        share = " · ".join(f"{s:.0%}" for s in r["answered_share"]) if _cascade(r) and r["answered_share"] else "-"
        lines.append(f"| `{r['config']}` | {r['metric']:.3f}{ci} | {human_joules(r['joules_per_query'])} | {share} "
                     f"| {'yes' if r['adequate'] else 'no'} |")
    return "\n".join(lines) + "\n\n" + verdict(table, split)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--task", required=True)
    p.add_argument("--confirm", type=Path, help="Run folder for the test split (evaluated when it has no records).")
    p.add_argument("--limit", type=int, default=300)
    p.add_argument("--train-limit", type=int, default=1000)
    args = p.parse_args(argv)
    thresholds = tuned_thresholds(args.run_dir)
    metric, table = rows(args.run_dir, "validation", thresholds)
    print(f"thresholds tuned on validation: {json.dumps(thresholds)}\n")
    print(markdown(metric, table, "validation"))
    result = {"task": args.task, "thresholds": thresholds, "validation": table}
    if args.confirm:
        if not (args.confirm / "runs.jsonl").exists():
            confirm(args.task, thresholds, args.confirm, args.limit, args.train_limit)
        _, test_table = rows(args.confirm, "test", thresholds)
        print("\n" + markdown(metric, test_table, "test"))
        result["test"] = test_table
    json.dump(result, sys.stderr)


if __name__ == "__main__":
    main()
