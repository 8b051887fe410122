"""Fine-tuning throughput: rightsize's training loop against a plain PyTorch/transformers loop.

Both sides train the *same model* (MiniLM-L6, real weights, put back to its loaded weights before
every run, with the same seeded head) on the same texts, for the same epochs, batch size, threads,
optimizer, schedule and gradient clipping (``rightsize.training.optimizer_for``). The one
difference is the loop: rightsize tokenizes once and runs length-bucketed batches in a seeded
order (``rightsize.training.train``); the plain loop does what a DataLoader with a padding collator
does, fixed-size batches in random order, each tokenized and padded to its longest text. The two
alternate A B / B A, one seed per round, and the figure is the ratio of the median times; the final
train losses are compared against their spread over the seeds.

Usage: python benchmarks/finetune_throughput.py [--n 1000] [--epochs 1] [--batch-size 32]
       [--threads 2] [--rounds 2] [--dataset sst2] [--max-length 128] [--device cpu] [--meter auto]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

TARGET_SPEEDUP = 1.2
LOSS_TOLERANCE = 0.05  # relative: "the same loss" when the seeds' own spread is smaller than this


def plain_train(model, tokenizer, texts, targets, settings, max_length: int):
    """A plain loop: random-order batches of ``batch_size``, each tokenized and padded to its longest."""
    import numpy as np
    import torch

    from rightsize.training import autocast, optimizer_for

    params = [p for p in model.parameters() if p.requires_grad]
    n = len(texts)
    per_epoch = math.ceil(n / settings.batch_size)
    optimizer, schedule = optimizer_for(params, settings, per_epoch * settings.epochs)
    target = torch.as_tensor(targets, dtype=torch.long)
    rng = np.random.default_rng(settings.seed)
    padded = 0
    loss_sum = 0.0
    for _ in range(settings.epochs):
        model.train()
        loss_sum = 0.0
        order = rng.permutation(n)
        for start in range(0, n, settings.batch_size):
            idx = order[start : start + settings.batch_size]
            batch = tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=max_length,
                              return_tensors="pt")
            padded += int(batch["input_ids"].numel())
            with autocast(settings.device, settings.precision):
                logits = model(dict(batch))
            loss = torch.nn.functional.cross_entropy(logits.float(), target[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, settings.max_grad_norm)
            optimizer.step()
            schedule.step()
            loss_sum += loss.item() * len(idx)
    model.eval()
    return loss_sum / n, padded


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=C.MINILM)
    p.add_argument("--dataset", default="sst2")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=5e-5)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: the CPU count)")
    p.add_argument("--rounds", type=int, default=2, help="A/B pairs, one seed each")
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    p.add_argument("--meter", default="auto")
    args = p.parse_args(argv)

    C.quiet()
    import numpy as np
    import torch

    from rightsize.token_batches import PackedTokens
    from rightsize.energy import make_meter
    from rightsize.rungs import RunContext, RungSpec, build_rung
    from rightsize.training import TrainSettings, epoch_batches, seed_everything, train

    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    texts, labels = C.read_examples(args.dataset, args.n)
    classes = sorted(set(labels))
    targets = np.array([classes.index(y) for y in labels], dtype=np.int64)
    meter = make_meter(args.meter, device=args.device)
    knobs = {"max_length": args.max_length, "batch_size": args.batch_size, "epochs": args.epochs,
             "learning_rate": args.learning_rate, "precision": args.precision}
    rung = build_rung(RungSpec("bench", "finetune", args.model, knobs), RunContext(device=args.device))
    rung.load()
    tokenizer, max_length = rung.encoder.st.tokenizer, rung.encoder.max_length
    loaded = {k: v.detach().clone() for k, v in rung.backbone.state_dict().items()}

    def fresh(seed: int):
        """The loaded weights again, and a head drawn from ``seed``: both sides start alike."""
        rung.backbone.load_state_dict(loaded)
        seed_everything(seed)
        return rung._build(len(classes))

    def settings(seed: int) -> TrainSettings:
        return TrainSettings(epochs=args.epochs, learning_rate=args.learning_rate, batch_size=args.batch_size,
                             precision=args.precision, device=args.device, seed=seed)

    def rightsize_path(seed: int):
        model = fresh(seed)
        tokens = PackedTokens.of(tokenizer, texts, max_length)  # inside the timing: tokenizing is part of it
        report = train(model, tokens, targets, settings(seed))
        rng = np.random.default_rng(seed)
        padded = sum(len(b) * int(tokens.lengths[b].max())
                     for _ in range(args.epochs) for b in epoch_batches(tokens.lengths, args.batch_size, rng))
        return report.final_loss, padded

    def plain_path(seed: int):
        return plain_train(fresh(seed), tokenizer, texts, targets, settings(seed), max_length)

    paths = {"rightsize": rightsize_path, "plain": plain_path}
    C.log(f"{args.model} on {len(texts)} {args.dataset} texts, {args.epochs} epoch(s), batch {args.batch_size}, "
          f"{threads} threads, {args.device} {args.precision}")
    seconds = {k: [] for k in paths}
    cpu = {k: [] for k in paths}
    joules = {k: [] for k in paths}
    losses = {k: [] for k in paths}
    padded = {}
    for r in range(args.rounds):
        order = list(paths) if r % 2 == 0 else list(reversed(paths))  # A B, B A, ...
        for name in order:
            window = f"{name}-{r}"
            meter.begin(window)
            cpu_start = time.process_time()
            loss, padded[name] = paths[name](r)
            cpu[name].append(time.process_time() - cpu_start)
            m = meter.end(window)
            seconds[name].append(m.seconds)
            joules[name].append(m.joules)
            losses[name].append(loss)
        C.log(f"round {r + 1}/{args.rounds} (seed {r}): " +
              ", ".join(f"{k} {seconds[k][-1]:.1f}s loss {losses[k][-1]:.4f}" for k in paths))
    meter.close()

    med = {k: C.median(v) for k, v in seconds.items()}
    speedup = med["plain"] / med["rightsize"]
    examples = len(texts) * args.epochs
    mean_loss = {k: statistics.fmean(v) for k, v in losses.items()}
    spread = max((statistics.stdev(v) if len(v) > 1 else 0.0) for v in losses.values())
    gap = abs(mean_loss["rightsize"] - mean_loss["plain"])
    same_loss = gap <= max(2 * spread, LOSS_TOLERANCE * mean_loss["plain"])
    figures = {
        "speedup": round(speedup, 3),
        "speedup_cpu_time": round(C.median(cpu["plain"]) / C.median(cpu["rightsize"]), 3),
        "rightsize_texts_per_s": round(examples / med["rightsize"], 1),
        "plain_texts_per_s": round(examples / med["plain"], 1),
        "rightsize_final_loss": round(mean_loss["rightsize"], 4),
        "plain_final_loss": round(mean_loss["plain"], 4),
        "loss_gap": round(gap, 4),
        "loss_spread_over_seeds": round(spread, 4),
        "padded_tokens_ratio": round(padded["plain"] / padded["rightsize"], 3),
        "rightsize_j_per_text": C.median(joules["rightsize"]) / examples,
        "plain_j_per_text": C.median(joules["plain"]) / examples,
        "energy_source": meter.source,
        "rounds_s": {k: [round(x, 2) for x in v] for k, v in seconds.items()},
        "rounds_loss": {k: [round(x, 4) for x in v] for k, v in losses.items()},
        "rounds_j": {k: [round(x, 2) for x in v] for k, v in joules.items()},
    }
    config = {"model": args.model, "dataset": args.dataset, "n": len(texts), "epochs": args.epochs,
              "batch_size": args.batch_size, "learning_rate": args.learning_rate, "threads": threads,
              "device": args.device, "precision": args.precision, "max_length": max_length, "rounds": args.rounds}
    C.emit("finetune_throughput",
           f"rightsize's training loop >= {TARGET_SPEEDUP}x a plain loop (same final train loss within the seeds' spread)",
           bool(speedup >= TARGET_SPEEDUP and same_loss), figures, config)


if __name__ == "__main__":
    main()
