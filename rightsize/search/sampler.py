"""FreshAdequacyTPESampler: TPE over the study's trials with each trial's adequacy as it stands now
(a ``within`` target moves with the best config, so a stored constraint goes stale)."""

from __future__ import annotations

import math

import optuna
from optuna.trial import TrialState

from rightsize.adequacy import Target, comparable, judge
from rightsize.search import _optuna_compat as compat
from rightsize.search.standing import trial_record


class FreshAdequacyTPESampler(optuna.samplers.TPESampler):
    """TPE that sees each trial's adequacy as it stands *now*, not as it stood when the trial ended.

    With a ``within`` target a config is adequate relative to the best config found so far, so the
    constraint a trial stored goes stale as soon as a better config turns up: the TF-IDF trial that
    was "adequate" as the first (and best) trial would stay feasible, and TPE would keep sampling
    around it. Before each sampling this sampler judges the study's records again
    (:func:`rightsize.adequacy.judge`) and hands TPE copies of the trials with current constraints.
    """

    def __init__(self, target, metric: str, **kwargs):
        """``target``: anything :meth:`rightsize.adequacy.Target.from_any` takes."""
        super().__init__(**kwargs)
        self._target, self._metric = Target.from_any(target), metric
        self._memo: tuple[tuple, dict[str, float]] | None = None

    def study_view(self, study: optuna.Study):
        """``study`` as TPE sees it here: the same study, its trials with current constraints."""
        return compat.get_trials_view(study, self._refresh)

    def sample_relative(self, study, trial, search_space):
        return super().sample_relative(self.study_view(study), trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return super().sample_independent(self.study_view(study), trial, param_name, param_distribution)

    def _refresh(self, trials: list) -> list:
        gaps = self._gaps(trials)
        out = []
        for t in trials:
            gap = gaps.get(t.user_attrs.get("config_key")) if t.state == TrialState.COMPLETE else None
            if gap is not None and t.constraints.get("adequacy") != gap:
                t = compat.with_constraint(t, "adequacy", gap)
            out.append(t)
        return out

    def _gaps(self, trials: list) -> dict[str, float]:
        """Config key -> constraint (<= 0 adequate) over the records of the complete trials."""
        done = tuple(sorted(t.number for t in trials if t.state == TrialState.COMPLETE))
        if self._memo is not None and self._memo[0] == done:
            return self._memo[1]
        records = {}
        for t in trials:
            record = trial_record(t) if t.state == TrialState.COMPLETE else None
            if record is not None and record.ok:
                records.setdefault(record.key, record)
        gaps = judge(comparable(list(records.values())), self._target, self._metric).constraints
        self._memo = (done, gaps)
        return gaps


def gamma(n: int) -> int:
    """How many of ``n`` finished trials TPE models as "good": a quarter, at most 25."""
    return min(math.ceil(0.25 * n), 25)
