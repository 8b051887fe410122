"""The training loop of the kinds that train a sequence classifier end to end (``finetune``, and a
distilled student that is a fine-tune).

Why not transformers' ``Trainer``: rightsize needs exactly what it measures and nothing else
running in the ``fit`` window (no checkpoints, logging integrations or evaluation loops), batches
cut by length as the encoder does for inference, a per-epoch hook for the search, and a diverging
run that fails with the epoch named. What it does:

* texts are tokenized once (:class:`~rightsize.token_batches.PackedTokens`); each epoch sorts them by
  token count (ties in a seeded random order), cuts batches of ``batch_size`` and runs the batches
  in a seeded random order, so a batch pads to about its own length instead of the longest text;
* AdamW (no weight decay on biases and norms) with a linear warm-up over the first
  :data:`WARMUP` of the steps and a linear decay to zero, gradient norms clipped;
* ``precision: bf16`` runs forward and loss under bf16 autocast (weights and optimizer stay fp32);
* seeded (torch, numpy, random) and, on the CPU, with ``torch.use_deterministic_algorithms``: the
  same seed gives the same weights, so the same predictions;
* a NaN or infinite loss or gradient stops with :class:`TrainingDiverged` naming the epoch.

Validation is never seen here: the loop trains for its epochs. ``on_epoch`` (see :data:`EpochHook`)
lets the caller look after each epoch (the search prunes a hopeless fine-tune) and stop.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterator, Sequence

import numpy as np

from rightsize.encoder import progress_bar
from rightsize.token_batches import PackedTokens

WARMUP = 0.1  # share of the steps over which the learning rate rises linearly from zero
PRECISIONS = ("fp32", "bf16")

# ``on_epoch(epoch, predict)``: called after each epoch (1-based) with a function that labels texts
# with the model as it is. Raise StopTraining to end the training there (the model as it is goes on
# to inference); any other exception abandons the fit.
EpochHook = Callable[[int, Callable[[Sequence[str]], list[str]]], None]


class StopTraining(Exception):
    """Raised by an ``on_epoch`` hook to end training after this epoch, keeping the model."""


class TrainingDiverged(RuntimeError):
    """The loss or the gradient became NaN or infinite."""


@dataclass(frozen=True)
class TrainSettings:
    epochs: int
    learning_rate: float
    batch_size: int
    precision: str = "fp32"
    device: str = "cpu"
    seed: int = 0
    max_grad_norm: float = 1.0
    weight_decay: float = 0.01
    progress: bool = False
    name: str = "train"  # shown on the progress bar


@dataclass
class TrainingReport:
    """What a training did (a trained rung's ``training()``)."""

    epochs: int = 0  # epochs run
    examples_seen: int = 0  # train examples through the model, epochs included
    steps: int = 0  # optimizer steps
    final_loss: float | None = None  # mean train loss over the last epoch run
    losses: list[float] = field(default_factory=list)  # mean train loss of each epoch
    seconds_per_epoch: list[float] = field(default_factory=list)  # the training alone, not the hook
    stopped: str | None = None  # why it ended before its epochs (an on_epoch hook), else None

    def as_dict(self) -> dict:
        return asdict(self)


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy and random: head initialisation, LoRA and dropout follow."""
    from transformers import set_seed

    set_seed(seed)


@contextlib.contextmanager
def deterministic(device: str) -> Iterator[None]:
    """Deterministic kernels for the duration (CPU only: CUDA would need a cuBLAS workspace setting
    made before the process starts), restored afterwards."""
    import torch

    if device != "cpu":
        yield
        return
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


def autocast(device: str, precision: str):
    """The autocast context of ``precision`` on ``device`` (none for fp32)."""
    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    if precision != "bf16":
        raise ValueError(f"training precision {precision!r} is not one of {PRECISIONS}")
    return torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu", dtype=torch.bfloat16)


def epoch_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One epoch's batches: texts sorted by token count (ties in random order), cut into runs of
    ``batch_size``, the runs in random order."""
    tie = rng.permutation(len(lengths))
    order = tie[np.argsort(lengths[tie], kind="stable")]
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def optimizer_for(params: list, settings: TrainSettings, steps: int):
    """AdamW over ``params`` (no weight decay on biases and norms) and its learning-rate schedule:
    linear warm-up over the first :data:`WARMUP` of ``steps``, then linear decay to zero."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    optimizer = torch.optim.AdamW(
        [{"params": [p for p in params if p.ndim >= 2], "weight_decay": settings.weight_decay},
         {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}],
        lr=settings.learning_rate)
    return optimizer, get_linear_schedule_with_warmup(optimizer, int(WARMUP * steps), steps)


def train(model, tokens: PackedTokens, targets: np.ndarray, settings: TrainSettings, *,
          on_epoch: EpochHook | None = None,
          predict: Callable[[Sequence[str]], list[str]] | None = None) -> TrainingReport:
    """Train ``model`` (features -> logits) on ``tokens`` with cross-entropy against ``targets``:
    class indices (n,), or class probabilities (n, classes) as a teacher gives them. Seed first
    (:func:`seed_everything`) where the model's initial weights must follow the seed too.
    ``predict`` is what ``on_epoch`` receives."""
    import torch

    n = len(tokens.lengths)
    if n == 0:
        raise ValueError("no train examples to train on")
    device = next(model.parameters()).device  # batches go where the model is
    soft = targets.ndim == 2
    target = torch.as_tensor(targets, dtype=torch.float32 if soft else torch.long)
    params = [p for p in model.parameters() if p.requires_grad]
    per_epoch = math.ceil(n / settings.batch_size)
    optimizer, schedule = optimizer_for(params, settings, per_epoch * settings.epochs)
    rng = np.random.default_rng(settings.seed)
    report = TrainingReport()
    for epoch in range(1, settings.epochs + 1):
        model.train()
        bar = progress_bar(n, f"{settings.name} epoch {epoch}/{settings.epochs}", settings.progress)
        loss_sum, seen = 0.0, 0
        started = time.perf_counter()
        for step, idx in enumerate(epoch_batches(tokens.lengths, settings.batch_size, rng), start=1):
            features = {k: v.to(device) for k, v in tokens.pad(idx).items()}
            with autocast(settings.device, settings.precision):
                logits = model(features)
            loss = torch.nn.functional.cross_entropy(logits.float(), target[idx].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(params, settings.max_grad_norm)
            loss_value, norm_value = torch.stack([loss.detach(), norm.detach().to(loss.device)]).tolist()
            if not (math.isfinite(loss_value) and math.isfinite(norm_value)):
                bar.close()
                what = "loss" if not math.isfinite(loss_value) else "gradient norm"
                value = loss_value if what == "loss" else norm_value
                raise TrainingDiverged(f"the train {what} became {value} in epoch {epoch} of {settings.epochs} "
                                       f"(step {step} of {per_epoch}): try a lower learning_rate")
            optimizer.step()
            schedule.step()
            loss_sum += loss_value * len(idx)
            seen += len(idx)
            report.steps += 1
            report.examples_seen += len(idx)
            bar.update(len(idx))
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", refresh=False)
        bar.close()
        report.seconds_per_epoch.append(time.perf_counter() - started)
        report.epochs = epoch
        report.final_loss = loss_sum / n
        report.losses.append(report.final_loss)
        if on_epoch is not None and predict is not None:
            try:
                on_epoch(epoch, predict)
            except StopTraining as stop:
                report.stopped = str(stop) or f"stopped after epoch {epoch}"
                break
    model.eval()
    return report


def predict_logits(model, tokens: PackedTokens, batch_size: int, precision: str, device: str,
                   call: Callable | None = None) -> np.ndarray:
    """``model``'s outputs (or ``call``'s, a function of the features: the pooled features, say), float32,
    one row per text in input order; longest texts first in batches of ``batch_size``."""
    import torch

    n = len(tokens.lengths)
    model.eval()
    call = call or model
    out: np.ndarray | None = None
    order = np.argsort(-tokens.lengths, kind="stable")
    where = next(model.parameters()).device
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            with autocast(device, precision):
                rows = call({k: v.to(where) for k, v in tokens.pad(idx).items()})
            rows = rows.float().cpu().numpy()
            if out is None:
                out = np.empty((n, rows.shape[1]), dtype=np.float32)
            out[idx] = rows
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)
