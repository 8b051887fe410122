"""Search vs exhaustive: what `rightsize search` spends to find the smallest adequate config, against
evaluating every config of the same space, and how often both recommend the same config.

Two spaces (ladders below, each with its ``search:`` block), ``--spaces``:

* ``heads``: TF-IDF (C, n-grams), MiniLM-L6 kNN (k, depth 3/6) and probe (C, depth), mpnet-base kNN
  and probe (k / C) at full depth: 19 configs, mostly head knobs on 3 encoder configurations;
* ``depth``: TF-IDF (C), MiniLM-L6 kNN and probe at 2/4/6 layers, mpnet-base kNN and probe at
  2/4/6/8/10/12 layers: 20 configs, 18 of them on 9 encoder configurations.

With the embedding cache, configs that share an encoder configuration share its encoding, so an
exhaustive run costs about one encode per encoder configuration, and the search has to evaluate
the ladder's rungs at their own values (the largest encoder included) before anything else.

For each space and task (Banking77, TREC-6; validation sample ``--limit``, train sample
``--train-limit``):

* **exhaustive**: every config once, through ``evaluate_rung``, in one process;
* **search**: ``run_search`` with ``--trials`` configs, for each of ``--seeds`` sampler seeds.

Each of these runs gets its own empty embedding cache (so no run profits from another's
encodings, while each profits from its own, as a user's run would) and its own run folder. Energy
is one meter window around each run: every evaluation plus, for the search, sampling and storage.
Models and libraries are loaded once before anything is measured, so no run pays the process's
start-up. The search's answer agrees with the exhaustive answer when it is the same config, or a
config that the exhaustive records find adequate and that costs at most 5% more J/query (both
judged on the exhaustive run's records, so measurement noise between runs does not decide).

Figures per task: the search's energy as a fraction of the exhaustive run's (mean and range over
seeds), the agreement count, and a second fraction over the configs' *costs* (``joules``: what
the evaluations would spend with no cache at all), which is derived from the records, not metered.

Usage: python benchmarks/search_vs_exhaustive.py [--tasks banking77,trec6] [--seeds 5] [--trials 8]
       [--limit 200] [--train-limit 500] [--meter auto] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

MPNET = "sentence-transformers/all-mpnet-base-v2"
TARGET = "search energy <= 30% of the exhaustive run's, same answer in >= 4 of 5 seeds, on each task"
COSTLIER = 1.05
RUNGS = f"""\
rungs:
  - {{name: tfidf, kind: tfidf}}
  - {{name: minilm-knn, kind: knn, model: {C.MINILM}}}
  - {{name: minilm-probe, kind: probe, model: {C.MINILM}}}
  # MPNet has no SDPA attention in transformers 5.x: the default (sdpa) fails to load.
  - {{name: mpnet-knn, kind: knn, model: {MPNET}, attn_implementation: eager}}
  - {{name: mpnet-probe, kind: probe, model: {MPNET}, attn_implementation: eager}}
"""
LADDERS = {
    "heads": RUNGS + """\
search:
  knobs: []
  space:
    tfidf: {C: [1.0, 10.0], ngram_max: [1, 2]}
    minilm-knn: {k: [5, 10, 20], layers: [3, 6]}
    minilm-probe: {C: [1.0, 10.0], layers: [3, 6]}
    mpnet-knn: {k: [5, 10, 20]}
    mpnet-probe: {C: [1.0, 10.0]}
""",
    "depth": RUNGS + """\
search:
  knobs: []
  space:
    tfidf: {C: [1.0, 10.0]}
    minilm-knn: {layers: [2, 4, 6]}
    minilm-probe: {layers: [2, 4, 6]}
    mpnet-knn: {layers: [2, 4, 6, 8, 10, 12]}
    mpnet-probe: {layers: [2, 4, 6, 8, 10, 12]}
""",
}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", default="banking77,trec6")
    p.add_argument("--spaces", default="heads", help="comma-separated: heads, depth")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--limit", type=int, default=200)
    p.add_argument("--train-limit", type=int, default=500)
    p.add_argument("--meter", default="auto")
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true", help="TREC-6 only, 2 seeds, small samples: a smoke run")
    p.add_argument("--out", type=Path, help="keep the run folders here (default: a temporary folder)")
    args = p.parse_args(argv)
    if args.quick:
        args.tasks, args.seeds, args.trials, args.limit, args.train_limit = "trec6", 2, 6, 100, 200
    C.quiet()

    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="rightsize-search-bench-") as tmp:
        root = args.out or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        _warm(args.device)
        figures, met = {}, True
        for space in args.spaces.split(","):
            if space not in LADDERS:
                p.error(f"unknown space {space!r}; known: {', '.join(LADDERS)}")
            ladder = root / f"ladder-{space}.yaml"
            ladder.write_text(LADDERS[space])
            figures[space] = {}
            for name in args.tasks.split(","):
                f = figures[space][name] = task_figures(name, ladder, root / space / name, args)
                met = met and f["energy_fraction_mean"] <= 0.30 and f["agree"] >= 0.8 * args.seeds
    config = {"tasks": args.tasks.split(","), "spaces": args.spaces.split(","), "seeds": args.seeds,
              "trials": args.trials, "limit": args.limit, "train_limit": args.train_limit, "meter": args.meter,
              "device": args.device, "ladders": {s: LADDERS[s] for s in args.spaces.split(",")},
              "agreement": f"same config, or adequate on the exhaustive records and <= {COSTLIER:g}x its J/query"}
    C.emit("search_vs_exhaustive", TARGET, met, figures, config)


def _warm(device: str) -> None:
    """Import the libraries and read each model once, outside every measured run."""
    from rightsize.encoder import Encoder

    for model, attn in ((C.MINILM, "sdpa"), (MPNET, "eager")):
        enc = Encoder(model, device=device, attn_implementation=attn)
        enc.load()
        enc.encode(["warm up"] * 8)
        enc.close()
    import sklearn.linear_model  # noqa: F401
    import faiss  # noqa: F401


def task_figures(name: str, ladder: Path, out: Path, args) -> dict:
    from rightsize.recommend import assess, comparable, recommend

    C.log(f"{name}: exhaustive")
    exhaustive = run_exhaustive(name, ladder, out / "exhaustive", args)
    records = exhaustive["records"]
    group = comparable(records)
    by_key = {r["key"]: r for r in group}
    answer = recommend(group).chosen
    verdicts = assess(group, records[0]["target"], records[0]["metric"])
    C.log(f"{name}: exhaustive answer {answer['rung']} {answer['config']} "
          f"({exhaustive['joules']:.0f} J over {len(records)} configs)")
    runs = []
    for seed in range(args.seeds):
        C.log(f"{name}: search seed {seed}")
        runs.append(run_one_search(name, ladder, out / f"search-{seed}", seed, args))
    rows = []
    for run in runs:
        pick = run["pick"]
        same = pick is not None and pick["key"] == answer["key"]
        close = (pick is not None and pick["key"] in by_key and verdicts[pick["key"]].adequate
                 and by_key[pick["key"]]["joules_per_query"] <= COSTLIER * by_key[answer["key"]]["joules_per_query"])
        rows.append({
            "seed": run["seed"], "energy_fraction": run["joules"] / exhaustive["joules"],
            "cost_fraction": run["cost_joules"] / exhaustive["cost_joules"],
            "joules": run["joules"], "configs_evaluated": run["evaluated"], "pruned": run["pruned"],
            "pruned_joules": run["pruned_joules"], "answer": None if pick is None else _label(pick),
            "same": same, "agrees": same or close,
        })
        C.log(f"{name}: seed {run['seed']}: {rows[-1]['energy_fraction']:.0%} of the energy, "
              f"answer {rows[-1]['answer']} ({'agrees' if rows[-1]['agrees'] else 'differs'})")
    fractions = [r["energy_fraction"] for r in rows]
    return {
        "energy_fraction_mean": statistics.mean(fractions),
        "energy_fraction_min": min(fractions),
        "energy_fraction_max": max(fractions),
        "cost_fraction_mean": statistics.mean(r["cost_fraction"] for r in rows),
        "agree": sum(r["agrees"] for r in rows),
        "same": sum(r["same"] for r in rows),
        "seeds": len(rows),
        "exhaustive": {"configs": len(records), "joules": exhaustive["joules"], "cost_joules": exhaustive["cost_joules"],
                       "seconds": exhaustive["seconds"], "answer": _label(answer),
                       "answer_metric": answer["metric"], "answer_joules_per_query": answer["joules_per_query"],
                       "best": _label(recommend(group).best)},
        "energy_source": exhaustive["source"],
        "runs": rows,
    }


def run_exhaustive(name: str, ladder: Path, out: Path, args) -> dict:
    import time

    from rightsize.cache import EmbeddingCache
    from rightsize.energy import make_meter
    from rightsize.evaluate import EvalPlan, evaluate_rung
    from rightsize.ladder import load_ladder
    from rightsize.results import RunLog
    from rightsize.rungs import RunContext
    from rightsize.space import build_space
    from rightsize.tasks import load_data, load_task

    data = load_data(load_task(C.ROOT / "tasks" / f"{name}.yaml"))
    space = build_space(load_ladder(ladder), args.device)
    meter = make_meter(args.meter, device=args.device)
    plan = EvalPlan(split="validation", limit=args.limit, train_limit=args.train_limit)
    log = RunLog(out)
    records = []
    with tempfile.TemporaryDirectory(prefix="rightsize-bench-cache-") as cache_dir:
        context = RunContext(device=args.device, seed=0, cache=EmbeddingCache(cache_dir))
        start = time.perf_counter()
        meter.begin("exhaustive")
        for _, _, spec in space.configs():
            record = evaluate_rung(data, spec, meter, context, plan)
            log.append(record)
            records.append(record)
        m = meter.end("exhaustive")
    failed = [r for r in records if r["status"] != "ok"]
    if failed:
        raise SystemExit(f"{name}: {len(failed)} exhaustive evaluations failed, e.g. {failed[0].get('error')}")
    return {"records": records, "joules": m.joules, "cost_joules": sum(r["joules_total"] for r in records),
            "seconds": time.perf_counter() - start, "source": meter.source}


def run_one_search(name: str, ladder: Path, out: Path, seed: int, args) -> dict:
    from rightsize.search import SearchRequest, run_search

    with tempfile.TemporaryDirectory(prefix="rightsize-bench-cache-") as cache_dir:
        request = SearchRequest(task=C.ROOT / "tasks" / f"{name}.yaml", ladder=ladder, trials=args.trials,
                                out_dir=out, seed=seed, limit=args.limit, train_limit=args.train_limit,
                                meter=args.meter, device=args.device, cache_dir=Path(cache_dir))
        result = run_search(request, on_trial=lambda t: C.log(
            f"  trial {t.number} {t.rung} {t.searched} {t.outcome} {t.detail}"))
    rec = result.recommendation
    evaluated = [r for r in result.records]
    return {"seed": seed, "joules": result.energy["total_joules"],
            "cost_joules": sum(r["joules_total"] for r in evaluated),
            "evaluated": sum(1 for t in result.trials if t.outcome in ("complete", "pruned", "failed")),
            "pruned": sum(1 for t in result.trials if t.outcome == "pruned"),
            "pruned_joules": result.energy["pruned_joules"],
            "pick": rec.chosen if rec is not None else None}


def _label(entry: dict) -> str:
    knobs = {k: v for k, v in entry["config"].items() if k not in ("kind", "model")}
    return entry["rung"] + (" " + " ".join(f"{k}={v}" for k, v in knobs.items()) if knobs else "")


if __name__ == "__main__":
    main()
