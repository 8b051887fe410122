"""Cache reuse: what a second evaluation costs when it shares an encoder configuration with the first.

Two kNN rungs over the same MiniLM encoder (same model, depth, length, precision, batch size),
differing only in the head (k = 10, then k = 5), are evaluated one after the other through
``evaluate_rung`` with one embedding cache, on TREC-6 (a seeded train sample and validation
sample). The figure is the second evaluation's *spent* energy over the first's: total, and the
encoding alone. The *charged* energy (what each configuration costs, which comparisons read) must
come out the same for both: the cache may save work, never make a configuration look cheaper.

Usage: python benchmarks/cache_reuse.py [--train-limit 2000] [--limit 500] [--meter auto] [--threads N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

TARGET_RATIO = 0.10


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=C.MINILM)
    p.add_argument("--train-limit", type=int, default=2000)
    p.add_argument("--limit", type=int, default=500)
    p.add_argument("--meter", default="auto")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="the rungs' threads knob (torch, FAISS and BLAS)")
    args = p.parse_args(argv)
    C.quiet()

    from rightsize.cache import EmbeddingCache
    from rightsize.encoder import Encoder
    from rightsize.energy import make_meter
    from rightsize.evaluate import EvalPlan, evaluate_rung
    from rightsize.models import resolve_model
    from rightsize.rungs import RunContext, RungSpec
    from rightsize.threads import set_threads
    from rightsize.tasks import load_data, load_task

    data = load_data(load_task(C.ROOT / "tasks" / "trec6.yaml"))
    meter = make_meter(args.meter, device=args.device)
    plan = EvalPlan(split="validation", limit=args.limit, train_limit=args.train_limit)
    with tempfile.TemporaryDirectory(prefix="rightsize-bench-cache-") as tmp:
        cache = EmbeddingCache(tmp)
        # The weights' sha256 is memoized per cache folder; computing it here keeps a one-off
        # 90 MB hash out of the first evaluation, which would flatter the ratio.
        cache.weights_hash(resolve_model(args.model))
        # Warm the process (imports, first model load, allocator) so the first load phase is not
        # charged one-off start-up work that the second would then seem to save.
        set_threads(args.threads)
        warm = Encoder(args.model, device=args.device)
        warm.load()
        warm.encode(data.train.texts[:64])
        warm.close()
        context = RunContext(device=args.device, cache=cache)
        records = []
        for k in (10, 5):
            spec = RungSpec(f"minilm-knn-k{k}", "knn", args.model, {"k": k, "threads": args.threads})
            C.log(f"evaluating {spec.name}")
            record = evaluate_rung(data, spec, meter, context, plan)
            if not record.ok:
                raise SystemExit(f"{spec.name} failed: {record.error}")
            records.append(record)
    meter.close()

    first, second = records

    def spent(r, phases=("load", "fit", "infer")) -> float:
        return sum(r.joules_spent[ph] for ph in phases)

    def summary(r) -> dict:
        return {"rung": r.rung, "joules_spent": {k: round(v, 3) for k, v in r.joules_spent.items()},
                "seconds_spent": {k: round(v, 3) for k, v in r.seconds_spent.items()},
                "joules_charged_total": round(r.joules_total, 3), "cache": r.cache,
                "accuracy": r.score("accuracy")}

    ratio_total = spent(second) / spent(first)
    figures = {
        "second_over_first_spent": round(ratio_total, 4),
        "second_over_first_encode_spent": round(
            second.cache["encode_joules_spent"] / first.cache["encode_joules_spent"], 4),
        "second_over_first_spent_fit_infer": round(spent(second, ("fit", "infer")) / spent(first, ("fit", "infer")), 4),
        "second_over_first_seconds": round(second.seconds_total_spent / first.seconds_total_spent, 4),
        "charged_second_over_first": round(second.joules_total / first.joules_total, 4),
        "energy_source": first.energy_source,
        "first": summary(first),
        "second": summary(second),
    }
    config = {"model": args.model, "task": "trec6", "train_limit": args.train_limit, "limit": args.limit,
              "device": args.device, "threads": args.threads, "heads": ["knn k=10", "knn k=5"]}
    C.emit("cache_reuse", f"second evaluation sharing an encoder spends < {TARGET_RATIO:.0%} of the first",
           ratio_total < TARGET_RATIO, figures, config)


if __name__ == "__main__":
    main()
