"""Confirming a choice on the test split: evaluate a chosen validation config once on held-out data.

The test split never takes part in choosing (see :mod:`rightsize.recommend`); it is read here, once per
config, to report the held-out score of what was chosen. The test records are appended to the same
``runs.jsonl`` (split ``"test"``), so a second ``recommend`` finds them and evaluates nothing again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from rightsize.artifacts import ArtifactStore
from rightsize.errors import RightsizeError
from rightsize.evaluate import EvalPlan, evaluate_rung, evaluation_key, task_identity
from rightsize.recommend import spec_from_config
from rightsize.records import Record
from rightsize.rungs import RunContext, RungSpec
from rightsize.session import Session, check_models, resolve_device
from rightsize.tasks import TaskData, load_data, load_task

log = logging.getLogger(__name__)

# Meter kinds a record's energy_source can name on its own; composite sources ("nvml+rapl") mean auto.
_SINGLE_METERS = ("nvml", "rapl", "estimate")


@dataclass(frozen=True)
class Confirmation:
    rung: str
    key: str  # the validation record's key
    status: str  # "evaluated", "recorded earlier", "failed" or "no test split"
    detail: str
    record: Record | None  # the test record, when there is one


_RUN_FIELDS = ("task_file", "device", "seed", "limit", "train_limit", "energy_source")


@dataclass
class _Job:
    validation: Record
    data: TaskData
    spec: RungSpec
    plan: EvalPlan
    context: RunContext
    test_key: str


def confirm_on_test(run_dir: str | Path, keys: Sequence[str], *, allow_pickle: bool = False,
                    trust_remote_code: bool = False, on_start: Callable[[str], None] | None = None,
                    planned: Sequence[Mapping[str, Any]] = ()) -> list[Confirmation]:
    """Evaluate the validation records ``keys`` of ``run_dir`` on the test split (once each), and the
    ``planned`` rungs (``{name, key, config}`` of plan.jsonl) never evaluated on validation, on the
    task, sample and device of the run's latest ok validation record."""
    with Session(run_dir, create=False) as session:
        run_log = session.run_log
        records = run_log.records()
        by_key = {r.key: r for r in records if r.split == "validation" and r.ok and r.key is not None}
        keys = list(keys)
        for rung in planned:
            if rung["key"] not in by_key and by_key:
                anchor = list(by_key.values())[-1]
                by_key[rung["key"]] = Record(**{k: getattr(anchor, k) for k in _RUN_FIELDS}, rung=rung["name"],
                                             config=rung["config"], key=rung["key"])
            keys.append(rung["key"])
        done = run_log.completed()
        tasks: dict[str, TaskData] = {}
        jobs, out = [], []
        for key in dict.fromkeys(keys):  # unique, in order
            if key not in by_key:
                raise RightsizeError(f"{run_log.path}: no ok validation record with key {key}")
            job = _job(by_key[key], tasks, allow_pickle, trust_remote_code)
            if job is None:
                out.append(Confirmation(by_key[key].rung, key, "no test split", "the task gives no test data", None))
            elif job.test_key in done:
                out.append(Confirmation(job.spec.name, key, "recorded earlier", "", done[job.test_key]))
            else:
                jobs.append(job)
        # Every model is checked before the first evaluation, as `evaluate` does.
        for job in jobs:
            check_models(job.spec, allow_pickle)
        for job in jobs:
            if on_start:
                on_start(job.spec.name)
            source = str(job.validation.energy_source or "")
            meter = session.meter(source if source in _SINGLE_METERS else "auto", job.context.device)
            record = evaluate_rung(job.data, job.spec, meter, job.context, job.plan, run_id=session.run_id,
                                   artifacts=ArtifactStore(session.out_dir))
            run_log.append(record)
            if record.ok:
                out.append(Confirmation(job.spec.name, job.validation.key, "evaluated", "", record))
            else:
                out.append(Confirmation(job.spec.name, job.validation.key, "failed", record.error or "", record))
    order = {k: i for i, k in enumerate(keys)}
    return sorted(out, key=lambda c: order[c.key])


def measure_largest(run_dir: str | Path, rec, **options: Any) -> list[Confirmation]:
    """Evaluate the ladder's largest rung (``rec.top``, rightsize.top) on test when no record measures it."""
    top = rec.top
    if not top or top["measured"]:
        return []
    return confirm_on_test(run_dir, [], planned=[{"name": top["rung"], "key": top["key"], "config": top["config"]}],
                           **options)


def _job(validation: Record, tasks: dict[str, TaskData], allow_pickle: bool,
         trust_remote_code: bool) -> _Job | None:
    task_file = validation.task_file
    if not task_file:
        raise RightsizeError(f"record of {validation.rung!r} names no task_file: re-run `rightsize evaluate`")
    if task_file not in tasks:
        tasks[task_file] = load_data(load_task(task_file))
    data = tasks[task_file]
    if data.test is None:
        return None
    spec = spec_from_config(validation.rung, validation.config)
    context = RunContext(device=resolve_device(validation.device or "cpu"), seed=validation.seed or 0,
                         trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
    ident = task_identity(data)
    limit, train_limit = validation.limit, validation.train_limit
    # The same key as the validation record means the task file and config are as they were then.
    if evaluation_key(ident, spec, EvalPlan("validation", limit, train_limit), context) != validation.key:
        log.warning("%s changed since %s was evaluated on validation; confirming with the file as it is now",
                    task_file, spec.name)
    plan = EvalPlan(split="test", limit=limit, train_limit=train_limit)
    return _Job(validation, data, spec, plan, context, evaluation_key(ident, spec, plan, context))
