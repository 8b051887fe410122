"""What a search is asked (SearchRequest), what it tells of each trial (TrialOutcome) and what it
returns (SearchResult): the plain data the CLI and benchmarks pass in and read back."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rightsize.adequacy import ADJUSTMENTS
from rightsize.errors import RightsizeError
from rightsize.records import Record
from rightsize.session import RunOptions

STEPS = (0.25, 0.5, 1.0)  # the nested parts of the validation split a trial is scored on
MIN_PRUNE_EXAMPLES = 30
OBJECTIVES = ("smallest", "lifetime", "pareto")
# Outcomes of a trial (user attribute "outcome"); the first four spent an evaluation on a config.
EVALUATED = ("complete", "pruned", "failed", "reused")
DUPLICATE = "duplicate"
SKIPPED = "skipped"  # ruled out by cost without an evaluation (may be reconsidered later)


@dataclass
class SearchRequest(RunOptions):
    trials: int = 30
    timeout: float | None = None
    budget_joules: float | None = None
    storage: str | None = None
    study: str | None = None
    seed: int = 0  # the sampler's
    objective: str = "smallest"  # lifetime: the smallest adequate config by fit + queries_per_day x days x J/query
    queries_per_day: float = 10_000
    days: float = 365
    adjust: str = "holm"  # the multiplicity correction of the adequacy verdicts (rightsize.adequacy.judge)
    steps: tuple[float, ...] = STEPS
    min_prune_examples: int = MIN_PRUNE_EXAMPLES

    def checked_steps(self) -> tuple[float, ...]:
        """The options checked (a RightsizeError names the first bad one); the steps, sorted."""
        if self.objective not in OBJECTIVES:
            raise RightsizeError(f"--objective {self.objective!r}: choose one of {', '.join(OBJECTIVES)}")
        if self.adjust not in ADJUSTMENTS:
            raise RightsizeError(f"--adjust {self.adjust!r}: choose one of {', '.join(ADJUSTMENTS)}")
        if self.trials < 1:
            raise RightsizeError(f"--trials must be at least 1, got {self.trials}")
        if self.budget_joules is not None and not self.budget_joules > 0:
            raise RightsizeError(f"--budget-joules must be positive, got {self.budget_joules!r}")
        steps = tuple(sorted({float(s) for s in self.steps}))
        if not steps or steps[0] <= 0 or steps[-1] != 1.0:
            raise RightsizeError(f"steps {self.steps!r}: fractions in (0, 1] ending with 1.0")
        return steps


@dataclass
class TrialOutcome:
    """One trial as this worker saw it (what the CLI prints per line)."""

    number: int
    rung: str
    searched: dict[str, Any]
    outcome: str  # complete | pruned | failed | reused | duplicate | skipped
    metric: str
    score: float | None = None
    joules_per_query: float | None = None
    adequate: bool | None = None
    detail: str = ""
    joules: float = 0.0  # what this trial's evaluation spent (0 for duplicates and reused records)
    key: str = ""


@dataclass
class SearchResult:
    study: str
    storage: str
    objective: str
    out_dir: str
    space_size: int
    stopped: str
    trials: list[TrialOutcome]  # this worker's
    study_counts: dict[str, int]  # every worker's trials, by outcome
    energy: dict[str, Any]
    records: list[Record] = field(default_factory=list)
    recommendation: Any = None  # rightsize.recommend.Recommendation, or None
    no_recommendation: str | None = None
    pareto: list[dict] = field(default_factory=list)
    tried: list[dict] = field(default_factory=list)  # no recommendation: every config tried, and why it stopped

    @property
    def exit_code(self) -> int:
        """0: an adequate answer, certain; 1: no answer or nothing adequate; 3: an answer, not certain."""
        rec = self.recommendation
        if rec is None or not rec.adequate:
            return 1
        return 0 if rec.certain else 3

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in ("records", "recommendation")}
        out["recommendation"] = self.recommendation.to_dict() if self.recommendation is not None else None
        out["exit_code"] = self.exit_code
        return out
