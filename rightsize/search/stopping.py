"""When a search stops, and what it spent: one meter window spans a worker's whole search, cut at
each trial's end so that every trial stores its share and the study knows what all its workers
spent; the stop rules read that, the configs evaluated and the proposals that evaluated nothing."""

from __future__ import annotations

from typing import Any

from rightsize.energy.estimate import is_estimate
from rightsize.search.request import SearchRequest, TrialOutcome
from rightsize.search.standing import evaluated_keys

WINDOW = "search"  # the meter window of the whole search


def study_energy(trials: list) -> tuple[float, float]:
    """Energy of the whole study (every worker's trials) and the mean of its evaluating trials."""
    total = sum(float(t.user_attrs.get("search_joules", 0.0)) for t in trials)
    evaluating = [float(t.user_attrs.get("search_joules", 0.0)) for t in trials
                  if t.user_attrs.get("outcome") in ("complete", "pruned", "failed")]
    return total, (sum(evaluating) / len(evaluating) if evaluating else 0.0)


class Ledger:
    """This worker's energy, and the stop rules over the study's."""

    def __init__(self, request: SearchRequest, meter, space_size: int):
        self.request, self.meter, self.space_size = request, meter, space_size
        self.total_joules = 0.0  # this worker's meter window, closed segments
        self.spent: dict[str, float] = {"evaluations": 0.0, "pruned": 0.0}
        self.proposals_in_a_row = 0  # proposals that evaluated nothing (duplicates, skips), in a row

    def begin(self) -> None:
        self.meter.begin(WINDOW)

    def end(self) -> None:
        self.total_joules += self.meter.end(WINDOW).joules

    def segment(self) -> float:
        """Energy of this worker since the last trial ended (the trial's share of the search)."""
        m = self.meter.end(WINDOW)
        self.meter.begin(WINDOW)
        self.total_joules += m.joules
        return m.joules

    def proposed(self, evaluated: bool) -> None:
        """A trial evaluated (or reused) a config, or stepped back without evaluating one."""
        self.proposals_in_a_row = 0 if evaluated else self.proposals_in_a_row + 1

    def charge(self, outcome: TrialOutcome) -> None:
        """What an evaluation spent."""
        if outcome.outcome == "pruned":
            self.spent["pruned"] += outcome.joules
        self.spent["evaluations"] += outcome.joules

    def stop_reason(self, study, exhausted: str = "") -> str:
        """Why the search should start no more trials ('' while it should go on); ``exhausted``: the
        scheduler found no config left that could be the answer."""
        request = self.request
        trials = study.get_trials(deepcopy=False)  # once: each read is a query of the storage
        keys = evaluated_keys(study, trials)
        if len(keys) >= self.space_size:
            return f"every config of the space evaluated ({self.space_size})"
        if exhausted:
            return exhausted
        if len(keys) >= request.trials:
            return f"{request.trials} configs evaluated (--trials)"
        if request.budget_joules is not None:
            spent, mean = study_energy(trials)
            if spent >= request.budget_joules or spent + mean > request.budget_joules:
                return (f"energy budget: the search has used {spent:.3g} J of {request.budget_joules:g} J and a "
                        f"trial costs {mean:.3g} J on average (--budget-joules)")
        if self.proposals_in_a_row >= max(20, request.trials):
            return (f"the sampler proposed only evaluated or ruled-out configs {self.proposals_in_a_row} "
                    f"times in a row")
        return ""

    def energy(self, study) -> dict[str, Any]:
        """The result's energy: this worker's window, its evaluations, and the whole study's."""
        study_total, _ = study_energy(study.get_trials(deepcopy=False))
        evaluations = self.spent["evaluations"]
        return {
            "source": self.meter.source,
            "estimated": is_estimate(self.meter.source),
            "total_joules": self.total_joules,  # this worker: evaluations + sampling, storage, bookkeeping
            "evaluations_joules": evaluations,
            "pruned_joules": self.spent["pruned"],
            "overhead_joules": self.total_joules - evaluations,
            "study_joules": study_total,  # every worker of the study, trials so far
            "budget_joules": self.request.budget_joules,
        }
