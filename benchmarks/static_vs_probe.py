"""Static embeddings against the MiniLM probe: inference energy per query and accuracy, side by side.

Two rungs over the same real MiniLM-L6 weights are fit on a seeded train sample of a task: the
``probe`` (the transformer encodes every text, a logistic regression on top) and ``static`` (token
vectors distilled from the same transformer once, in the fit; inference is a look-up and a mean).
Both then label the same validation texts (SST-2's 872 by default) in alternating rounds, each round
in its own meter window, with no embedding cache, so every inference is paid for. The figure is the
probe's J/query over the static model's (median over rounds), with each one's accuracy on those
texts and what the static model's fit (its distillation) cost.

Usage: python benchmarks/static_vs_probe.py [--task sst2] [--train-limit 2000] [--limit 1000]
       [--rounds 5] [--pca-dims 256] [--meter auto] [--threads N]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="sst2", help="a task file name in tasks/ (sst2, trec6, ...)")
    p.add_argument("--model", default=C.MINILM)
    p.add_argument("--train-limit", type=int, default=2000)
    p.add_argument("--limit", type=int, default=1000, help="validation texts labelled per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--pca-dims", type=int, default=256)
    p.add_argument("--max-length", type=int, default=128, help="tokens kept per text, both rungs")
    p.add_argument("--meter", default="auto")
    p.add_argument("--threads", type=int, default=None, help="the rungs' threads knob (torch and BLAS)")
    args = p.parse_args(argv)
    C.quiet()

    from rightsize.energy import make_meter
    from rightsize.evaluate import subsample
    from rightsize.rungs import RunContext, RungSpec, build_rung
    from rightsize.tasks import load_data, load_task
    from rightsize.threads import restore_threads

    data = load_data(load_task(C.ROOT / "tasks" / f"{args.task}.yaml"))
    train_texts, train_labels = subsample(data.train, args.train_limit, seed=0)
    texts, labels = subsample(data.validation, args.limit, seed=0)
    meter = make_meter(args.meter, device="cpu")
    common = {"max_length": args.max_length, "threads": args.threads}
    specs = {"probe": RungSpec("minilm-probe", "probe", args.model, common),
             "static": RungSpec("minilm-static", "static", args.model, {**common, "pca_dims": args.pca_dims})}
    rungs, fit = {}, {}
    for name, spec in specs.items():
        C.log(f"{spec.name}: load and fit on {len(train_texts)} train texts")
        rung = build_rung(spec, RunContext(device="cpu", cache=None), meter)
        rung.load()
        meter.begin("fit")
        rung.fit(train_texts, train_labels)
        m = meter.end("fit")
        fit[name] = {"joules": m.joules, "seconds": m.seconds}
        rung.predict(texts[:32])  # first-call work (allocations, kernels) out of the rounds
        rungs[name] = rung

    per_query: dict[str, list[float]] = {name: [] for name in rungs}
    seconds: dict[str, list[float]] = {name: [] for name in rungs}
    predicted: dict[str, list[str]] = {}
    for r in range(args.rounds):
        order = list(rungs) if r % 2 == 0 else list(rungs)[::-1]  # A/B, then B/A: drift hits both
        for name in order:
            meter.begin(name)
            predicted[name] = rungs[name].predict(texts)
            m = meter.end(name)
            per_query[name].append(m.joules / len(texts))
            seconds[name].append(m.seconds / len(texts))
        C.log(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{n} {per_query[n][-1] * 1e3:.3f} mJ/query" for n in order))
    meter.close()

    def summary(name: str) -> dict:
        accuracy = sum(p == y for p, y in zip(predicted[name], labels)) / len(labels)
        return {"rung": specs[name].name, "joules_per_query": C.median(per_query[name]),
                "ms_per_query": C.median(seconds[name]) * 1e3, "accuracy": round(accuracy, 4),
                "n_params": rungs[name].n_params(), "fit_joules": round(fit[name]["joules"], 2),
                "fit_seconds": round(fit[name]["seconds"], 2), "facts": rungs[name].facts()}

    probe, static = summary("probe"), summary("static")
    for rung in rungs.values():
        rung.close()
    restore_threads()
    ratio = probe["joules_per_query"] / static["joules_per_query"]
    C.emit(
        "static_vs_probe",
        target="report the probe's J/query over the static model's on the same texts, with both accuracies",
        met=None,
        figures={"jpq_ratio_probe_over_static": round(ratio, 1),
                 "accuracy_gap_probe_minus_static": round(probe["accuracy"] - static["accuracy"], 4),
                 "params_ratio_probe_over_static": round(probe["n_params"] / static["n_params"], 2),
                 "probe": probe, "static": static, "energy_source": meter.source},
        config={"task": args.task, "model": args.model, "train_limit": len(train_texts), "texts": len(texts),
                "rounds": args.rounds, "pca_dims": args.pca_dims, "max_length": args.max_length,
                "threads": args.threads, "meter": args.meter, "cache": None},
    )


if __name__ == "__main__":
    main()
