"""Evaluating a ladder on a task: checks first, then each rung, each record appended as it ends."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from rightsize import environment
from rightsize.energy import make_meter
from rightsize.errors import RightsizeError
from rightsize.evaluate import EvalPlan, evaluate_rung, evaluation_key, new_run_id, task_identity
from rightsize.ladder import Ladder, load_ladder
from rightsize.models import check_weights_format, resolve_model
from rightsize.results import RunLog
from rightsize.rungs import RunContext, RungSpec, rung_class
from rightsize.tasks import load_data, load_task

log = logging.getLogger(__name__)


@dataclass
class EvaluationRequest:
    task: Path
    ladder: Path | None = None
    rungs: list[str] | None = None
    limit: int | None = None
    train_limit: int | None = None
    split: str = "validation"
    out_dir: Path | None = None
    meter: str = "auto"
    cpu_watts: float | None = None
    device: str = "auto"
    seed: int = 0
    force: bool = False
    progress: bool = False
    trust_remote_code: bool = False
    allow_pickle: bool = False
    task_name: str | None = None

    def resolved_out_dir(self) -> Path:
        return self.out_dir if self.out_dir is not None else Path("results") / (self.task_name or Path(self.task).stem)


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RightsizeError("--device cuda: no CUDA device is available (torch.cuda.is_available() is False)")
    return device


def preflight_models(ladder: Ladder, allow_pickle: bool = False) -> None:
    """Every model of the ladder must be reachable before any evaluation starts."""
    for spec in ladder.rungs:
        if rung_class(spec.kind).needs_model and spec.model:
            folder = resolve_model(spec.model)
            check_weights_format(folder, spec.model, allow_pickle)


def run_evaluation(
    request: EvaluationRequest,
    on_start: Callable[[int, int, RungSpec, bool], None] | None = None,
) -> Iterator[dict]:
    """Yield one record per rung (already-recorded ones are yielded from the log, not redone)."""
    task = load_task(request.task)
    request.task_name = task.name
    ladder = load_ladder(request.ladder).select(request.rungs)
    device = resolve_device(request.device)
    preflight_models(ladder, request.allow_pickle)
    data = load_data(task)
    if getattr(data, request.split) is None:
        raise RightsizeError(f"task {request.task}: has no {request.split} split")
    meter = make_meter(request.meter, device=device, cpu_watts=request.cpu_watts)
    run_log = RunLog(request.resolved_out_dir())
    run_id = new_run_id()
    run_log.write_environment(environment.collect(run_id, device, meter.describe()))
    context = RunContext(device=device, seed=request.seed, progress=request.progress,
                         trust_remote_code=request.trust_remote_code, allow_pickle=request.allow_pickle)
    plan = EvalPlan(split=request.split, limit=request.limit, train_limit=request.train_limit)
    done = {} if request.force else run_log.completed()
    ident = task_identity(data)
    for i, spec in enumerate(ladder.rungs, 1):
        previous = done.get(evaluation_key(ident, spec, plan, context))
        if on_start:
            on_start(i, len(ladder.rungs), spec, previous is not None)
        if previous is not None:
            yield {**previous, "_shown_status": "recorded earlier"}
            continue
        record = evaluate_rung(data, spec, meter, context, plan, run_id=run_id)
        run_log.append(record)
        if record["status"] != "ok":
            log.warning("rung %s failed: %s", spec.name, record.get("error"))
        yield record
