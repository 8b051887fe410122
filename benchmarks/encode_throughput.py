"""Encode throughput: rightsize's encoder path against a plain ``SentenceTransformer.encode``.

Both sides run the *same loaded module* (rightsize's ``Encoder.st``) on the same texts, batch size,
device, precision and torch thread count, so the only difference is the encode loop itself. After a
warm-up of each, the two alternate A B / B A round after round (a busy machine slows both alike)
and the figure is the ratio of the median times. The two outputs are compared too: a faster path
that computed different vectors would be no result.

Usage: python benchmarks/encode_throughput.py [--n 2000] [--batch-size 64] [--threads 2]
       [--device cpu|cuda] [--precision fp32|bf16] [--attn sdpa|eager] [--meter auto|estimate|nvml]
       [--configs fp32:sdpa,fp32:eager,bf16:sdpa,bf16:eager]

``--configs`` runs several precision:attention configurations in this one process, one JSON line
each: torch, CUDA and the meter (whose GPU characterisation takes a second) start once. Each
measured window runs its path enough times to last the meter's shortest resolvable window (ten
steps of a GPU's energy counter), and the figures are per pass, with their uncertainty.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

TARGET_SPEEDUP = 1.2
PRECISIONS = ("fp32", "bf16", "fp16")
ATTENTIONS = ("sdpa", "eager")


def configs_of(text: str) -> list[tuple[str, str]]:
    """"fp32:sdpa,bf16:eager" -> [("fp32", "sdpa"), ("bf16", "eager")]; SystemExit naming a bad one."""
    out = []
    for item in (t.strip() for t in text.split(",") if t.strip()):
        precision, _, attn = item.partition(":")
        if precision not in PRECISIONS or attn not in ATTENTIONS:
            raise SystemExit(f"--configs: {item!r} is not PRECISION:ATTENTION ({'|'.join(PRECISIONS)}:"
                             f"{'|'.join(ATTENTIONS)})")
        out.append((precision, attn))
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=C.MINILM)
    p.add_argument("--dataset", default="sst2")
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: the CPU count)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS)
    p.add_argument("--attn", default="sdpa", choices=ATTENTIONS)
    p.add_argument("--configs", help="several PRECISION:ATTENTION, comma-separated, in this one process")
    p.add_argument("--meter", default="auto")
    p.add_argument("--max-length", type=int, default=None)
    args = p.parse_args(argv)
    configs = configs_of(args.configs) if args.configs else [(args.precision, args.attn)]

    C.quiet()
    import torch

    from rightsize.energy import make_meter

    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    texts = C.read_texts(args.dataset, args.n)
    meter = make_meter(args.meter, device=args.device)
    try:
        for precision, attn in configs:
            measure(args, texts, meter, threads, precision, attn)
    finally:
        meter.close()


def measure(args, texts: list[str], meter, threads: int, precision: str, attn: str) -> None:
    """One configuration: both paths, alternated round by round; prints its JSON line."""
    import numpy as np

    from rightsize.encoder import Encoder

    enc = Encoder(args.model, device=args.device, precision=precision, batch_size=args.batch_size,
                  max_length=args.max_length, attn_implementation=attn)
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
    C.log(f"warm-up ({args.model}, {args.device}, {precision}, {attn}, {threads} threads)")
    for fn in paths.values():
        fn(texts[:256])
    # Passes per window: enough for the meter to resolve it (one timed pass of the faster path sizes it).
    meter.begin("size")
    rightsize_path(texts)
    passes = max(1, math.ceil(meter.min_window_s / max(meter.end("size").seconds, 1e-6)))

    seconds: dict[str, list[float]] = {k: [] for k in paths}
    cpu: dict[str, list[float]] = {k: [] for k in paths}
    joules: dict[str, list[float]] = {k: [] for k in paths}
    gross: dict[str, list[float]] = {k: [] for k in paths}
    uncertainty: dict[str, list[float]] = {k: [] for k in paths}
    below = False
    outputs: dict[str, np.ndarray] = {}
    for r in range(args.rounds):
        order = list(paths) if r % 2 == 0 else list(reversed(paths))  # A B, B A, A B, ...
        for name in order:
            window = f"{name}-{r}"
            meter.begin(window)
            cpu_start = time.process_time()
            for _ in range(passes):
                outputs[name] = paths[name](texts)
            cpu[name].append((time.process_time() - cpu_start) / passes)
            full = meter.end(window)
            below |= full.below_resolution
            m = full.per_pass(passes)
            seconds[name].append(m.seconds)
            joules[name].append(m.net_joules)
            gross[name].append(m.joules)
            uncertainty[name].append(m.uncertainty)
        C.log(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {seconds[k][-1]:.3f}s" for k in paths))
    enc.close()

    a, b = outputs["rightsize"], outputs["sentence_transformers"]
    cosine = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    med = {k: C.median(v) for k, v in seconds.items()}
    speedup = med["sentence_transformers"] / med["rightsize"]
    n = len(texts)
    figures = {
        "speedup": round(speedup, 3),
        # CPU seconds of this process: what the work took, barely moved by other processes' load
        # (on a GPU it is the host's share only, so the wall-time speedup is the figure there).
        "speedup_cpu_time": round(C.median(cpu["sentence_transformers"]) / C.median(cpu["rightsize"]), 3),
        "rightsize_texts_per_s": round(n / med["rightsize"], 1),
        "sentence_transformers_texts_per_s": round(n / med["sentence_transformers"], 1),
        "rightsize_median_s": round(med["rightsize"], 4),
        "sentence_transformers_median_s": round(med["sentence_transformers"], 4),
        # J/text as J/query is recorded: net of a GPU's idle draw where the meter measured one; gross too.
        "rightsize_j_per_text": C.median(joules["rightsize"]) / n,
        "sentence_transformers_j_per_text": C.median(joules["sentence_transformers"]) / n,
        "rightsize_j_per_text_gross": C.median(gross["rightsize"]) / n,
        "sentence_transformers_j_per_text_gross": C.median(gross["sentence_transformers"]) / n,
        # How far one window's reading can be off (the counter's step x power), per text.
        "rightsize_j_per_text_uncertainty": C.median(uncertainty["rightsize"]) / n,
        "sentence_transformers_j_per_text_uncertainty": C.median(uncertainty["sentence_transformers"]) / n,
        "energy_basis": meter.basis,
        "passes_per_window": passes,
        "below_resolution": below,
        "energy_source": meter.source,
        "min_cosine_between_paths": round(float(cosine.min()), 6),
        "rounds_s": {k: [round(x, 4) for x in v] for k, v in seconds.items()},
        "rounds_cpu_s": {k: [round(x, 4) for x in v] for k, v in cpu.items()},
        "rounds_j": {k: [round(x, 4) for x in v] for k, v in joules.items()},
    }
    config = {"model": args.model, "dataset": args.dataset, "n": n, "batch_size": args.batch_size,
              "threads": threads, "device": args.device, "precision": precision, "attn": attn,
              "max_length": max_length, "rounds": args.rounds}
    # Same vectors (bf16/fp16 round differently with different padding, hence the looser bound).
    same = cosine.min() > (0.9999 if precision == "fp32" else 0.99)
    C.emit("encode_throughput", f"rightsize >= {TARGET_SPEEDUP}x plain SentenceTransformer.encode (same vectors)",
           bool(speedup >= TARGET_SPEEDUP and same), figures, config, meter=meter.describe())


if __name__ == "__main__":
    main()
