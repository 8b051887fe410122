"""A gate's result: each criterion's verdict, the one-line summary the CLI prints, and the JSON form.

JSON (``--json``), schema ``rightsize.check/1``::

    {
      "schema": "rightsize.check/1",
      "verdict": "pass" | "fail",
      "exit_code": 0 | 1,
      "summary": str,                     # the one-line verdict the CLI prints
      "task": str, "split": str, "n_examples": int, "metric": str,
      "target": {"rule": "min" | "within", "value": float, "from": "task" | "--min-metric"},
      "tolerance_pct": float,
      "objective": {"name": "per-query" | "lifetime", "queries_per_day": float, "days": float},
      "max_joules_per_query": float | null,
      "energy_source": str, "energy_estimated": bool,
      "current": Config,                  # the config under test
      "cheapest_adequate": Config | null, # the policy's smallest adequate config, if any
      "certain": bool | null,             # false: configs that set the bar were not evaluated
      "coverage": {...},                  # rightsize.coverage.Coverage: missing, remaining, notes
      "footprint": {...},                 # rightsize.footprint.assess: facility, regions, shifts, serving
      "test_verdict": {"confirmed": bool | null, "detail": str, ...},  # rightsize.held_out, shown, not gated
      "multiplicity": {"adjust": "holm" | "none", "compared": int,  # adequacy tests in the family
                       "changed_answer": bool, "uncorrected_choice": str | null},
      "criteria": [{"name": "meets-target" | "within-energy-budget" | "not-oversized" | "complete-evidence",
                    "status": "pass" | "fail" | "skipped",
                    "message": str,       # one sentence with the numbers
                    "value": float | null, "threshold": float | null}]
    }

    Config = {"rung": str, "label": str (the rung and the knobs that tell it from its siblings), "key": str, "config": {...}, "metric": float | null, "ci": [lo, hi] | null,
              "joules_per_query": float | null, "n_params": int | null, "adequate": bool | null,
              "status": "ok" | "failed", "error": str | null}

``value``/``threshold`` per criterion: meets-target — the compared bound and its threshold (the CI lower
bound and the floor for ``min``; the lower bound of the paired difference to the best and ``-within`` for
``within``); within-energy-budget — J/query and the budget; not-oversized — the saving (fraction of the
current J/query the cheapest adequate config saves) and the tolerance (as a fraction).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rightsize.adequacy import Target
from rightsize.energy.estimate import is_estimate
from rightsize.recommend import Objective
from rightsize.tables import human_joules

SCHEMA = "rightsize.check/1"
CRITERIA = ("meets-target", "within-energy-budget", "not-oversized", "complete-evidence")
# What a failing criterion is called in the one-line verdict.
_FAILURE_WORDS = {"meets-target": "below target", "within-energy-budget": "over budget", "not-oversized": "oversized",
                  "complete-evidence": "uncertain"}



@dataclass(frozen=True)
class Criterion:
    name: str
    status: str  # pass | fail | skipped
    message: str
    value: float | None = None
    threshold: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "message": self.message,
                "value": self.value, "threshold": self.threshold}


@dataclass(frozen=True)
class CheckResult:
    task: str
    split: str
    n_examples: int
    metric: str
    target: dict[str, Any]
    tolerance_pct: float
    max_joules_per_query: float | None
    energy_source: str
    current: dict[str, Any]
    cheapest_adequate: dict[str, Any] | None
    criteria: tuple[Criterion, ...] = field(default_factory=tuple)
    coverage: dict[str, Any] = field(default_factory=dict)  # rightsize.coverage.Coverage.to_dict()
    objective: dict[str, Any] = field(default_factory=lambda: Objective().to_dict())
    footprint: dict[str, Any] = field(default_factory=dict)  # rightsize.footprint.assess of current and cheapest
    multiplicity: dict[str, Any] = field(default_factory=dict)  # rightsize.recommend.multiplicity()
    test_verdict: dict[str, Any] = field(default_factory=dict)  # rightsize.held_out: the current config on test

    @property
    def passed(self) -> bool:
        return all(c.status != "fail" for c in self.criteria)

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    @property
    def energy_estimated(self) -> bool:
        return is_estimate(self.energy_source)

    def summary(self) -> str:
        """The one-line verdict: PASS/FAIL, what failed, and the numbers that decide it."""
        cur = self.current
        failed = [c for c in self.criteria if c.status == "fail"]
        if not failed:
            return f"rightsize check: PASS — {cur['label']} " + _pass_reason(self)
        words = ", ".join(_FAILURE_WORDS[c.name] for c in failed)
        return f"rightsize check: FAIL {words} — " + "; ".join(_failure_reason(self, c) for c in failed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "verdict": "pass" if self.passed else "fail",
            "exit_code": self.exit_code,
            "summary": self.summary(),
            "task": self.task, "split": self.split, "n_examples": self.n_examples, "metric": self.metric,
            "target": self.target,
            "tolerance_pct": self.tolerance_pct,
            "objective": self.objective,
            "max_joules_per_query": self.max_joules_per_query,
            "energy_source": self.energy_source,
            "energy_estimated": self.energy_estimated,
            "current": self.current,
            "cheapest_adequate": self.cheapest_adequate,
            "criteria": [c.to_dict() for c in self.criteria],
            "certain": self.coverage.get("certain"),
            "coverage": self.coverage,
            "footprint": self.footprint,
            "multiplicity": self.multiplicity,
            "test_verdict": self.test_verdict,
        }

    def judged_target(self) -> Target:
        """The target the result was judged by (its JSON form says ``rule``, ``value`` and ``from``)."""
        return Target(**{self.target["rule"]: self.target["value"]})


def _pass_reason(result: CheckResult) -> str:
    cur = result.current
    budget = "" if result.max_joules_per_query is None else \
        f", within the {human_joules(result.max_joules_per_query)}/query budget"
    rule = result.judged_target().short(result.metric)
    return (f"is adequate ({rule}) at {human_joules(cur['joules_per_query'])}/query{budget}; "
            f"no adequate config is more than {result.tolerance_pct:g}% cheaper")


def _failure_reason(result: CheckResult, c: Criterion) -> str:
    if c.name == "meets-target":
        alt = result.cheapest_adequate
        hint = f" (cheapest adequate: {alt['label']} at {human_joules(alt['joules_per_query'])}/query)" if alt else \
            " (no evaluated config meets it)"
        return c.message.rstrip(".") + hint
    return c.message
