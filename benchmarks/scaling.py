"""Scaling: time and peak memory against dataset size (1k, 10k, 50k SST-2 training texts).

Each measurement runs in its own subprocess, so its peak resident memory is its own: once the
model is loaded and warm, the heap is trimmed (``gc.collect``, glibc's ``malloc_trim``: the
baseline then holds no freed memory that the work could reuse unseen) and the peak is reset
(``/proc/self/clear_refs``); it is read back (``VmHWM``) after the work. Workloads:

* ``encoder``: rightsize's encoder over the n texts (max length 64, batch 64): the path every
  encoder rung's fit takes. By default a *small* encoder: MiniLM's own tokenizer (the same tokens)
  and a 2-layer, 128-wide BERT body with random weights, because 61k texts through MiniLM take
  longer than the whole benchmark budget on 2 cores and only the pipeline is measured here
  (``--model sentence-transformers/all-MiniLM-L6-v2 --layers 1`` runs the real one). Its memory can
  only grow by the output matrix (n x dim float32) if batches are streamed and nothing holds all n
  tokenizations; the figures ``*_beyond_output_mib`` are what grows beyond that.
* ``tfidf``: the TF-IDF rung's fit on the n texts and inference on the 872 validation texts (its
  sparse matrix and vocabulary grow with n by nature; reported, not judged; one run, default
  allocator).

The encoder runs three times per size:

* *timed*, default allocator: the time figures, and ``extra_beyond_output_default_malloc_mib``
  (reported, not judged). By default glibc raises its mmap threshold to the largest block freed so
  far, so the MB-sized activation buffers of later batches come from the heap, and how much freed
  heap stays resident depends on the order of earlier allocations: identical runs differ by 10 MiB
  and more (the 10k to 50k growth ranged from +0.3 to +20 MiB over runs of unchanged code).
* *resident*, under ``MALLOC_MMAP_THRESHOLD_=131072`` (glibc's starting threshold, held fixed):
  every block over 128 KiB is mapped when allocated and unmapped when freed, so the peak is what
  the process holds at once, the same to a few MiB from run to run: ``extra_beyond_output_mib``.
  Encoding is 1.3 to 1.7x slower so (each activation buffer is mapped afresh): hence the timed run.
* *traced*, with ``tracemalloc`` on (numpy reports its arrays to it): ``traced_beyond_output_mib``,
  the peak of Python objects and numpy arrays beyond the output. Torch's activations are not
  traced, so this sees what the resident figure partly cannot: the batch working set (~25 MiB
  here) peaks in the first, longest batches, and a copy of the output made after the last batch
  overlaps little of it (checked: a concatenated copy of the 50k output adds about 7 MiB to the
  resident figure and 20 MiB to the traced one).

Time is judged linear when the time per text at the largest size is within 1.5x of that at the
middle size (the smallest is dominated by fixed costs); memory flat when ``extra_beyond_output_mib``
(the batch working set: activations, one tokenized chunk, the packed token ids) and
``traced_beyond_output_mib`` both grow by less than 16 MiB from the middle size to the largest.

Usage: python benchmarks/scaling.py [--sizes 1000,10000,50000] [--model small|ID [--layers N]]
       python benchmarks/scaling.py --child encoder 10000 [--traced]   (one measurement, for the parent)
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

LINEAR_TOLERANCE = 1.5
FLAT_GROWTH_MIB = 16.0
# The resident run's allocator setting (see the docstring): glibc's starting threshold, held fixed.
PINNED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "131072"}


def rss_mib(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def trim_heap() -> bool:
    """Hand the heap's free pages back to the kernel (glibc), so the baseline RSS holds no freed
    memory that the measured work could reuse without it counting; False where there is no glibc."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        return True
    except (OSError, AttributeError):
        return False


def reset_peak() -> bool:
    """Trim the heap, then reset VmHWM to the current RSS (Linux >= 4.0); False where the kernel
    does not allow the reset."""
    gc.collect()
    trim_heap()
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
    out: dict = {"workload": workload, "n": n, "n_distinct": len(set(texts)),
                 "malloc_mmap_threshold": os.environ.get("MALLOC_MMAP_THRESHOLD_")}
    if workload == "encoder":
        from rightsize.encoder import Encoder

        enc = Encoder(args.model, layers=args.layers, max_length=64, batch_size=64)
        out["model"] = args.model
        enc.load()
        enc.encode(texts[:256])  # warm
        if args.traced:
            tracemalloc.start()
        out["peak_reset"] = reset_peak()
        before = rss_mib()
        t = time.perf_counter()
        vectors = enc.encode(texts)
        out["seconds"] = time.perf_counter() - t
        out["output_mib"] = vectors.nbytes / 2**20
        if args.traced:
            out["traced_beyond_output_mib"] = tracemalloc.get_traced_memory()[1] / 2**20 - out["output_mib"]
            tracemalloc.stop()
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


def run_child(workload: str, n: int, args: argparse.Namespace, env: dict[str, str] | None = None,
              traced: bool = False) -> dict:
    cmd = [sys.executable, __file__, "--child", workload, str(n), "--model", args.model]
    cmd += (["--layers", str(args.layers)] if args.layers else []) + \
        (["--threads", str(args.threads)] if args.threads else []) + (["--traced"] if traced else [])
    env = env or {}
    how = " ".join([f"{k}={v}" for k, v in env.items()] + (["tracemalloc"] if traced else []))
    C.log(f"{workload} n={n}{' (' + how + ')' if how else ''}")
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env})
    if done.returncode != 0:
        raise SystemExit(f"scaling child {workload} {n} failed:\n{done.stderr[-2000:]}")
    row = json.loads(done.stdout.strip().splitlines()[-1])
    C.log(f"  {row['seconds']:.1f}s, +{row['extra_peak_mib']:.0f} MiB peak "
          f"({row['extra_beyond_output_mib']:.0f} MiB beyond the output)"
          + (f", {row['traced_beyond_output_mib']:.1f} MiB traced beyond it" if traced else ""))
    return row


def encoder_row(n: int, args: argparse.Namespace) -> dict:
    """One size's encoder figures from its three runs (see the docstring)."""
    row = run_child("encoder", n, args)  # timed: the default allocator
    resident = run_child("encoder", n, args, env=PINNED_MALLOC)
    traced = run_child("encoder", n, args, traced=True)
    row["extra_beyond_output_default_malloc_mib"] = row["extra_beyond_output_mib"]
    for key in ("malloc_mmap_threshold", "rss_before_mib", "peak_rss_mib", "extra_peak_mib", "extra_beyond_output_mib"):
        row[key] = resident[key]
    row["traced_beyond_output_mib"] = traced["traced_beyond_output_mib"]
    row["peak_reset"] = row["peak_reset"] and resident["peak_reset"]
    return row


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1000,10000,50000")
    p.add_argument("--workloads", default="encoder,tfidf")
    p.add_argument("--model", default="small", help="'small' (see above), or a model id / path")
    p.add_argument("--layers", type=int, default=None, help="keep the first N layers of --model")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--child", nargs=2, metavar=("WORKLOAD", "N"))
    p.add_argument("--traced", action="store_true", help="(child) also trace Python/numpy allocations")
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
            rows[workload].append(encoder_row(n, args) if workload == "encoder" else run_child(workload, n, args))

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
        growth = {key: big[key] - mid[key] for key in ("extra_beyond_output_mib", "traced_beyond_output_mib",
                                                         "extra_beyond_output_default_malloc_mib")}
        for key, value in growth.items():
            figures[f"encoder_{key.removesuffix('_mib')}_growth_mib"] = round(value, 1)
        met = bool(time_ratio <= LINEAR_TOLERANCE and growth["extra_beyond_output_mib"] < FLAT_GROWTH_MIB
                   and growth["traced_beyond_output_mib"] < FLAT_GROWTH_MIB and all(r["peak_reset"] for r in enc))
    C.emit("scaling", f"encoder time linear (per-text time within {LINEAR_TOLERANCE}x), memory flat "
                      f"(working set beyond the output matrix grows < {FLAT_GROWTH_MIB:.0f} MiB, middle to largest size, "
                      f"resident and traced)", met, figures,
           {"sizes": sizes, "model": model_name, "layers": args.layers, "max_length": 64, "batch_size": 64,
            "dataset": "sst2 train (first n)", "encoder_runs": {
                "timed": "default allocator", "resident": PINNED_MALLOC, "traced": "tracemalloc"}})


if __name__ == "__main__":
    main()
