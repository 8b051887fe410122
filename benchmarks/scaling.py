"""Scaling: time and peak memory against dataset size (1k, 10k, 50k SST-2 training texts).

Each (size, workload) runs in its own subprocess, so its peak resident memory is its own: the
peak is reset (``/proc/self/clear_refs``) once the model is loaded and warm, and read back
(``VmHWM``) after the work. Workloads:

* ``encoder``: rightsize's encoder over the n texts (max length 64, batch 64): the path every
  encoder rung's fit takes. By default a *small* encoder: MiniLM's own tokenizer (the same tokens)
  and a 2-layer, 128-wide BERT body with random weights, because 61k texts through MiniLM take
  longer than the whole benchmark budget on 2 cores and only the pipeline is measured here
  (``--model sentence-transformers/all-MiniLM-L6-v2 --layers 1`` runs the real one). Its memory can
  only grow by the output matrix (n x dim float32) if batches are streamed and nothing holds all n
  tokenizations; the figure ``extra_beyond_output_mib`` is what grows beyond that.
* ``tfidf``: the TF-IDF rung's fit on the n texts and inference on the 872 validation texts (its
  sparse matrix and vocabulary grow with n by nature; reported, not judged).

Time is judged linear when the time per text at the largest size is within 1.5x of that at the
middle size (the smallest is dominated by fixed costs); memory flat when ``extra_beyond_output_mib``
(the batch working set: activations, one tokenized chunk) grows by less than 16 MiB from the middle
size to the largest.

Usage: python benchmarks/scaling.py [--sizes 1000,10000,50000] [--model small|ID [--layers N]]
       python benchmarks/scaling.py --child encoder 10000   (one measurement, used by the parent)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

LINEAR_TOLERANCE = 1.5
FLAT_GROWTH_MIB = 16.0


def rss_mib(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def child(workload: str, n: int, args: argparse.Namespace) -> dict:
    C.quiet()
    import torch

    torch.set_num_threads(args.threads or torch.get_num_threads())
    texts = C.read_texts("sst2", n)
    out: dict = {"workload": workload, "n": n, "n_distinct": len(set(texts))}
    if workload == "encoder":
        from rightsize.encoder import Encoder

        enc = Encoder(args.model, layers=args.layers, max_length=64, batch_size=64)
        out["model"] = args.model
        enc.load()
        enc.encode(texts[:256])  # warm
        out["peak_reset"] = reset_peak()
        before = rss_mib()
        t = time.perf_counter()
        vectors = enc.encode(texts)
        out["seconds"] = time.perf_counter() - t
        out["output_mib"] = vectors.nbytes / 2**20
    else:
        from rightsize.rungs import RunContext, RungSpec, build_rung

        labels = [json.loads(line)["label"] for line in open(C.DEFAULT_DATA / "sst2" / "train.jsonl")][:n]
        queries = C.read_texts("sst2", 872, split="validation")
        rung = build_rung(RungSpec("tfidf", "tfidf"), RunContext())
        rung.load()  # imports scikit-learn: start-up, not scaling
        out["peak_reset"] = reset_peak()
        before = rss_mib()
        t = time.perf_counter()
        rung.fit(texts, labels)
        rung.predict(queries)
        out["seconds"] = time.perf_counter() - t
        out["output_mib"] = 0.0
    out["rss_before_mib"] = before
    out["peak_rss_mib"] = rss_mib("VmHWM")
    out["extra_peak_mib"] = out["peak_rss_mib"] - before
    out["extra_beyond_output_mib"] = out["extra_peak_mib"] - out["output_mib"]
    out["ms_per_1k_texts"] = out["seconds"] / n * 1e6
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1000,10000,50000")
    p.add_argument("--workloads", default="encoder,tfidf")
    p.add_argument("--model", default="small", help="'small' (see above), or a model id / path")
    p.add_argument("--layers", type=int, default=None, help="keep the first N layers of --model")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--child", nargs=2, metavar=("WORKLOAD", "N"))
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), args)))
        return

    sizes = [int(s) for s in args.sizes.split(",")]
    if args.model == "small":
        C.quiet()
        holder = tempfile.TemporaryDirectory(prefix="rightsize-small-encoder-")  # removed at exit
        args.model = str(C.small_encoder(Path(holder.name)))
        model_name = "small (MiniLM tokenizer, BERT 2 layers x 128, random weights)"
    else:
        model_name = args.model
    workloads = args.workloads.split(",")
    rows: dict[str, list[dict]] = {w: [] for w in workloads}
    for workload in workloads:
        for n in sizes:
            cmd = [sys.executable, __file__, "--child", workload, str(n), "--model", args.model]
            cmd += (["--layers", str(args.layers)] if args.layers else []) + \
                (["--threads", str(args.threads)] if args.threads else [])
            C.log(f"{workload} n={n}")
            done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
            if done.returncode != 0:
                raise SystemExit(f"scaling child {workload} {n} failed:\n{done.stderr[-2000:]}")
            row = json.loads(done.stdout.strip().splitlines()[-1])
            C.log(f"  {row['seconds']:.1f}s, +{row['extra_peak_mib']:.0f} MiB peak "
                  f"({row['extra_beyond_output_mib']:.0f} MiB beyond the output)")
            rows[workload].append(row)

    figures: dict = {}
    for workload, found in rows.items():
        figures[workload] = [{k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items() if k != "workload"}
                             for r in found]
    met = None
    if "encoder" in rows and len(rows["encoder"]) >= 2:
        enc = rows["encoder"]
        mid, big = enc[-2], enc[-1]
        time_ratio = big["ms_per_1k_texts"] / mid["ms_per_1k_texts"]
        figures["encoder_time_per_text_largest_over_middle"] = round(time_ratio, 3)
        growth = big["extra_beyond_output_mib"] - mid["extra_beyond_output_mib"]
        figures["encoder_extra_beyond_output_growth_mib"] = round(growth, 1)
        met = bool(time_ratio <= LINEAR_TOLERANCE and growth < FLAT_GROWTH_MIB and all(r["peak_reset"] for r in enc))
    C.emit("scaling", f"encoder time linear (per-text time within {LINEAR_TOLERANCE}x), memory flat "
                      f"(working set beyond the output matrix grows < {FLAT_GROWTH_MIB:.0f} MiB, middle to largest size)", met, figures,
           {"sizes": sizes, "model": model_name, "layers": args.layers, "max_length": 64, "batch_size": 64,
            "dataset": "sst2 train (first n)"})


if __name__ == "__main__":
    main()
