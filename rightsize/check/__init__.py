"""The sizing gate for CI: is the config a team ships adequate, within budget, and not oversized?

Four criteria, each one JUnit test case:

* ``meets-target`` — the policy's adequacy rule (:func:`rightsize.adequacy.judge`) for the task's target.
  ``--min-metric X`` replaces the target with an absolute floor judged by the *same* rule as the policy's
  ``min`` target: the 95% bootstrap CI lower bound of the metric must reach X (not the point estimate,
  so a lucky sample does not pass the gate).
* ``within-energy-budget`` — J/query of the current config ≤ ``--max-joules-per-query`` (skipped without it).
* ``not-oversized`` — no adequate config (same target) is cheaper than the current one by more than
  ``--tolerance`` percent of its J/query (the tolerance absorbs meter noise between near-equal configs);
  with ``--objective lifetime``, of its lifetime energy (fit + queries/day × days × J/query).
* ``complete-evidence`` — every config that could set the bar was evaluated (:mod:`rightsize.coverage`):
  fails when a ``within`` target's ladder rungs were not all run; skipped for a folder without ``plan.jsonl``.

Exit codes: 0 every criterion passes (or is skipped); 1 at least one fails; 2 bad input (raised as
:class:`RightsizeError`, handled by the CLI). Given a task file instead of a run folder,
:func:`evaluate_for_check` first evaluates the ladder and the current config.

The comparison set is the current config's own evaluation context: ok records of the same task and split
scored on the same examples (same references), latest per key, as :func:`rightsize.adequacy.comparable`
defines it. A run folder holding runs with other ``--limit`` values therefore does not mix them.

The modules: current (the config under test: from ``--current``, evaluated, found in the records),
gate (:func:`check` and its four criteria), result (:class:`CheckResult`, its verdict line and its JSON
form), outputs (JUnit, Markdown, the CI step summary). The public names are here.
"""

from rightsize.check.current import Current, evaluate_for_check, find_current, load_current, same_evaluation
from rightsize.check.gate import check
from rightsize.check.outputs import to_junit, to_markdown, write_outputs
from rightsize.check.result import CRITERIA, SCHEMA, CheckResult, Criterion

__all__ = [
    "CRITERIA", "SCHEMA", "CheckResult", "Criterion", "Current", "check", "evaluate_for_check", "find_current",
    "load_current", "same_evaluation", "to_junit", "to_markdown", "write_outputs",
]
