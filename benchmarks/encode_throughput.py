"""Encode throughput: rightsize's encoder path against a plain ``SentenceTransformer.encode``.

Both sides run the *same loaded module* (rightsize's ``Encoder.st``) on the same texts, batch size,
device, precision and torch thread count, so the only difference is the encode loop itself. After a
warm-up of each, the two alternate A B / B A round after round (a busy machine slows both alike)
and the figure is the ratio of the median times. The two outputs are compared too: a faster path
that computed different vectors would be no result.

Usage: python benchmarks/encode_throughput.py [--n 2000] [--batch-size 64] [--threads 2]
       [--device cpu|cuda] [--precision fp32|bf16] [--attn sdpa|eager] [--meter auto|estimate|nvml]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

TARGET_SPEEDUP = 1.2


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=C.MINILM)
    p.add_argument("--dataset", default="sst2")
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: the CPU count)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    p.add_argument("--attn", default="sdpa", choices=("sdpa", "eager"))
    p.add_argument("--meter", default="auto")
    p.add_argument("--max-length", type=int, default=None)
    args = p.parse_args(argv)

    C.quiet()
    import numpy as np
    import torch

    from rightsize.encoder import Encoder
    from rightsize.energy import make_meter

    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    texts = C.read_texts(args.dataset, args.n)
    meter = make_meter(args.meter, device=args.device)
    enc = Encoder(args.model, device=args.device, precision=args.precision, batch_size=args.batch_size,
                  max_length=args.max_length, attn_implementation=args.attn)
    enc.load()
    st = enc.st
    max_length = enc.max_length
    st.max_seq_length = max_length  # the plain path truncates where rightsize does

    def rightsize_path(batch: list[str]) -> np.ndarray:
        return enc.encode(batch)

    def plain_path(batch: list[str]) -> np.ndarray:
        return st.encode(batch, batch_size=args.batch_size, normalize_embeddings=True, convert_to_numpy=True,
                         show_progress_bar=False)

    paths = {"rightsize": rightsize_path, "sentence_transformers": plain_path}
    C.log(f"warm-up ({args.model}, {args.device}, {args.precision}, {args.attn}, {threads} threads)")
    for fn in paths.values():
        fn(texts[:256])

    seconds: dict[str, list[float]] = {k: [] for k in paths}
    cpu: dict[str, list[float]] = {k: [] for k in paths}
    joules: dict[str, list[float]] = {k: [] for k in paths}
    outputs: dict[str, np.ndarray] = {}
    for r in range(args.rounds):
        order = list(paths) if r % 2 == 0 else list(reversed(paths))  # A B, B A, A B, ...
        for name in order:
            window = f"{name}-{r}"
            meter.begin(window)
            cpu_start = time.process_time()
            outputs[name] = paths[name](texts)
            cpu[name].append(time.process_time() - cpu_start)
            m = meter.end(window)
            seconds[name].append(m.seconds)
            joules[name].append(m.joules)
        C.log(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {seconds[k][-1]:.2f}s" for k in paths))
    meter.close()

    a, b = outputs["rightsize"], outputs["sentence_transformers"]
    cosine = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    med = {k: C.median(v) for k, v in seconds.items()}
    speedup = med["sentence_transformers"] / med["rightsize"]
    figures = {
        "speedup": round(speedup, 3),
        # CPU seconds of this process: what the work took, barely moved by other processes' load
        # (on a GPU it is the host's share only, so the wall-time speedup is the figure there).
        "speedup_cpu_time": round(C.median(cpu["sentence_transformers"]) / C.median(cpu["rightsize"]), 3),
        "rightsize_texts_per_s": round(len(texts) / med["rightsize"], 1),
        "sentence_transformers_texts_per_s": round(len(texts) / med["sentence_transformers"], 1),
        "rightsize_median_s": round(med["rightsize"], 4),
        "sentence_transformers_median_s": round(med["sentence_transformers"], 4),
        "rightsize_j_per_text": C.median(joules["rightsize"]) / len(texts),
        "sentence_transformers_j_per_text": C.median(joules["sentence_transformers"]) / len(texts),
        "energy_source": meter.source,
        "min_cosine_between_paths": round(float(cosine.min()), 6),
        "rounds_s": {k: [round(x, 4) for x in v] for k, v in seconds.items()},
        "rounds_cpu_s": {k: [round(x, 4) for x in v] for k, v in cpu.items()},
        "rounds_j": {k: [round(x, 4) for x in v] for k, v in joules.items()},
    }
    config = {"model": args.model, "dataset": args.dataset, "n": len(texts), "batch_size": args.batch_size,
              "threads": threads, "device": args.device, "precision": args.precision, "attn": args.attn,
              "max_length": max_length, "rounds": args.rounds}
    # Same vectors (bf16/fp16 round differently with different padding, hence the looser bound).
    same = cosine.min() > (0.9999 if args.precision == "fp32" else 0.99)
    C.emit("encode_throughput", f"rightsize >= {TARGET_SPEEDUP}x plain SentenceTransformer.encode (same vectors)",
           bool(speedup >= TARGET_SPEEDUP and same), figures, config)


if __name__ == "__main__":
    main()
