"""run_search: one worker's run of the study, from the request to the result. The worker ties the
parts together: the scheduler queues, the trial runner evaluates, the ledger meters and stops,
and plan.jsonl records what the search set out to evaluate and how it ended."""

from __future__ import annotations

import time
from typing import Callable

import optuna

from rightsize.coverage import plan_entry, search_end_entry
from rightsize.errors import RightsizeError
from rightsize.naming import variant_labels
from rightsize.search.context import SearchContext
from rightsize.search.request import SearchRequest, SearchResult, TrialOutcome
from rightsize.search.scheduler import Scheduler
from rightsize.search.standing import evaluated_keys, study_records
from rightsize.search.stopping import Ledger
from rightsize.search.storage import masked
from rightsize.search.study import open_study, storage_url
from rightsize.search.trial import RungFailed, TrialRunner
from rightsize.search.workers import CtrlC, recover_dead_trials
from rightsize.session import open_run
from rightsize.space import build_space


def run_search(request: SearchRequest, on_trial: Callable[[TrialOutcome], None] | None = None,
               on_note: Callable[[str], None] | None = None) -> SearchResult:
    """Run (or resume, or join) the study and return what it found."""
    steps = request.checked_steps()
    # Evaluations use the seed of `rightsize evaluate` (0): the same config has the same key and
    # subsets in both commands, so their records are shared. --seed drives the sampler.
    with open_run(request, seed=0) as run:
        space = build_space(run.ladder, run.context.device)
        ctx = SearchContext(request, run, space, steps)
        return SearchWorker(ctx, run.meter, on_trial, on_note or (lambda _: None)).run()


class SearchWorker:
    """One worker's run of the study."""

    def __init__(self, ctx: SearchContext, meter, on_trial, on_note):
        self.ctx, self.note = ctx, on_note
        self.scheduler = Scheduler(ctx)
        self.ledger = Ledger(ctx.request, meter, ctx.space.size)
        self.trials = TrialRunner(ctx, self.scheduler, self.ledger, on_trial)
        self.ctrl_c = CtrlC()
        self.stopped = ""

    def run(self) -> SearchResult:
        verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.ERROR)  # the CLI prints each trial itself
        try:
            return self._run()
        finally:
            optuna.logging.set_verbosity(verbosity)

    def _run(self) -> SearchResult:
        ctx, request = self.ctx, self.ctx.request
        url = storage_url(ctx)
        study = open_study(ctx, url)
        recovered = recover_dead_trials(study)
        if recovered:
            self.note(f"trials {', '.join(map(str, recovered))} were left running by a stopped worker; "
                      f"their configs are queued again")
        self.scheduler.queue_first(study)
        done = evaluated_keys(study)
        if done:
            self.note(f"study {study.study_name!r}: {len(done)} configs already evaluated; continuing")
        warning = self.scheduler.small_budget_note(done)
        if warning:
            self.note(warning)
        start = plan_entry("search", task=ctx.task.name, split=ctx.plan.split, limit=ctx.plan.limit,
                           seed=ctx.run_context.seed, run_id=ctx.run_id, study=study.study_name,
                           rungs=[(r.name, key, r.base.config()) for r, key in ctx.ladder])
        ctx.run_log.write_plan(start)
        self.ledger.begin()
        started = time.monotonic()
        try:
            self.stopped = self.ledger.stop_reason(study, self.scheduler.exhausted)
            if not self.stopped:
                try:
                    with self.ctrl_c.installed():
                        study.optimize(self.ctrl_c.guard(self.trials), timeout=request.timeout,
                                       callbacks=[self._after_trial], catch=(RungFailed,), gc_after_trial=False)
                except KeyboardInterrupt:
                    self.ctrl_c.requeue(study)
                    raise
                if not self.stopped:
                    timed_out = request.timeout is not None and time.monotonic() - started >= request.timeout
                    self.stopped = f"timeout ({request.timeout:g} s)" if timed_out else "stopped"
        finally:
            self.ledger.end()
        ctx.run_log.write_plan(search_end_entry(start, stopped=self.stopped, remaining=self.scheduler.remaining(study),
                                                space_size=ctx.space.size))
        return self.result(study, url)

    def _after_trial(self, study, trial) -> None:
        self.ctrl_c.check()
        if self.ctx.smallest:
            self.scheduler.plan_next(study)
        reason = self.ledger.stop_reason(study, self.scheduler.exhausted)
        if reason:
            self.stopped = reason
            study.stop()

    def result(self, study, url: str) -> SearchResult:
        from rightsize.adequacy import comparable
        from rightsize.recommend import NothingCompleted, pareto_front, recommend

        ctx = self.ctx
        records = study_records(study)
        counts: dict[str, int] = {}
        for t in study.get_trials(deepcopy=False):
            outcome = t.user_attrs.get("outcome") or t.state.name.lower()
            counts[outcome] = counts.get(outcome, 0) + 1
        energy = self.ledger.energy(study)
        rec, why, front, tried = None, None, [], []
        try:
            rec = recommend(records, plans=ctx.run_log.plans(), objective=ctx.objective.name,
                            queries_per_day=ctx.objective.queries_per_day, days=ctx.objective.days,
                            adjust=ctx.request.adjust)
        except NothingCompleted as exc:
            why, tried = str(exc), exc.tried
        except RightsizeError as exc:
            why = str(exc)
        if rec is not None:
            group = comparable(records)
            labels = variant_labels(group)
            front = [{"rung": r.rung, "label": labels[r.key], "config": r.config, "key": r.key,
                      "metric": r.score(ctx.metric), "joules_per_query": r.joules_per_query}
                     for r in pareto_front(group, ctx.metric)]
        elif not records:
            why = "no trial evaluated a config"
        return SearchResult(
            study=study.study_name, storage=masked(url), objective=ctx.request.objective,
            out_dir=str(ctx.run_log.dir), space_size=ctx.space.size, stopped=self.stopped,
            trials=self.trials.outcomes, study_counts=counts, energy=energy, records=records, recommendation=rec,
            no_recommendation=why, pareto=front, tried=tried)
