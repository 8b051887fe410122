"""Evaluating a ladder on a task: checks first, then each rung, each record appended as it ends."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

from rightsize import environment
from rightsize.cache import EmbeddingCache
from rightsize.coverage import plan_entry
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
    cache_dir: Path | None = None  # the embedding cache (default: RIGHTSIZE_CACHE_DIR or ~/.cache/rightsize/embeddings)
    no_cache: bool = False

    def resolved_out_dir(self) -> Path:
        return self.out_dir if self.out_dir is not None else Path("results") / (self.task_name or Path(self.task).stem)


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RightsizeError("--device cuda: no CUDA device is available (torch.cuda.is_available() is False)")
    return device


def preflight_models(ladder: Ladder, allow_pickle: bool = False) -> Ladder:
    """Every model of the ladder must be reachable before any evaluation starts.

    Returns the ladder to run: a rung marked ``optional`` whose model cannot be had is left out
    with a logged message; any other missing model stops the run (RightsizeError).
    """
    kept = []
    for spec in ladder.rungs:
        try:
            for model in rung_class(spec.kind).models(spec):
                folder = resolve_model(model)
                check_weights_format(folder, model, allow_pickle)
        except RightsizeError as exc:
            if not spec.optional:
                raise
            log.warning("rung %s skipped (optional): %s", spec.name, exc)
            continue
        kept.append(spec.name)
    if not kept:
        raise RightsizeError(f"{ladder.path}: no rung left to run (every optional model is missing)")
    return ladder.select(kept) if len(kept) < len(ladder.rungs) else ladder


def run_evaluation(
    request: EvaluationRequest,
    on_start: Callable[[int, int, RungSpec, bool], None] | None = None,
    specs: Sequence[RungSpec] | None = None,
) -> Iterator[dict]:
    """Yield one record per rung (already-recorded ones are yielded from the log, not redone).

    ``specs``: evaluate these rungs instead of the request's ladder (check's current config); the
    plan then lists just them.
    """
    task = load_task(request.task)
    request.task_name = task.name
    written = load_ladder(request.ladder) if specs is None else Ladder("the given rungs", "", tuple(specs), {})
    ladder = written.select(request.rungs)
    device = resolve_device(request.device)
    ladder = preflight_models(ladder, request.allow_pickle)
    data = load_data(task)
    if getattr(data, request.split) is None:
        raise RightsizeError(f"task {request.task}: has no {request.split} split")
    # Everything that can reject the request comes before the run folder is touched.
    cache = None if request.no_cache else EmbeddingCache(request.cache_dir)
    if cache is not None:
        cache.check_writable()
    meter = make_meter(request.meter, device=device, cpu_watts=request.cpu_watts)
    run_log = RunLog(request.resolved_out_dir())
    run_id = new_run_id()
    run_log.write_environment(environment.collect(run_id, device, meter.describe()))
    context = RunContext(device=device, seed=request.seed, progress=request.progress,
                         trust_remote_code=request.trust_remote_code, allow_pickle=request.allow_pickle,
                         cache=cache)
    plan = EvalPlan(split=request.split, limit=request.limit, train_limit=request.train_limit)
    done = {} if request.force else run_log.completed()
    ident = task_identity(data)
    # The ladder as written, not just the --rungs selected: a `within` answer is certain only once
    # every rung that could set the bar was evaluated. Optional rungs are the ladder's own "may skip".
    planned = [spec for spec in written.rungs if not spec.optional] + [s for s in ladder.rungs if s.optional]
    run_log.write_plan(plan_entry("evaluate", task=task.name, split=request.split, limit=request.limit,
                                  seed=request.seed, run_id=run_id,
                                  rungs=[(s.name, evaluation_key(ident, s, plan, context), s.config())
                                         for s in planned]))
    try:
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
    finally:
        meter.close()
