"""The gate itself: the current config judged against a run's records on four criteria (pure)."""

from __future__ import annotations

from typing import Any, Sequence

from rightsize import footprint
from rightsize.adequacy import Target, comparable, judge
from rightsize.check.current import Current, find_current, same_evaluation
from rightsize.check.result import CheckResult, Criterion
from rightsize.coverage import Coverage, assess_coverage
from rightsize.errors import RightsizeError
from rightsize.held_out import held_out_record, held_out_verdict
from rightsize.naming import label_of, variant_labels
from rightsize.recommend import Objective, largest, lifetime_joules, multiplicity
from rightsize.records import Record
from rightsize.tables import human_joules, relative_energy


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
        configs[role] = {"lifetime_joules": life, "serving_joules": life - r.fit_joules}
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
