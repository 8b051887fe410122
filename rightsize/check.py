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

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence
from xml.etree import ElementTree as ET

import yaml

from rightsize import footprint
from rightsize import markdown as md
from rightsize.adequacy import Target, comparable, judge
from rightsize.coverage import Coverage, assess_coverage
from rightsize.energy.estimate import is_estimate
from rightsize.errors import RightsizeError
from rightsize.held_out import held_out_record, held_out_verdict, verdict_sentence
from rightsize.naming import label_of, normalized_config, variant_labels
from rightsize.recommend import Objective, largest, lifetime_joules, multiplicity, multiplicity_sentence
from rightsize.records import Record
from rightsize.rungs import RungSpec
from rightsize.tables import SHOWN_STATUS, human_joules, relative_energy

if TYPE_CHECKING:
    from rightsize.runner import EvaluationRequest

SCHEMA = "rightsize.check/1"
CRITERIA = ("meets-target", "within-energy-budget", "not-oversized", "complete-evidence")
# What a failing criterion is called in the one-line verdict.
_FAILURE_WORDS = {"meets-target": "below target", "within-energy-budget": "over budget", "not-oversized": "oversized",
                  "complete-evidence": "uncertain"}


@dataclass(frozen=True)
class Current:
    """The config a team ships: a rung name, or a parsed config (from a config file) with its name."""

    name: str
    config: dict[str, Any] | None = None  # normalized (defaults filled); None: match records by rung name
    source: str = ""                      # the file it came from, for messages
    spec: RungSpec | None = None          # as written in the file, for evaluating it

    def describe(self) -> str:
        return f"config from {self.source}" if self.config is not None else f"rung {self.name!r}"


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


# ------------------------------------------------------------------------------------------ the gate


def load_current(value: str) -> Current:
    """``--current``: a path to a config YAML (one rung mapping in ladder syntax) or a rung name."""
    from rightsize.ladder import NAME_RE, parse_rung

    path = Path(value).expanduser()
    looks_like_file = path.suffix.lower() in (".yaml", ".yml") or os.sep in value
    if not path.is_file():
        if looks_like_file or not NAME_RE.match(value):
            raise RightsizeError(f"--current {value!r}: no such config file, and not a rung name")
        return Current(name=value)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError) as exc:
        raise RightsizeError(f"--current {path}: cannot read the config file ({exc.__class__.__name__})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise RightsizeError(f"--current {path}: not valid YAML{where}") from None
    if isinstance(doc, dict) and "name" not in doc:
        doc = {"name": path.stem, **doc}
    spec = parse_rung(doc, {}, f"--current {path}")
    return Current(name=spec.name, config=normalized_config(spec.config()), source=str(path), spec=spec)


def evaluate_for_check(request: EvaluationRequest, current: Current,
                       on_start: Callable[..., None] | None = None) -> tuple[list[Record], list[dict]]:
    """Evaluate the request's ladder, then the current config on its own (into the same run folder)
    when no rung has its config; return exactly the records of this check, and the folder's plans.
    A current rung name not in the ladder, or a current model that cannot be had, evaluates nothing."""
    from rightsize.ladder import Ladder, load_ladder
    from rightsize.results import RunLog
    from rightsize.runner import run_evaluation
    from rightsize.session import preflight_models

    ladder = load_ladder(request.ladder)
    if current.config is None and current.name not in {r.name for r in ladder.rungs}:
        raise RightsizeError(f"--current {current.name!r}: no such rung in {ladder.path} "
                             f"(rungs: {', '.join(r.name for r in ladder.rungs)})")
    if current.spec is not None:  # its model must be reachable before the ladder's evaluations start
        preflight_models(Ladder(f"--current {current.source}", "", (current.spec,), {}))
    records = list(run_evaluation(request, on_start=on_start))
    request.on_assumed = None  # an assumed task is said once
    in_ladder = any(normalized_config(r.config()) == current.config for r in ladder.rungs)
    if current.spec is not None and not in_ladder:
        records += list(run_evaluation(request, on_start=on_start, specs=[current.spec]))
    plans = RunLog(request.resolved_out_dir(), create=False).plans()
    return [replace(r, extra={k: v for k, v in r.extra.items() if k != SHOWN_STATUS}) for r in records], plans


def find_current(records: Sequence[Record], current: Current) -> Record:
    """The latest record of the current config (ok preferred over failed); RightsizeError when absent."""
    # Selection is on validation; test-split records only confirm a choice and never stand in for it.
    records = [r for r in records if r.split in ("validation", None)]
    if current.config is not None:
        matches = [r for r in records if normalized_config(r.config or {}) == current.config]
    else:
        matches = [r for r in records if r.rung == current.name]
    if not matches:
        names = sorted({r.rung or "?" for r in records})
        if current.config is not None:
            raise RightsizeError(
                f"--current {current.source}: this config (kind {current.config.get('kind')!r}, model "
                f"{current.config.get('model')!r}) was not evaluated in this run; pass the task file to evaluate it")
        raise RightsizeError(f"--current {current.name!r}: no such rung in the records (rungs: {', '.join(names)})")
    # Several evaluations of the config (other --limit runs): the one in the main comparison group wins.
    main = {r.key for r in comparable(records)}
    in_main = [r for r in matches if r.key in main and r.ok]
    ok = [r for r in matches if r.ok]
    return (in_main or ok or matches)[-1]


def same_evaluation(records: Sequence[Record], anchor: Record) -> list[Record]:
    """Records scored on the same task, split and examples as ``anchor`` (the comparison set)."""
    return [r for r in records if (r.task, r.split, r.references) == (anchor.task, anchor.split, anchor.references)]


def check(records: Sequence[Record], current: Current, *, min_metric: float | None = None,
          max_joules_per_query: float | None = None, tolerance_pct: float = 10.0, resamples: int = 1000,
          seed: int = 0, level: float = 0.95, plans: Sequence[dict[str, Any]] = (), objective: str = "per-query",
          queries_per_day: float = 10_000, days: float = 365, adjust: str = "holm",
          where: footprint.WhereAndWhen = footprint.WhereAndWhen()) -> CheckResult:
    """Judge the current config against the records (and the run's ``plans``, for completeness);
    ``objective`` is what "cheaper" means for not-oversized (rightsize.recommend.Objective); ``adjust`` the
    multiplicity correction (docs/adequacy.md); pure."""
    if not 0 <= tolerance_pct < 100:
        raise RightsizeError(f"--tolerance {tolerance_pct:g}: must be a percentage in [0, 100)")
    if max_joules_per_query is not None and not max_joules_per_query > 0:
        raise RightsizeError(f"--max-joules-per-query {max_joules_per_query:g}: must be positive")
    if min_metric is not None and not 0 <= min_metric <= 1:
        raise RightsizeError(f"--min-metric {min_metric:g}: must be in [0, 1]")
    goal = Objective(objective, queries_per_day, days)
    if not records:
        raise RightsizeError("no records: evaluate the task first (rightsize evaluate TASK --out RUN_DIR)")
    anchor = find_current(records, current)
    metric = anchor.metric or "accuracy"
    if min_metric is not None:
        target, origin = Target(min=min_metric), "--min-metric"
    else:
        target, origin = Target.from_any(anchor.target), "task"
    target_info = {"rule": target.rule, "value": target.value, "from": origin}

    if anchor.ok:
        pool = comparable(same_evaluation(records, anchor))
    else:  # a failed record has no references: same task, split, --limit and seed pick the same examples
        sample = (anchor.task, anchor.split, anchor.limit, anchor.seed)
        pool = comparable([r for r in records if (r.task, r.split, r.limit, r.seed) == sample])
    judgement = judge(pool, target, metric, resamples=resamples, seed=seed, level=level, cost=goal.joules,
                      cost_range=goal.joules_range, adjust=adjust)
    verdicts, cheapest = judgement.verdicts, judgement.cheapest_adequate
    source = anchor.energy_source or "unknown"
    labels = variant_labels([*pool, anchor])
    cur = _config_summary(anchor, labels, metric, verdicts)
    alt = _config_summary(cheapest, labels, metric, verdicts) if cheapest is not None else None
    covered = assess_coverage(records, anchor, plans, target.rule, cheapest)

    criteria = [
        _meets_target(anchor, labels, verdicts),
        _within_budget(anchor, labels, max_joules_per_query),
        _not_oversized(anchor, cheapest, labels, tolerance_pct, goal),
        _complete_evidence(covered),
    ]
    if alt is not None and cur["joules_per_query"] and goal.joules(anchor):
        alt["saving_pct"] = 100 * (1 - goal.joules(cheapest) / goal.joules(anchor))
    return CheckResult(
        task=str(anchor.task), split=str(anchor.split), n_examples=int(anchor.n_examples or 0),
        metric=metric, target=target_info, tolerance_pct=float(tolerance_pct),
        max_joules_per_query=max_joules_per_query, energy_source=source, current=cur, cheapest_adequate=alt,
        criteria=tuple(criteria), coverage=covered.to_dict(), objective=goal.to_dict(),
        footprint=_footprint(records, anchor, cheapest, labels, goal, where),
        multiplicity=multiplicity(judgement, labels),
        test_verdict=held_out_verdict(held_out_record(anchor, records), held_out_record(largest(pool), records),
                                      target, metric, resamples=resamples, seed=seed, level=level)
        if anchor.ok and pool else {},
    )


def _footprint(records: Sequence[Record], anchor: Record, cheapest: Record | None, labels: dict[str, str],
               goal: Objective, where: footprint.WhereAndWhen) -> dict[str, Any]:
    """rightsize.footprint.assess of the current config and the cheapest adequate one (ok records only)."""
    shown = {role: r for role, r in (("current", anchor), ("cheapest adequate", cheapest)) if r is not None and r.ok}
    configs = {}
    for role, r in shown.items():
        life = lifetime_joules(r, goal.queries_per_day, goal.days)
        configs[role] = {"lifetime_joules": life, "serving_joules": life - (r.joules or {}).get("fit", 0.0)}
    names = {r.key: label_of(r, labels) for r in shown.values()}
    return footprint.assess(where, configs, footprint.one_time_jobs(records, names))


def _config_summary(record: Record, labels: dict[str, str], metric: str, verdicts: dict[str, Any]) -> dict[str, Any]:
    ok = record.ok
    verdict = verdicts.get(record.key)
    ci = record.interval(metric)
    return {
        "rung": record.rung, "label": label_of(record, labels), "key": record.key, "config": record.config,
        "metric": record.score(metric) if ok else None,
        "ci": list(ci) if ok and ci else None,
        "joules_per_query": record.joules_per_query if ok else None,
        "n_params": record.n_params,
        "adequate": verdict.adequate if verdict is not None else (False if not ok else None),
        "status": record.status or "ok",
        "error": record.error,
    }


def _meets_target(anchor: Record, labels: dict[str, str], verdicts: dict[str, Any]) -> Criterion:
    name = label_of(anchor, labels)
    if anchor.status == "pruned":
        reason = anchor.pruned_reason or "its CI upper bound could not reach the target"
        return Criterion("meets-target", "fail", f"{name} was stopped early by the search's pruner: {reason}")
    if not anchor.ok:
        return Criterion("meets-target", "fail", f"{name} failed to evaluate (phase {anchor.failed_phase or '?'}): "
                         f"{anchor.error or 'unknown error'}")
    verdict = verdicts[anchor.key]
    return Criterion("meets-target", "pass" if verdict.adequate else "fail", f"{name}: {verdict.detail}",
                     float(verdict.bound), float(verdict.threshold))


def _within_budget(anchor: Record, labels: dict[str, str], budget: float | None) -> Criterion:
    if budget is None:
        return Criterion("within-energy-budget", "skipped", "no --max-joules-per-query given")
    name, jpq = label_of(anchor, labels), anchor.joules_per_query
    if not anchor.ok or jpq is None:
        return Criterion("within-energy-budget", "fail", f"{name} has no J/query (its evaluation failed)", None, budget)
    ok = jpq <= budget
    relation = "within" if ok else "over"
    return Criterion("within-energy-budget", "pass" if ok else "fail",
                     f"{name} uses {human_joules(jpq)}/query, {relation} the budget of "
                     f"{human_joules(budget)}/query", float(jpq), float(budget))


def _not_oversized(anchor: Record, cheapest: Record | None, labels: dict[str, str], tolerance_pct: float,
                   goal: Objective) -> Criterion:
    tol = tolerance_pct / 100
    if cheapest is None:
        return Criterion("not-oversized", "pass", "no evaluated config meets the target, so none is a cheaper "
                         "adequate alternative", None, tol)
    name, other = label_of(anchor, labels), label_of(cheapest, labels)
    alt = goal.joules(cheapest)
    if not anchor.ok or not anchor.joules_per_query or not goal.joules(anchor):
        return Criterion("not-oversized", "fail", f"{other} is adequate at {goal.amount(alt)} "
                         f"while {name} failed to evaluate", None, tol)
    cost = goal.joules(anchor)
    saving = 1 - alt / cost
    if goal.name == "per-query":
        # Decided on the J/query intervals when the records have them: oversized only when even the
        # current config's low end and the alternative's high end differ by more than the tolerance.
        saving = 1 - cheapest.jpq_interval[1] / max(anchor.jpq_interval[0], 1e-300)
    if cheapest.key == anchor.key or saving <= tol:
        detail = ("it is the cheapest adequate config" if cheapest.key == anchor.key else
                  f"the cheapest adequate config, {other} at {goal.amount(alt)}, uses "
                  f"{relative_energy(100 * saving)} (tolerance {tolerance_pct:g}%)")
        return Criterion("not-oversized", "pass", f"{name} at {goal.amount(cost)}: {detail}",
                         float(max(saving, 0.0)), tol)
    return Criterion("not-oversized", "fail",
                     f"{name} costs {goal.amount(cost)}; {other} is adequate at "
                     f"{goal.amount(alt)} ({relative_energy(100 * saving)}, tolerance {tolerance_pct:g}%)",
                     float(saving), tol)


def _complete_evidence(covered: Coverage) -> Criterion:
    if covered.certain is None:
        return Criterion("complete-evidence", "skipped", covered.note)
    if not covered.certain:
        return Criterion("complete-evidence", "fail", covered.note)
    if covered.minimal is False:
        return Criterion("complete-evidence", "pass", f"the bar is set; but {covered.note}")
    return Criterion("complete-evidence", "pass", "every config that could change the verdict was evaluated "
                     "or ruled out by cost")


def _pass_reason(result: CheckResult) -> str:
    cur = result.current
    budget = "" if result.max_joules_per_query is None else \
        f", within the {human_joules(result.max_joules_per_query)}/query budget"
    return (f"is adequate ({_target(result).short(result.metric)}) at {human_joules(cur['joules_per_query'])}/query"
            f"{budget}; no adequate config is more than {result.tolerance_pct:g}% cheaper")


def _target(result: CheckResult) -> Target:
    """The target a result was judged by (its JSON form says ``rule``, ``value`` and ``from``)."""
    return Target(**{result.target["rule"]: result.target["value"]})


def _failure_reason(result: CheckResult, c: Criterion) -> str:
    if c.name == "meets-target":
        alt = result.cheapest_adequate
        hint = f" (cheapest adequate: {alt['label']} at {human_joules(alt['joules_per_query'])}/query)" if alt else \
            " (no evaluated config meets it)"
        return c.message.rstrip(".") + hint
    return c.message


# ------------------------------------------------------------------------------------------ renderers


def to_junit(result: CheckResult) -> str:
    """JUnit XML: one ``testsuite`` with one ``testcase`` per criterion (failure / skipped as JUnit has them)."""
    failures = sum(c.status == "fail" for c in result.criteria)
    skipped = sum(c.status == "skipped" for c in result.criteria)
    counts = {"tests": str(len(result.criteria)), "failures": str(failures), "errors": "0", "skipped": str(skipped)}
    root = ET.Element("testsuites", {"name": "rightsize check", **counts})
    suite = ET.SubElement(root, "testsuite", {"name": f"rightsize.check.{result.task}", **counts, "time": "0"})
    props = ET.SubElement(suite, "properties")
    for name, value in (("current", result.current["label"]), ("task", result.task), ("split", result.split),
                        ("metric", result.metric), ("energy_source", result.energy_source),
                        ("tolerance_pct", f"{result.tolerance_pct:g}")):
        ET.SubElement(props, "property", {"name": name, "value": str(value)})
    for c in result.criteria:
        case = ET.SubElement(suite, "testcase", {"classname": f"rightsize.check.{result.task}", "name": c.name,
                                                  "time": "0"})
        if c.status == "fail":
            failure = ET.SubElement(case, "failure", {"message": c.message, "type": c.name})
            failure.text = c.message
        elif c.status == "skipped":
            ET.SubElement(case, "skipped", {"message": c.message})
        else:
            ET.SubElement(case, "system-out").text = c.message
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def to_markdown(result: CheckResult) -> str:
    """A pull-request comment: verdict, criteria table, current vs cheapest adequate, energy caveat.
    Names, messages and errors are escaped (rightsize.markdown)."""
    icon = {"pass": "✅", "fail": "❌", "skipped": "⏭️"}
    head = "✅ PASS" if result.passed else "❌ FAIL"
    lines = [f"### rightsize check: {head} — {md.code(result.current['label'])} on {md.text(result.task)}", "",
             md.text(result.summary().split(" — ", 1)[-1]), "",
             "| criterion | result | details |", "|---|---|---|"]
    for c in result.criteria:
        lines.append(f"| {c.name} | {icon[c.status]} {c.status} | {md.text(c.message)} |")
    lines += ["", f"| config | {md.text(result.metric)} [95% CI] | J/query | params | adequate |",
              "|---|---|---|---|---|"]
    rows = [("current", result.current)]
    if result.cheapest_adequate is not None and result.cheapest_adequate["key"] != result.current["key"]:
        rows.append(("cheapest adequate", result.cheapest_adequate))
    for role, cfg in rows:
        lines.append(f"| {role}: {md.code(cfg['label'], table=True)} | {_metric_cell(cfg)} | "
                     f"{human_joules(cfg['joules_per_query'])} | {_params(cfg['n_params'])} | "
                     f"{_yes_no(cfg['adequate'])} |")
    target = _target(result).description(result.metric)
    lines += ["", md.text(f"Target: {target}, from {result.target['from']}. {result.split.capitalize()} split, "
                          f"{result.n_examples} examples; tolerance {result.tolerance_pct:g}%.")]
    if result.multiplicity:
        lines.append(md.text(multiplicity_sentence(result.multiplicity) + "."))
    if result.test_verdict:
        lines.append(md.text(verdict_sentence(result.test_verdict)))
    if result.objective.get("name") == "lifetime":
        lines.append(f"Cheaper means {Objective(**result.objective).describe()}.")
    if result.energy_estimated:
        lines.append(f"Energy source: {md.code(result.energy_source)} — an estimate from CPU time, not a "
                     "measurement; compare configs measured on the same machine.")
    else:
        lines.append(f"Energy source: {md.code(result.energy_source)} (measured).")
    return "\n".join(lines) + "\n"


def _metric_cell(cfg: dict[str, Any]) -> str:
    if cfg["metric"] is None:
        return f"failed ({md.text(str(cfg.get('error') or '')[:80])})"
    ci = cfg.get("ci")
    return f"{cfg['metric']:.4f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def _params(n: int | None) -> str:
    from rightsize.tables import human_count

    return human_count(n)


def _yes_no(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "no")


def write_outputs(result: CheckResult, *, junit: Path | None = None, markdown: Path | None = None,
                  step_summary: str | None = None) -> list[Path]:
    """Write the JUnit and Markdown files asked for; append the Markdown to ``step_summary`` if given."""
    written = []
    for path, text in ((junit, to_junit(result) if junit else ""), (markdown, to_markdown(result) if markdown else "")):
        if path is None:
            continue
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise RightsizeError(f"cannot write {path}: {exc.strerror or exc}") from None
        written.append(path)
    if step_summary:
        try:
            with open(step_summary, "a", encoding="utf-8") as f:
                f.write(to_markdown(result) + "\n")
        except OSError as exc:
            raise RightsizeError(f"GITHUB_STEP_SUMMARY={step_summary}: cannot append ({exc.strerror or exc})") from None
        written.append(Path(step_summary))
    return written
