"""Evaluating a ladder on a task: checks first, then each rung, each record appended as it ends."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Callable, Iterator, Sequence

from rightsize.coverage import plan_entry
from rightsize.evaluate import (EvalPlan, evaluate_rung, evaluation_key, measured_alike, measurement_settings,
                                 task_identity)
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
            key = evaluation_key(ident, spec, plan, run.context)
            # Another process evaluating the same key (a second `evaluate` on this folder) is waited
            # for, and its record reused: nothing is evaluated twice, nothing lost.
            with run.run_log.evaluating(key):
                if key not in done and not request.force:
                    done = run.run_log.completed()
                previous = _reusable(done.get(key), spec, run.meter)
                if on_start:
                    on_start(i, len(run.ladder.rungs), spec, previous is not None)
                if previous is not None:
                    record = replace(previous, extra={**previous.extra, SHOWN_STATUS: "recorded earlier"})
                else:
                    record = evaluate_rung(run.data, spec, run.meter, run.context, plan, run_id=run.run_id,
                                           artifacts=run.artifacts)
                    run.run_log.append(record)
                    if not record.ok:
                        log.warning("rung %s failed: %s", spec.name, record.error)
            yield record


def _reusable(previous: Record | None, spec: RungSpec, meter) -> Record | None:
    """The recorded evaluation, when it was measured as this run would measure it (else None, said)."""
    if previous is None or measured_alike(previous, meter):
        return previous
    then = {k: getattr(previous, k) for k in measurement_settings(meter)}
    log.warning("%s was measured with %s; measuring it again with %s", spec.name, _settings_text(then),
                _settings_text(measurement_settings(meter)))
    return None


def _settings_text(settings: dict) -> str:
    watts = settings.get("cpu_watts_per_core")
    return f"{settings.get('energy_source')}" + (f" at {watts:g} W per core" if watts else "")
