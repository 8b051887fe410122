"""The trained rungs' figures from a run folder: accuracy [95% CI], fit J, J/query and the break-even
volume against a reference config (default mpnet-probe), as a Markdown table and one JSON object.

Usage: python benchmarks/trained_figures.py RUN_DIR [--against mpnet-probe]
(the run folder of `rightsize evaluate TASK --ladder rightsize/ladders/trained.yaml ...`).
"""

from __future__ import annotations

import argparse
import json
import sys

from rightsize.adequacy import comparable
from rightsize.recommend import break_even_queries
from rightsize.results import RunLog


def figures(run_dir: str, against: str) -> list[dict]:
    group = comparable(RunLog(run_dir, create=False).records())
    metric = group[0].metric
    ref = next((r for r in group if r.rung == against), None)
    if ref is None:
        raise SystemExit(f"{run_dir}: no ok validation record of {against!r}")
    ref_fit = ref.fit_joules
    rows = []
    for r in sorted(group, key=lambda r: r.joules_per_query):
        fit, jpq = r.fit_joules, r.joules_per_query
        even = None if r is ref else break_even_queries(fit, jpq, ref_fit, ref.joules_per_query)
        rows.append({"config": r.rung, "metric": metric, "score": r.score(metric),
                     "ci": r.interval(metric), "fit_joules": fit, "joules_per_query": jpq,
                     "trained": bool(r.training), "energy_source": r.energy_source,
                     "break_even_queries_vs_reference": even,
                     "cheaper_at_every_volume": even is None and r is not ref and fit <= ref_fit
                     and jpq <= ref.joules_per_query})
    return rows


def table(rows: list[dict], against: str) -> list[str]:
    """``rows`` (of :func:`figures`, in the order given) as the lines of a Markdown table."""
    lines = [f"| config | {rows[0]['metric']} [95% CI] | fit J | J/query | break-even vs {against} |", "|---|---|---|---|---|"]
    for r in rows:
        ci = f" [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]" if r["ci"] else ""
        even = ("reference" if r["config"] == against else "cheaper at every volume"
                if r["cheaper_at_every_volume"] else "never" if r["break_even_queries_vs_reference"] is None
                else f"{r['break_even_queries_vs_reference']:,.0f} queries")
        lines.append(f"| {r['config']} | {r['score']:.3f}{ci} | {r['fit_joules']:.1f} | "
                     f"{r['joules_per_query'] * 1e3:.3f} m | {even} |")
    return lines


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("--against", default="mpnet-probe")
    args = p.parse_args(argv)
    rows = figures(args.run_dir, args.against)
    print("\n".join(table(rows, args.against)))
    json.dump({"run_dir": args.run_dir, "against": args.against, "rows": rows}, sys.stderr)


if __name__ == "__main__":
    main()
