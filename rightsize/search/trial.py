"""One trial: claim its config (or step back as a duplicate), skip it when the cost bound rules it
out, else evaluate it (or reuse its record in runs.jsonl), then tell the study what it found in
attributes optuna-dashboard shows and in the constraint the sampler reads."""

from __future__ import annotations

import logging
from typing import Callable

import optuna
from optuna.trial import TrialState

from rightsize import metrics as M
from rightsize.adequacy import comparable, constraint, judge
from rightsize.evaluate import Step, StopEvaluation, evaluate_rung, measured_alike
from rightsize.records import Record
from rightsize.rungs import knob_conflict, rung_class
from rightsize.search import _optuna_compat as compat
from rightsize.search.context import SearchContext
from rightsize.search.pruner import AdequacyPruner
from rightsize.search.request import DUPLICATE, SKIPPED, TrialOutcome
from rightsize.search.scheduler import Scheduler
from rightsize.search.standing import RECORD_ATTR, stored_record, study_records
from rightsize.search.stopping import Ledger

log = logging.getLogger(__name__)

SKIP_CONSTRAINT = 1e-6  # what a skipped trial tells TPE: infeasible, barely (it is costlier, not inadequate)
DUPLICATE_PENALTY = 1.0  # the constraint a duplicate trial is told (an accuracy gap: the largest there is)


class RungFailed(Exception):
    """A config whose evaluation failed (recorded as failed); the trial is marked FAIL."""


def claimed(study, me: int, key: str):
    """Another trial that has (or is evaluating) config ``key``: complete first, else the earliest."""
    state = TrialState
    found = []
    for t in study.get_trials(deepcopy=False):
        if t.number == me or t.user_attrs.get("config_key") != key or (
                t.user_attrs.get("outcome") in (SKIPPED, DUPLICATE)):
            continue  # neither evaluated anything: a skipped config is decided again (the incumbent may have moved)
        if t.state in (state.COMPLETE, state.PRUNED, state.RUNNING) or (
                t.state == state.FAIL and t.user_attrs.get("outcome") == "failed"):
            found.append(t)
    if not found:
        return None
    return min(found, key=lambda t: (t.state != state.COMPLETE, t.number))


class TrialRunner:
    """The study's objective: one trial, from its config to what it tells the study."""

    def __init__(self, ctx: SearchContext, scheduler: Scheduler, ledger: Ledger,
                 on_trial: Callable[[TrialOutcome], None] | None):
        self.ctx, self.scheduler, self.ledger, self.on_trial = ctx, scheduler, ledger, on_trial
        self.outcomes: list[TrialOutcome] = []  # this worker's trials
        self.retried: set[str] = set()  # configs this worker queued again after a race (once each)

    def __call__(self, trial: optuna.Trial):
        ctx = self.ctx
        trial.set_user_attr("worker", ctx.worker)
        spec, searched = ctx.space.suggest(trial)
        key = ctx.key_of(spec)
        for name, value in (("config_key", key), ("rung", spec.name), ("config", spec.config()),
                            ("searched", searched), ("metric", ctx.metric)):
            trial.set_user_attr(name, value)
        outcome = TrialOutcome(trial.number, spec.name, searched, "", ctx.metric, key=key)
        conflict = knob_conflict(spec)  # a sampler's pick the space itself leaves out (onnx with bf16)
        if conflict:
            return self._skip(trial, outcome, conflict)
        other = claimed(trial.study, trial.number, key)
        if other is not None:
            return self._duplicate(trial, other, outcome)
        record = self._recorded(key)
        if record is None and ctx.smallest:
            reason = self.scheduler.ruled_out(self.scheduler.standing(trial.study), spec, key)
            if reason:
                return self._skip(trial, outcome, reason)
        self.ledger.proposed(evaluated=True)
        if record is not None:
            outcome.outcome = "reused" if record.ok else "pruned"
            outcome.detail = "recorded earlier in runs.jsonl"
        else:
            on_step = self._reporter(trial) if ctx.smallest else None
            trains = "epochs" in rung_class(spec.kind).knobs
            on_epoch = self._epoch_reporter(trial, spec) if ctx.smallest and trains else None
            record = evaluate_rung(ctx.data, spec, self.ledger.meter, ctx.run_context, ctx.plan, run_id=ctx.run_id,
                                   steps=ctx.steps, on_step=on_step, artifacts=ctx.artifacts, on_epoch=on_epoch)
            record.search = {"study": trial.study.study_name, "trial": trial.number, "searched": searched}
            ctx.run_log.append(record)
            outcome.joules = record.spent_joules
            outcome.outcome = {"ok": "complete", "pruned": "pruned"}.get(record.status, "failed")
        compat.set_system_attr(trial, RECORD_ATTR, stored_record(record))
        self._describe(trial, record, outcome)
        self.ledger.charge(outcome)
        trial.set_user_attr("eval_joules", outcome.joules)
        trial.set_user_attr("search_joules", self.ledger.segment())
        self._tell(outcome)
        if record.status == "failed":
            raise RungFailed(record.error or "failed")
        if record.status == "pruned":
            trial.set_constraint("adequacy", self._pruned_gap(trial.study, record))
            raise optuna.TrialPruned(outcome.detail)
        if ctx.request.objective == "pareto":
            return record.score(ctx.metric), record.joules_per_query
        return ctx.objective.joules(record)

    def _recorded(self, key: str) -> Record | None:
        """The latest record of ``key`` in runs.jsonl that a trial can stand on (a kill between the
        append and telling the study, or an earlier `rightsize evaluate`): ok, or pruned when pruning, and
        measured under this search's meter settings."""
        usable = ("ok", "pruned") if self.ctx.smallest else ("ok",)
        found = None
        for r in self.ctx.run_log.records():
            if r.key == key and r.status in usable and measured_alike(r, self.ledger.meter):
                found = r
        return found

    def _reporter(self, trial) -> Callable[[Step], None]:
        """Reports each part's CI upper bound; stops the evaluation when the pruner says so."""
        metric = self.ctx.metric

        def on_step(step: Step) -> None:
            _, hi = M.confidence_interval(metric, step.references, step.predictions, step.n_classes)
            trial.report(hi, step.n)
            if not step.final and trial.should_prune():
                point = M.score(metric, step.references, step.predictions, step.n_classes)
                bar = trial.study.pruner.threshold(trial.study)
                raise StopEvaluation(f"{metric} {point:.3f} on {step.n}/{step.total} examples: 95% CI upper bound "
                                     f"{hi:.3f} < {bar:.3f} needed")

        return on_step

    def _epoch_reporter(self, trial, spec) -> Callable[[int, Step], None]:
        """Reports a fine-tune's CI upper bound after each epoch, on the first part of the staged
        inference, at step :func:`epoch_step`; stops the training when the pruner says so."""
        metric = self.ctx.metric
        epochs = int(spec.knobs.get("epochs", rung_class(spec.kind).knobs["epochs"].default))

        def on_epoch(epoch: int, step: Step) -> None:
            at = epoch_step(step.n, epoch, epochs)
            if at < 0:
                return  # a part smaller than the epochs: too few examples to report on (or prune)
            _, hi = M.confidence_interval(metric, step.references, step.predictions, step.n_classes)
            trial.report(hi, at)
            if trial.should_prune():
                point = M.score(metric, step.references, step.predictions, step.n_classes)
                bar = trial.study.pruner.threshold(trial.study)
                raise StopEvaluation(f"{metric} {point:.3f} on {step.n}/{step.total} examples after epoch {epoch} "
                                     f"of {epochs}: 95% CI upper bound {hi:.3f} < {bar:.3f} needed")

        return on_epoch

    def _pruned_gap(self, study: optuna.Study, record: Record) -> float:
        """How far a pruned record falls short (> 0, the constraint): the bar minus its CI upper bound."""
        names = record.label_names
        _, hi = M.confidence_interval(self.ctx.metric, record.references, record.predictions, len(names))
        bar = study.pruner.threshold(study) if isinstance(study.pruner, AdequacyPruner) else None
        return max((bar - hi) if bar is not None else 0.0, 1e-9)

    def _describe(self, trial, record: Record, outcome: TrialOutcome) -> None:
        """Readable user attributes (optuna-dashboard shows them) and the adequacy constraint."""
        trial.set_user_attr("outcome", outcome.outcome)
        trial.set_user_attr("energy_source", record.energy_source)
        if record.status == "failed":
            outcome.detail = record.error or ""
            trial.set_user_attr("error", outcome.detail)
            return
        score, jpq = record.score(self.ctx.metric), record.joules_per_query
        outcome.score, outcome.joules_per_query = score, jpq
        trial.set_user_attr("score", score)
        trial.set_user_attr("ci", record.interval(self.ctx.metric))
        trial.set_user_attr("joules_per_query", jpq)
        if record.status == "pruned":
            outcome.adequate = False
            outcome.detail = record.pruned_reason
            trial.set_user_attr("adequate", False)
            trial.set_user_attr("adequacy", f"pruned: {outcome.detail}")
            return
        verdict = self._adequacy(trial.study, record)
        if verdict is None:
            return
        outcome.adequate = verdict.adequate
        trial.set_user_attr("adequate", verdict.adequate)
        trial.set_user_attr("adequacy", verdict.detail)
        if self.ctx.smallest:
            trial.set_constraint("adequacy", constraint(verdict))

    def _adequacy(self, study, record: Record):
        group = comparable(study_records(study) + [record])
        verdict = judge(group, self.ctx.target, self.ctx.metric).verdicts.get(record.key)
        if verdict is None:
            log.warning("trial record %s is not comparable with the study's records; no adequacy", record.key)
        return verdict

    def _skip(self, trial, outcome: TrialOutcome, reason: str):
        self.ledger.proposed(evaluated=False)
        outcome.outcome, outcome.detail = SKIPPED, reason
        trial.set_user_attr("outcome", SKIPPED)
        trial.set_user_attr("skipped", reason)
        trial.set_user_attr("search_joules", self.ledger.segment())
        self._tell(outcome)
        trial.set_constraint("adequacy", SKIP_CONSTRAINT)
        raise optuna.TrialPruned(reason)

    def _duplicate(self, trial, other, outcome: TrialOutcome):
        self.ledger.proposed(evaluated=False)
        outcome.outcome = DUPLICATE
        outcome.detail = f"duplicate of trial {other.number} ({other.state.name.lower()})"
        trial.set_user_attr("outcome", DUPLICATE)
        trial.set_user_attr("duplicate_of", other.number)
        for name in ("score", "ci", "joules_per_query", "adequate", "adequacy", "energy_source"):
            if name in other.user_attrs:
                trial.set_user_attr(name, other.user_attrs[name])
        outcome.score = other.user_attrs.get("score")
        outcome.joules_per_query = other.user_attrs.get("joules_per_query")
        outcome.adequate = other.user_attrs.get("adequate")
        trial.set_user_attr("search_joules", self.ledger.segment())
        self._tell(outcome)
        if other.state == TrialState.RUNNING and outcome.key not in self.retried:
            # Two trials of one config that write their keys before either reads both step back, and
            # TPE, told "infeasible", would not propose it again: queue it once more from here. If
            # the other trial was really evaluating it, the retry is a cheap duplicate of it.
            self.retried.add(outcome.key)
            trial.study.enqueue_trial(trial.params)
        if self.ctx.request.objective == "pareto" and other.state == TrialState.COMPLETE:
            return other.values
        # To TPE a duplicate is a miss, not one more observation of a good point: told as a second
        # "complete" trial it made TPE propose the same config over and over. Pruned and infeasible,
        # it counts against proposing that config again.
        trial.set_constraint("adequacy", DUPLICATE_PENALTY)
        raise optuna.TrialPruned(outcome.detail)

    def _tell(self, outcome: TrialOutcome) -> None:
        self.outcomes.append(outcome)
        if self.on_trial is not None:
            self.on_trial(outcome)


def epoch_step(first_part: int, epoch: int, epochs: int) -> int:
    """The step a fine-tune's check after ``epoch`` of ``epochs`` reports at: just below the first
    inference stage (``first_part`` examples, the ones the check scores), so the epochs' steps come
    in time order before the inference's, never collide with them, and stay about the number of
    examples behind the value, as the pruner's minimum reads it (docs/search.md)."""
    return first_part - (epochs - epoch) - 1
