"""The recommendation policy: the smallest adequate config to deploy, its savings and lifetime cost.

Pure functions over records (:class:`rightsize.records.Record`); no printing and no file I/O (the carbon
table is read through :mod:`rightsize.carbon`). Adequacy is :func:`rightsize.adequacy.judge`'s.
Selection uses the **validation** split only: test records are looked up to *report* the held-out
score of a choice, never to make it. ``largest`` and ``pareto_front`` ignore records that failed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping, Sequence

from rightsize import carbon, energy_quality, footprint
from rightsize import metrics as M
from rightsize.adequacy import Target, comparable, judge, ok_records
from rightsize.coverage import assess_coverage
from rightsize.errors import RightsizeError
from rightsize.held_out import held_out_record, held_out_verdict
from rightsize.naming import label_of, variant_labels
from rightsize.records import Record
from rightsize.rungs import RungSpec, rung_class
from rightsize.tables import human_joules
from rightsize.top import against_top

SCHEMA = "rightsize.recommendation/1"
CLOSEST = 3  # configs shown when nothing is adequate


# ------------------------------------------------------------------------------------ record helpers


def spec_from_config(name: str, config: Mapping[str, Any]) -> RungSpec:
    """The RungSpec a record's ``config`` came from (the inverse of ``RungSpec.config()``), knobs validated."""
    where = f"recorded config of {name!r}"
    knobs = dict(config)
    kind, model = knobs.pop("kind", None), knobs.pop("model", None)
    if not isinstance(kind, str):
        raise RightsizeError(f"{where}: has no 'kind'")
    cls = rung_class(kind, where)
    unknown = sorted(set(knobs) - set(cls.knobs))
    if unknown:
        raise RightsizeError(f"{where}: knob {unknown[0]!r} is not a knob of kind {kind!r}")
    return RungSpec(name=name, kind=kind, model=model,
                    knobs={k: cls.knobs[k].validate(k, v, where) for k, v in knobs.items()})


# ------------------------------------------------------------------------------------ orderings


def largest(records: Sequence[Record]) -> Record:
    """The largest config evaluated: most parameters (ties: most J/query). A cascade counts its stages'
    parameters together, so it would be "the largest" whenever it ends in the largest model: the test
    verdict would then judge a cascade against itself. Single configs come first."""
    ok = ok_records(records)
    if not ok:
        raise ValueError("largest() needs at least one ok record")
    return max(ok, key=lambda r: (r.config.get("kind") != "cascade", r.n_params or 0, r.joules_per_query))


def pareto_front(records: Sequence[Record], metric: str,
                 cost: Callable[[Record], float] | None = None) -> list[Record]:
    """Configs no other config beats on both metric (higher) and cost (lower; default J/query); by cost."""
    ok = ok_records(records)
    cost = cost or (lambda r: r.joules_per_query)

    def dominated(r: Record) -> bool:
        m, j = r.score(metric), cost(r)
        return any(o.score(metric) >= m and cost(o) <= j and (o.score(metric) > m or cost(o) < j) for o in ok)

    return sorted((r for r in ok if not dominated(r)), key=lambda r: (cost(r), -r.score(metric)))


# ------------------------------------------------------------------------------------ energy, carbon


def lifetime_joules(record: Record, queries_per_day: float, days: float) -> float:
    """A record's energy over a deployment (rightsize.footprint.lifetime_joules)."""
    return footprint.lifetime_joules(record.fit_joules, record.joules_per_query,
                                     queries_per_day, days)


OBJECTIVES = ("per-query", "lifetime")


@dataclass(frozen=True)
class Objective:
    """What the choice among adequate configs minimizes: energy per query (``per-query``), or the
    energy of a deployment's life (``lifetime``: fit once, then ``queries_per_day × days`` queries),
    which weighs what a config costs to make, e.g. the training of a fine-tuned model."""

    name: str = "per-query"
    queries_per_day: float = 10_000
    days: float = 365

    def __post_init__(self) -> None:
        if self.name not in OBJECTIVES:
            raise RightsizeError(f"--objective {self.name!r}: choose from {', '.join(OBJECTIVES)}")
        if not (self.queries_per_day >= 0 and self.days >= 0):
            raise RightsizeError("--queries-per-day and --days must not be negative")

    @property
    def queries(self) -> float:
        return self.queries_per_day * self.days

    def joules(self, record: Record) -> float:
        """The objective's value of a record."""
        if self.name == "lifetime":
            return lifetime_joules(record, self.queries_per_day, self.days)
        return float(record.joules_per_query)

    def joules_range(self, record: Record) -> tuple[float, float]:
        """The objective's interval of a record, from J/query's across repeated measurements
        (:attr:`Record.jpq_interval`; the fit energy was measured once)."""
        low, high = record.jpq_interval
        if self.name == "lifetime":
            fit = record.fit_joules
            return (footprint.lifetime_joules(fit, low, self.queries_per_day, self.days),
                    footprint.lifetime_joules(fit, high, self.queries_per_day, self.days))
        return low, high

    def amount(self, joules: float) -> str:
        """``12 mJ/query`` or ``4.2 kJ over the lifetime``."""
        return human_joules(joules) + ("/query" if self.name == "per-query" else " over the lifetime")

    def describe(self) -> str:
        if self.name == "per-query":
            return "the least energy per query"
        return (f"the least lifetime energy (fit + {self.queries:,.0f} queries × J/query: "
                f"{self.queries_per_day:,g} queries/day for {self.days:,g} days)")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "queries_per_day": self.queries_per_day, "days": self.days}


def break_even_queries(fit_a: float, jpq_a: float, fit_b: float, jpq_b: float) -> float | None:
    """The query volume at which configs A and B have used the same energy in total (fit + queries × J/query):
    past it, the one that costs more to make and less per query has used less. ``None`` when there is no
    such volume: one of them costs no more to make and no more per query, so it uses less (or the same) at
    every volume."""
    if fit_a > fit_b and jpq_a < jpq_b:
        return (fit_a - fit_b) / (jpq_b - jpq_a)
    if fit_b > fit_a and jpq_b < jpq_a:
        return (fit_b - fit_a) / (jpq_a - jpq_b)
    return None


def break_even_against(chosen: Mapping[str, Any], entries: Sequence[Mapping[str, Any]],
                       queries_per_day: float) -> list[dict[str, Any]]:
    """The chosen config against each adequate config that costs less to make (less fit energy): the
    volume after which the chosen has used less energy in total, or ``None`` when the alternative uses
    less at every volume (it costs no more per query either). Fewest queries first."""
    out = []
    for e in entries:
        if e["key"] == chosen["key"] or not e["adequate"] or e["joules_fit"] >= chosen["joules_fit"]:
            continue
        queries = break_even_queries(chosen["joules_fit"], chosen["joules_per_query"], e["joules_fit"],
                                     e["joules_per_query"])
        out.append({"label": e["label"], "key": e["key"], "joules_fit": e["joules_fit"],
                    "joules_per_query": e["joules_per_query"], "break_even_queries": queries,
                    "break_even_days": queries / queries_per_day if queries is not None and queries_per_day > 0
                    else None, "alternative_always_less": queries is None})
    return sorted(out, key=lambda b: (b["break_even_queries"] is None, b["break_even_queries"] or 0.0))


def describe_break_even(chosen: Mapping[str, Any], b: Mapping[str, Any], queries_per_day: float) -> str:
    """One sentence on the chosen config against one entry of :func:`break_even_against`."""
    made = f"{human_joules(chosen['joules_fit'])} to fit and {human_joules(chosen['joules_per_query'])}/query"
    other = f"{human_joules(b['joules_fit'])} to fit, {human_joules(b['joules_per_query'])}/query"
    if b["break_even_queries"] is None:
        return (f"{b['label']} ({other}) uses less energy than {chosen['label']} ({made}) at any volume: it costs "
                "less to fit and no more per query")
    days = f" ({b['break_even_days']:,.1f} days at {queries_per_day:,g} queries/day)" if b["break_even_days"] else ""
    return (f"{chosen['label']} costs {made}; it beats {b['label']} ({other}) after "
            f"{b['break_even_queries']:,.0f} queries{days}")


# ------------------------------------------------------------------------------------ recommendation


@dataclass(frozen=True)
class Recommendation:
    """The answer of :func:`recommend`; ``to_dict()`` is its JSON form."""

    task: str
    metric: str
    target: dict[str, float]  # {"min": x} or {"within": d}
    rule: str  # "min" or "within": the rule that decided adequacy
    split: str
    n_examples: int
    chosen: dict | None  # the smallest adequate config, None when nothing is adequate
    largest: dict
    best: dict
    configs: list[dict]  # every comparable config, by J/query
    closest: list[dict]  # nothing adequate: the configs nearest to adequate (bound - threshold)
    savings: dict | None  # chosen vs largest
    given_up: dict | None  # metric of the largest minus metric of the chosen, per split
    assumptions: dict
    estimated: bool  # some energy comes from the CPU-time estimate, not a meter
    excluded: dict = field(default_factory=dict)  # records not considered, and why
    coverage: dict = field(default_factory=dict)  # rightsize.coverage.Coverage.to_dict()
    objective: dict = field(default_factory=lambda: Objective().to_dict())  # what the choice minimized
    break_even: list[dict] = field(default_factory=list)  # the chosen against each cheaper-to-make adequate config
    footprint: dict = field(default_factory=dict)  # rightsize.footprint.assess: facility, regions, shifts, serving
    # the chosen against the ladder's top rung, evaluated or not: rightsize.top.against_top()
    top: dict | None = None
    multiplicity: dict = field(default_factory=dict)  # multiplicity(): the correction, configs compared, its effect
    test_verdict: dict = field(default_factory=dict)  # rightsize.held_out.held_out_verdict() on the choice
    energy_tie: dict = field(default_factory=dict)  # energy_tie(): the configs tied with the choice on energy

    @property
    def confirmed(self) -> bool | None:
        """False when the test split shows the choice misses the target; None when not judged."""
        return self.test_verdict.get("confirmed")

    @property
    def adequate(self) -> bool:
        return self.chosen is not None

    @property
    def certain(self) -> bool:
        """False when configs that could set the bar were not evaluated (None counts as certain:
        a folder from before plans were recorded)."""
        return self.coverage.get("certain") is not False

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "adequate": self.adequate, "confirmed": self.confirmed,
                "certain": self.coverage.get("certain"),
                "minimal": self.coverage.get("minimal"), **asdict(self)}


class NothingCompleted(Exception):
    """Every validation evaluation of the run was pruned or failed: there is nothing to choose from.
    ``tried`` says what was tried and why each one stopped (the CLI prints it and exits 1)."""

    def __init__(self, tried: list[dict]):
        super().__init__(f"no config finished a complete evaluation ({len(tried)} tried, each pruned or failed)")
        self.tried = tried


def tried_without_result(records: Sequence[Record]) -> list[dict]:
    """The latest validation record of each config, with why it stopped: ``{label, rung, key,
    config, status, reason}``."""
    latest: dict[str, Record] = {}
    for r in records:
        if r.split in ("validation", None) and r.key is not None:
            latest[r.key] = r
    labels = variant_labels(latest.values())
    out = []
    for key, r in latest.items():
        reason = r.pruned_reason if r.status == "pruned" else r.error
        out.append({"label": labels[key], "rung": r.rung, "key": key, "config": r.config,
                    "status": r.status, "reason": str(reason or "")})
    return out


def recommend(records: Sequence[Record], *, target: Any = None, metric: str | None = None,
              queries_per_day: float = 10_000, days: float = 365, region: str | None = None,
              where: footprint.WhereAndWhen = footprint.WhereAndWhen(), resamples: int = 1000, seed: int = 0,
              level: float = 0.95, plans: Sequence[Mapping[str, Any]] = (), objective: str = "per-query",
              adjust: str = "holm") -> Recommendation:
    """The adequate config that minimizes ``objective`` on validation (J/query, or lifetime energy),
    next to the largest; test scores when recorded; the break-even volume against each adequate config
    that costs less to make; where and when their energy is drawn (``where``). ``plans`` (the run
    folder's plan.jsonl) say whether the answer is certain (rightsize.coverage); ``adjust`` is the
    family-wise correction of the adequacy tests (docs/adequacy.md)."""
    records = list(records)
    group = comparable(records)
    if not group:
        tried = tried_without_result(records)
        if tried:
            raise NothingCompleted(tried)
        raise RightsizeError("no successful validation records to choose from: run `rightsize evaluate` first")
    latest = group[-1]
    metric = metric or latest.metric
    if metric not in M.METRICS:
        raise RightsizeError(f"metric {metric!r} is not one of {', '.join(M.METRICS)}")
    target = Target.from_any(target if target is not None else latest.target)
    goal = Objective(objective, queries_per_day, days)
    grid = carbon.intensity(region) if region else None  # an unknown region fails before any work
    facility = where.facility

    judgement = judge(group, target, metric, resamples=resamples, seed=seed, level=level, cost=goal.joules,
                      cost_range=goal.joules_range, adjust=adjust)
    verdicts = judgement.verdicts
    front = {r.key for r in pareto_front(group, metric)}
    lifetime_front = {r.key for r in pareto_front(group, metric, cost=lambda r: lifetime_joules(r, queries_per_day,
                                                                                               days))}
    tests = [r for r in records if r.ok and r.split == "test" and r.metrics is not None]

    def carbon_of(joules: float) -> float | None:
        return facility.grams(joules, grid.g_per_kwh) if grid else None

    def entry(r: Record) -> dict:
        v = verdicts[r.key]
        life = lifetime_joules(r, queries_per_day, days)
        return {
            "rung": r.rung, "key": r.key, "config": r.config, "n_params": r.n_params,
            "metric": r.score(metric), "ci": r.interval(metric),
            "joules_per_query": r.joules_per_query, "joules_fit": r.fit_joules,
            "joules_per_query_uncertainty": energy_quality.jpq_uncertainty(r),
            "joules_per_query_gross": r.gross_joules_per_query,
            "energy_basis": r.basis, "below_resolution": r.below_resolution or [],
            "energy_source": r.energy_source, "estimated": r.estimated,
            "adequate": v.adequate, "rule": v.rule, "detail": v.detail, "bound": v.bound, "threshold": v.threshold,
            "pareto": r.key in front, "pareto_lifetime": r.key in lifetime_front,
            "trained": bool(r.training),
            "lifetime_joules": life, "lifetime_carbon_g": carbon_of(life),
            "test": _test_summary(r, tests, metric),
        }

    labels = variant_labels(group)
    entries = {r.key: {"label": labels[r.key], **entry(r)} for r in group}
    pick = judgement.cheapest_adequate
    covered = assess_coverage(records, latest, plans, target.rule, pick)
    big = entries[largest(group).key]
    chosen = entries[pick.key] if pick else None
    closest = []
    if chosen is None:
        closest = sorted(entries.values(), key=lambda e: e["bound"] - e["threshold"], reverse=True)[:CLOSEST]
    others = [r for r in records if r.split == "validation" and r.key not in entries]
    return Recommendation(
        task=latest.task, metric=metric, target=target.to_dict(), rule=target.rule, split="validation",
        n_examples=len(latest.references), chosen=chosen, largest=big, best=entries[judgement.best.key],
        configs=sorted(entries.values(), key=lambda e: (e["joules_per_query"], e["n_params"] or 0)),
        closest=closest, savings=_savings(chosen, big, carbon_of) if chosen else None,
        given_up=_given_up(chosen, big) if chosen else None,
        assumptions={
            "queries_per_day": queries_per_day, "days": days, **facility.assumptions(),
            "region": grid.region if grid else None, "grid_g_per_kwh": grid.g_per_kwh if grid else None,
            "grid_year": grid.year if grid else None, "grid_source": carbon.attribution() if grid else None,
            "lifetime": "fit joules + queries_per_day x days x joules_per_query (load not counted)",
            "objective": goal.name,
            "level": level, "resamples": resamples, "seed": seed,
        },
        estimated=any(e["estimated"] for e in entries.values()),
        excluded={"failed": sum(1 for r in others if not r.ok),
                  "other_examples": sum(1 for r in others if r.ok)},
        coverage=covered.to_dict(), objective=goal.to_dict(),
        break_even=break_even_against(chosen, list(entries.values()), queries_per_day) if chosen else [],
        footprint=_footprint(records, chosen, big, where),
        top=against_top(records, plans, latest, chosen),
        multiplicity=multiplicity(judgement, labels),
        energy_tie=energy_tie(judgement, labels, goal),
        test_verdict=held_out_verdict(held_out_record(pick, tests), held_out_record(largest(group), tests), target,
                                      metric, resamples=resamples, seed=seed, level=level) if pick else {},
    )


def _footprint(records: Sequence[Record], chosen: dict | None, big: dict,
               where: footprint.WhereAndWhen) -> dict[str, Any]:
    """rightsize.footprint.assess of the recommended and the largest config, and the run's one-time jobs."""
    shown = {"recommended": chosen, "largest": big} if chosen else {"largest": big}
    configs = {role: {"lifetime_joules": e["lifetime_joules"],
                      "serving_joules": e["lifetime_joules"] - e["joules_fit"]} for role, e in shown.items()}
    labels = {e["key"]: e["label"] for e in shown.values()}
    return footprint.assess(where, configs, footprint.one_time_jobs(records, labels))


def multiplicity(judgement, labels: Mapping[str, str]) -> dict[str, Any]:
    """The correction a judgement used, how many configs it compared, and the answer without it when
    that differs: ``{adjust, compared, changed_answer, uncorrected_choice}`` (a label or None)."""
    changed = judgement.correction_changed_answer
    other = judgement.cheapest_unadjusted
    return {"adjust": judgement.adjust, "compared": judgement.compared, "changed_answer": changed,
            "uncorrected_choice": label_of(other, labels) if changed and other else None}


def energy_tie(judgement, labels: Mapping[str, str], goal: Objective) -> dict[str, Any]:
    """The adequate configs tied with the choice on energy within measurement error
    (:func:`rightsize.adequacy.cheapest_adequate`): ``{rule, chosen, tied_with: [{label, low, high}]}``;
    empty when there are none."""
    pick = judgement.cheapest_adequate
    if pick is None or not judgement.energy_ties:
        return {}

    def side(r: Record) -> dict[str, Any]:
        low, high = goal.joules_range(r)
        return {"label": label_of(r, labels), "key": r.key, "n_params": r.n_params,
                "fit_joules": r.fit_joules, "low": low, "high": high}

    return {"rule": "fewest parameters, then least fit energy, among the adequate configs whose energy intervals "
                    "overlap the cheapest's",
            "chosen": side(pick), "tied_with": [side(r) for r in judgement.energy_ties]}


def energy_tie_sentence(tie: Mapping[str, Any], objective: Mapping[str, Any]) -> str:
    """One sentence: which configs the choice is tied with on energy, and how it was chosen
    (``objective``: the recommendation's, as :meth:`Objective.to_dict` writes it)."""
    if not tie:
        return ""
    goal = Objective(**objective)

    def span(side: Mapping[str, Any]) -> str:
        return f"{side['label']} ({human_joules(side['low'])}–{goal.amount(side['high'])})"

    return (f"tied on energy within measurement error: {span(tie['chosen'])} with "
            f"{', '.join(span(t) for t in tie['tied_with'])}; chose the one with the fewest parameters "
            "(then the least fit energy, then the lowest upper end)")


def multiplicity_sentence(m: Mapping[str, Any]) -> str:
    """One sentence for every output: configs compared, and what the correction did."""
    if not m:
        return ""
    if m["adjust"] == "none":
        return (f"{m['compared']} configs compared; no multiplicity correction (--adjust none): the more configs "
                "compared, the likelier one passes by luck")
    text = f"{m['compared']} configs compared; verdicts Holm-corrected for multiplicity"
    if m["changed_answer"]:
        text += (f"; without the correction the answer would be {m['uncorrected_choice']}" if m["uncorrected_choice"]
                 else "; without the correction nothing would be adequate")
    return text


def _test_summary(record: Record, tests: Sequence[Record], metric: str) -> dict | None:
    """The test record of a config (:func:`rightsize.held_out.held_out_record`), summarized."""
    t = held_out_record(record, tests)
    if t is None:
        return None
    return {"key": t.key, "metric": t.score(metric), "ci": t.interval(metric), "n_examples": t.n_examples,
            "joules_per_query": t.joules_per_query, "energy_source": t.energy_source}


def _savings(chosen: dict, big: dict, carbon_of) -> dict[str, Any]:
    saved = big["joules_per_query"] - chosen["joules_per_query"]
    life_saved = big["lifetime_joules"] - chosen["lifetime_joules"]
    return {
        "joules_per_query_saved": saved,
        "percent_saved": 100.0 * saved / big["joules_per_query"] if big["joules_per_query"] > 0 else None,
        "lifetime_joules_saved": life_saved,
        "lifetime_kwh_saved": life_saved / footprint.JOULES_PER_KWH,
        "lifetime_carbon_g_saved": carbon_of(life_saved),
    }


def _given_up(chosen: dict, big: dict) -> dict[str, float | None]:
    """How much metric the choice gives up against the largest (negative: the choice scores higher)."""
    test = None
    if chosen["test"] and big["test"]:
        test = big["test"]["metric"] - chosen["test"]["metric"]
    return {"validation": big["metric"] - chosen["metric"], "test": test}
