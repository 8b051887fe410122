"""Evaluating a ladder on a task: checks first, then each rung, each record appended as it ends."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Callable, Iterator, Sequence

from rightsize.coverage import plan_entry
from rightsize.evaluate import EvalPlan, evaluate_rung, evaluation_key, task_identity
from rightsize.records import Record
from rightsize.rungs import RungSpec
from rightsize.session import RunOptions, open_run
from rightsize.tables import SHOWN_STATUS

log = logging.getLogger(__name__)


@dataclass
class EvaluationRequest(RunOptions):
    rungs: list[str] | None = None
    split: str = "validation"
    seed: int = 0
    force: bool = False


def run_evaluation(
    request: EvaluationRequest,
    on_start: Callable[[int, int, RungSpec, bool], None] | None = None,
    specs: Sequence[RungSpec] | None = None,
) -> Iterator[Record]:
    """Yield one record per rung (already-recorded ones are yielded from the log, not redone, with
    ``SHOWN_STATUS`` "recorded earlier" in ``extra``).

    ``specs``: evaluate these rungs instead of the request's ladder (check's current config); the
    plan then lists just them.
    """
    with open_run(request, seed=request.seed, rungs=request.rungs, split=request.split, specs=specs) as run:
        plan = EvalPlan(split=request.split, limit=request.limit, train_limit=request.train_limit)
        done = {} if request.force else run.run_log.completed()
        ident = task_identity(run.data)
        run.run_log.write_plan(plan_entry(
            "evaluate", task=run.task.name, split=request.split, limit=request.limit, seed=request.seed,
            run_id=run.run_id, rungs=[(s.name, evaluation_key(ident, s, plan, run.context), s.config())
                                      for s in run.planned]))
        for i, spec in enumerate(run.ladder.rungs, 1):
            previous = done.get(evaluation_key(ident, spec, plan, run.context))
            if on_start:
                on_start(i, len(run.ladder.rungs), spec, previous is not None)
            if previous is not None:
                yield replace(previous, extra={**previous.extra, SHOWN_STATUS: "recorded earlier"})
                continue
            record = evaluate_rung(run.data, spec, run.meter, run.context, plan, run_id=run.run_id,
                                   artifacts=run.artifacts)
            run.run_log.append(record)
            if not record.ok:
                log.warning("rung %s failed: %s", spec.name, record.error)
            yield record
