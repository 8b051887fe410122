"""What runs next: the ladder's rungs, the one-knob neighbours of the answer so far, then the cheapest
config that could still be the answer (TPE proposes where none of these applies), and which
configs the cost bound rules out. docs/search.md gives the order and the reasons for it."""

from __future__ import annotations

import math

from optuna.trial import TrialState

from rightsize.naming import knob_text
from rightsize.search.context import SearchContext
from rightsize.search.request import EVALUATED, SKIPPED
from rightsize.search.standing import Standing, evaluated_keys, searched_of, study_records


def enumerate_max() -> int:
    """Spaces up to ``rightsize.search.ENUMERATE_MAX`` configs are walked cheapest first (read there,
    where callers and tests set it)."""
    from rightsize import search

    return search.ENUMERATE_MAX


class Scheduler:
    """Queues the study's next trial after each trial ends, and judges configs against the incumbent."""

    def __init__(self, ctx: SearchContext):
        self.ctx = ctx
        self.exhausted = ""  # set when no config left could be the answer (see _queue_cheapest)
        self._standing_memo: tuple[tuple, Standing] | None = None
        self._configs: list[tuple] | None = None  # the space enumerated, with keys (see _enumerated)

    def queue_first(self, study) -> None:
        """The first trials: as :meth:`plan_next` for the smallest config, the rungs small first for Pareto."""
        if self.ctx.smallest:
            self.plan_next(study)  # the ladder's rungs (or, for a min target, the cheapest) first
        else:
            for params in self.ctx.space.small_first():
                study.enqueue_trial(params, skip_if_exists=True)

    def standing(self, study, trials: list | None = None) -> Standing:
        """The study's records so far: the incumbent, the cost model, the encoders already run."""
        records = study_records(study, trials)
        done = tuple(sorted(r.key for r in records))
        if self._standing_memo is None or self._standing_memo[0] != done:
            self._standing_memo = (done, Standing(records, self.ctx.target, self.ctx.metric,
                                                  self.ctx.objective.joules, self.ctx.objective.joules_range,
                                                  self.ctx.request.adjust))
        return self._standing_memo[1]

    def ruled_out(self, standing: Standing, spec, key: str) -> str:
        """Why ``spec`` cannot be the answer, judged before spending anything on it ('' when it may be)."""
        incumbent = standing.incumbent
        if incumbent is None:
            return ""
        if self.ctx.target.rule == "within" and (key in self.ctx.ladder_keys or standing.encoder_done(spec)):
            return ""  # it may raise the bar: a ladder rung, or an encoder already run (nearly free)
        if self.ctx.objective.name == "lifetime":
            return self._ruled_out_over_lifetime(standing, spec)
        bound = standing.cost.lower_bound(spec)
        # Ruled out only above the incumbent's J/query interval: a bound within it could still win.
        ceiling = incumbent.jpq_interval[1]
        if bound is None or bound <= ceiling:
            return ""
        from rightsize.tables import human_joules

        return (f"costs at least {human_joules(bound)}/query by the rates measured so far; "
                f"{incumbent.rung} is adequate at {human_joules(incumbent.joules_per_query)}/query"
                + (f" (at most {human_joules(ceiling)}/query across repeated measurements)"
                   if ceiling != incumbent.joules_per_query else ""))

    def _ruled_out_over_lifetime(self, standing: Standing, spec) -> str:
        """The lifetime objective: the training bound plus the queries times the J/query bound (an
        unknown part counts as 0) against the incumbent's lifetime joules."""
        objective, incumbent = self.ctx.objective, standing.incumbent
        fit = standing.cost.fit_lower_bound(spec, self.ctx.n_train)
        per_query = standing.cost.lower_bound(spec)
        if fit is None and per_query is None:
            return ""
        bound = (fit or 0.0) + objective.queries * (per_query or 0.0)
        best = objective.joules_range(incumbent)[1]  # the upper end of its interval, as in ruled_out
        if bound <= best:
            return ""
        from rightsize.tables import human_joules

        return (f"costs at least {human_joules(bound)} over the lifetime (training at least "
                f"{human_joules(fit or 0.0)}) by the rates measured so far; {incumbent.rung} is adequate "
                f"at {human_joules(best)}")

    def plan_next(self, study) -> None:
        """Queue what runs next, when nothing is queued: the next ladder rung, preceded by the one-knob
        neighbours of the answer so far (or, while nothing is adequate, of the best config so far)
        that are bounded cheaper than that rung. Past the ladder: the neighbours of each new answer,
        then the cheapest config that could still be the answer (:meth:`_queue_cheapest`); TPE
        proposes while nothing is adequate, or when the space is too large to enumerate. For a
        ``min`` target in a space that can be enumerated: cheapest first from the first trial."""
        ctx = self.ctx
        trials = study.get_trials(deepcopy=False)
        if any(t.state == TrialState.WAITING for t in trials):
            return
        taken = {t.user_attrs.get("config_key") for t in trials if t.state == TrialState.RUNNING or (
            t.state.is_finished() and t.user_attrs.get("outcome") in EVALUATED)}
        busy = taken | {t.user_attrs.get("config_key") for t in trials
                        if t.state.is_finished() and t.user_attrs.get("outcome") == SKIPPED}
        standing = self.standing(study, trials)
        if ctx.target.rule == "min" and self._enumerated() is not None:
            # An absolute target: the answer is certain only once every config cheaper than it has
            # been evaluated, so cheapest first from the start spends nothing on a costlier config
            # before the answer is found, and the ladder's order adds nothing.
            self._queue_cheapest(study, standing, taken)
            return
        rung = next((r for r, key in ctx.ladder if key not in busy), None)
        spare = math.inf
        if rung is not None and ctx.target.rule == "within":
            # The ladder's rungs set a within target's bar: neighbours go ahead of them only with
            # trials to spare beyond the rungs left, so a budget that runs out leaves variants
            # unevaluated, never the bar.
            spare = self._spare_trials(trials, busy)
            if spare <= 0:
                study.enqueue_trial(rung.default_params(), skip_if_exists=True)
                return
        if rung is None:
            ceiling = math.inf
        else:
            bound = standing.cost.lower_bound(rung.base)
            ceiling = bound if bound is not None else -math.inf  # an unknown cost: nothing is known cheaper
        candidates = self._neighbours(trials, standing, busy, ceiling)
        for _, params in sorted(candidates, key=lambda c: c[0])[:spare if spare < math.inf else None]:
            study.enqueue_trial(params, skip_if_exists=True)
        if rung is not None:
            study.enqueue_trial(rung.default_params(), skip_if_exists=True)
        elif not candidates and standing.incumbent is not None:
            self._queue_cheapest(study, standing, taken)

    def _spare_trials(self, trials: list, busy: set) -> int:
        """Trials --trials leaves beyond the ladder rungs not yet run (0 under --budget-joules or
        --timeout: what a trial will cost, or how long it takes, is not known in advance)."""
        request = self.ctx.request
        if request.budget_joules is not None or request.timeout is not None:
            return 0
        left = sum(1 for _, key in self.ctx.ladder if key not in busy)
        return request.trials - len(evaluated_keys(None, trials)) - left

    def _neighbours(self, trials: list, standing: Standing, busy: set, ceiling: float) -> list[tuple]:
        """(cost bound, params) of the one-knob neighbours of the incumbent (else of the best config)
        not taken yet and bounded below ``ceiling``."""
        anchor = standing.incumbent or standing.best
        candidates = []
        if anchor is not None and anchor.rung in self.ctx.space.names:
            searched = searched_of(trials, anchor.key)
            space = self.ctx.space[anchor.rung]
            for values in space.neighbours(searched) if searched is not None else []:
                spec = space.spec_for(values)
                if self.ctx.key_of(spec) in busy:
                    continue
                bound = standing.cost.lower_bound(spec)
                if (bound or 0.0) < ceiling:  # an unknown bound counts as 0: queued unless the rung's cost is unknown
                    candidates.append((bound or 0.0, space.params(values)))
        return candidates

    def _queue_cheapest(self, study, standing: Standing, taken: set) -> None:
        """Queue the config with the least estimated cost (:meth:`CostModel.estimate`) among those not
        evaluated that could still be the answer, or, when there is none, record that the space is
        exhausted (a stop reason).

        Why not TPE here: once a config is adequate, the answer is among the configs not bounded
        above it, and every one of them has to be evaluated before the answer is certain; TPE, which
        knows nothing of the bound, kept proposing configs that were ruled out (each proposal a
        trial written to the storage) and never said when nothing was left. Cheapest first, because
        a cheaper adequate config rules out more of the rest."""
        configs = self._enumerated()
        if configs is None:
            return  # too many to enumerate: TPE proposes, the skip rule still applies
        choice = None
        for name, values, spec, key in configs:
            if key in taken or self.ruled_out(standing, spec, key):
                continue
            cost = standing.cost.estimate(spec)
            if choice is None or cost < choice[0]:
                choice = (cost, name, values)
        if choice is None:
            self.exhausted = f"every config of the space evaluated or ruled out by cost ({self.ctx.space.size})"
        else:
            study.enqueue_trial(self.ctx.space[choice[1]].params(choice[2]))

    def _enumerated(self) -> list[tuple] | None:
        """Every config of the space with its evaluation key (computed once), or None when the space
        has more than ENUMERATE_MAX configs."""
        if self._configs is None and self.ctx.space.size <= enumerate_max():
            self._configs = [(name, values, spec, self.ctx.key_of(spec))
                             for name, values, spec in self.ctx.space.configs()]
        return self._configs

    def remaining(self, study) -> list[tuple[str, str]] | None:
        """Configs off the ladder, not evaluated, that could still be the answer (their cost bound is
        not above the upper end of the incumbent's J/query interval): (label, key); None when the
        space is too large to list."""
        if not self.ctx.smallest:
            return None
        trials = study.get_trials(deepcopy=False)
        evaluated = evaluated_keys(study, trials)
        if len(evaluated) >= self.ctx.space.size:
            return []
        configs = self._enumerated()
        if configs is None:
            return None
        standing = self.standing(study, trials)
        incumbent, cost = standing.incumbent, standing.cost
        out = []
        for name, values, spec, key in configs:
            if key in evaluated or key in self.ctx.ladder_keys:
                continue  # ladder rungs are judged as rungs (rightsize.coverage)
            bound = cost.lower_bound(spec) if incumbent is not None else None
            if bound is not None and bound > incumbent.jpq_interval[1]:
                continue
            out.append((f"{name} ({knob_text(values)})" if values else name, key))
        return out

    def small_budget_note(self, done: set[str]) -> str:
        """Said at the start when --trials cannot cover the ladder rungs that set a within target's bar."""
        request = self.ctx.request
        if not self.ctx.smallest or self.ctx.target.rule != "within":
            return ""
        left = [rung.name for rung, key in self.ctx.ladder if key not in done]
        budget = max(request.trials - len(done), 0)
        if len(left) <= budget:
            return ""
        return (f"--trials {request.trials} leaves {budget} evaluations for the {len(left)} ladder rungs that "
                f"set the bar of the 'within' target and are not evaluated yet ({', '.join(left)}): the answer "
                f"will not be certain; give --trials {len(done) + len(left)} or more")
