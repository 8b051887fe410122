"""AdequacyPruner: stop a trial as soon as the metric's confidence interval says it cannot be adequate."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from rightsize.adequacy import Target
from rightsize.search.request import MIN_PRUNE_EXAMPLES


class AdequacyPruner(optuna.pruners.BasePruner):
    """Prunes a trial whose reported value (the metric's 95% CI upper bound on the examples seen so
    far, reported at step = their number) is below the bar (:meth:`Target.threshold` of the best
    complete score of the study). Never before ``min_examples`` examples."""

    def __init__(self, rule: str, value: float, min_examples: int = MIN_PRUNE_EXAMPLES) -> None:
        """``rule`` and ``value``: the target, as :class:`Target` holds it (``"min"`` or ``"within"``)."""
        self.target = Target(**{rule: value})
        self.min_examples = min_examples

    def threshold(self, study: optuna.Study) -> float | None:
        """The bar now; None for a ``within`` target while no trial is complete (no best yet)."""
        if self.target.min is not None:
            return self.target.min
        scores = [t.user_attrs["score"] for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                  if isinstance(t.user_attrs.get("score"), (int, float))]
        return self.target.threshold(max(scores)) if scores else None

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step < self.min_examples:
            return False  # a bootstrap interval over a handful of examples is too optimistic to act on
        bar = self.threshold(study)
        return bar is not None and trial.intermediate_values[step] < bar
