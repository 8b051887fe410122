"""ONNX Runtime against torch: the same encoder (MiniLM-L6, real weights) run by rightsize's Encoder
under ``runtime: torch`` and ``runtime: onnx``, at fp32 and int8 (dynamic quantization on both sides).

Every path tokenizes and batches the same way (rightsize's encode loop), on the same texts, batch
size and thread count; only the runtime and precision differ. Exports are made before timing starts
(their cost is the ``load`` phase's, paid once per cached export). After a warm-up of each, the paths
run in rotating order round after round (a busy machine slows all alike), and the figures are ratios
of median times to torch fp32, with each path's least and mean cosine to torch fp32's vectors: a
faster path that computes other vectors would be no result. No embedding cache: every round encodes.

Usage: python benchmarks/onnx_vs_torch.py [--n 1000] [--rounds 3] [--threads 1] [--batch-size 64]
       [--dataset sst2] [--meter auto|estimate|rapl]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

TARGET_RATIO = 2.0  # onnx int8 throughput over torch fp32
TARGET_COSINE = 0.99  # least cosine of onnx int8's vectors to torch fp32's
PATHS = {"torch_fp32": ("torch", "fp32"), "torch_int8": ("torch", "int8"),
         "onnx_fp32": ("onnx", "fp32"), "onnx_int8": ("onnx", "int8")}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=C.MINILM)
    p.add_argument("--dataset", default="sst2")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--threads", type=int, default=1, help="torch and onnxruntime threads")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--meter", default="auto")
    args = p.parse_args(argv)

    C.quiet()
    import numpy as np

    from rightsize.encoder import Encoder
    from rightsize.energy import make_meter
    from rightsize.threads import set_threads

    set_threads(args.threads, ("torch",))
    texts = C.read_texts(args.dataset, args.n)
    meter = make_meter(args.meter)
    encoders, load_s = {}, {}
    for name, (runtime, precision) in PATHS.items():
        start = time.perf_counter()
        enc = Encoder(args.model, runtime=runtime, precision=precision, batch_size=args.batch_size,
                      max_length=args.max_length, threads=args.threads)
        enc.load()
        encoders[name], load_s[name] = enc, time.perf_counter() - start
        C.log(f"{name}: loaded in {load_s[name]:.1f}s")
        enc.encode(texts[:128])  # warm-up

    seconds: dict[str, list[float]] = {k: [] for k in PATHS}
    cpu: dict[str, list[float]] = {k: [] for k in PATHS}
    joules: dict[str, list[float]] = {k: [] for k in PATHS}
    outputs: dict[str, np.ndarray] = {}
    names = list(PATHS)
    for r in range(args.rounds):
        order = names[r % len(names):] + names[: r % len(names)]  # each path leads once in a while
        for name in order:
            meter.begin(name)
            cpu_start = time.process_time()
            outputs[name] = encoders[name].encode(texts)
            cpu[name].append(time.process_time() - cpu_start)
            m = meter.end(name)
            seconds[name].append(m.seconds)
            joules[name].append(m.joules)
        C.log(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {seconds[k][-1]:.2f}s" for k in names))
    meter.close()

    reference = outputs["torch_fp32"]  # rows are L2-normalized: the dot product is the cosine
    cosine = {k: np.sum(v * reference, axis=1) for k, v in outputs.items()}
    med = {k: C.median(v) for k, v in seconds.items()}
    figures = {
        "throughput_ratio_to_torch_fp32": {k: round(med["torch_fp32"] / med[k], 3) for k in names},
        "cpu_time_ratio_to_torch_fp32": {k: round(C.median(cpu["torch_fp32"]) / C.median(cpu[k]), 3) for k in names},
        "texts_per_s": {k: round(len(texts) / med[k], 1) for k in names},
        "min_cosine_to_torch_fp32": {k: round(float(c.min()), 5) for k, c in cosine.items()},
        "mean_cosine_to_torch_fp32": {k: round(float(c.mean()), 5) for k, c in cosine.items()},
        "j_per_text": {k: C.median(joules[k]) / len(texts) for k in names},
        "energy_source": meter.source,
        "load_s": {k: round(v, 2) for k, v in load_s.items()},
        "onnx_check_cosine": {k: encoders[k].onnx.check_cosine for k in names if encoders[k].onnx is not None},
        "rounds_s": {k: [round(x, 3) for x in v] for k, v in seconds.items()},
        "rounds_cpu_s": {k: [round(x, 3) for x in v] for k, v in cpu.items()},
        "peak_rss_mib": round(C.peak_rss_mib(), 1),
    }
    for enc in encoders.values():
        enc.close()
    config = {"model": args.model, "dataset": args.dataset, "n": len(texts), "batch_size": args.batch_size,
              "max_length": args.max_length, "threads": args.threads, "rounds": args.rounds}
    ratio = figures["throughput_ratio_to_torch_fp32"]["onnx_int8"]
    least = figures["min_cosine_to_torch_fp32"]["onnx_int8"]
    C.emit("onnx_vs_torch", f"onnx int8 >= {TARGET_RATIO:g}x torch fp32 throughput at cosine >= {TARGET_COSINE} "
           f"(least over the texts)", bool(ratio >= TARGET_RATIO and least >= TARGET_COSINE), figures, config)


if __name__ == "__main__":
    main()
