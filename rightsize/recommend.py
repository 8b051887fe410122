"""The recommendation policy: the smallest adequate config to deploy, its savings and lifetime cost.

Pure functions over records (:class:`rightsize.records.Record`); no printing and no file I/O (the carbon
table is read through :mod:`rightsize.carbon`). Adequacy is :func:`rightsize.adequacy.judge`'s.
Selection uses the **validation** split only: test records are looked up to *report* the held-out
score of a choice, never to make it. ``largest`` and ``pareto_front`` ignore records that failed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

from rightsize import carbon, energy_quality
from rightsize import metrics as M
from rightsize.adequacy import Target, comparable, judge, ok_records
from rightsize.coverage import assess_coverage
from rightsize.errors import RightsizeError
from rightsize.naming import variant_labels
from rightsize.records import Record
from rightsize.rungs import RungSpec, rung_class

SCHEMA = "rightsize.recommendation/1"
JOULES_PER_KWH = 3.6e6
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
    """The largest config evaluated: most parameters (ties: most J/query)."""
    ok = ok_records(records)
    if not ok:
        raise ValueError("largest() needs at least one ok record")
    return max(ok, key=lambda r: (r.n_params or 0, r.joules_per_query))


def pareto_front(records: Sequence[Record], metric: str) -> list[Record]:
    """Configs no other config beats on both metric (higher) and J/query (lower); sorted by J/query."""
    ok = ok_records(records)

    def dominated(r: Record) -> bool:
        m, j = r.score(metric), r.joules_per_query
        return any(o.score(metric) >= m and o.joules_per_query <= j
                   and (o.score(metric) > m or o.joules_per_query < j) for o in ok)

    return sorted((r for r in ok if not dominated(r)), key=lambda r: (r.joules_per_query, -r.score(metric)))


# ------------------------------------------------------------------------------------ energy, carbon


def lifetime_joules(record: Record, queries_per_day: float, days: float) -> float:
    """Energy over a deployment: fit once, then ``queries_per_day × days`` queries.

    Load is left out: how often a service restarts is not something the records know.
    """
    return float((record.joules or {}).get("fit", 0.0)) + queries_per_day * days * record.joules_per_query


def carbon_grams(joules: float, pue: float, region: str) -> float:
    """gCO2e of ``joules`` drawn by the IT load: kWh × PUE × grid intensity of ``region``."""
    if not pue >= 1.0:
        raise RightsizeError(f"--pue {pue!r}: a data centre's PUE is at least 1.0")
    return joules / JOULES_PER_KWH * pue * carbon.intensity(region).g_per_kwh


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

    @property
    def adequate(self) -> bool:
        return self.chosen is not None

    @property
    def certain(self) -> bool:
        """False when configs that could set the bar were not evaluated (None counts as certain:
        a folder from before plans were recorded)."""
        return self.coverage.get("certain") is not False

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "adequate": self.adequate, "certain": self.coverage.get("certain"),
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
              queries_per_day: float = 10_000, days: float = 365, pue: float = 1.2, region: str | None = None,
              resamples: int = 1000, seed: int = 0, level: float = 0.95,
              plans: Sequence[Mapping[str, Any]] = ()) -> Recommendation:
    """The smallest adequate config on validation, next to the largest; test scores when recorded.
    ``plans`` (the run folder's plan.jsonl) say whether the answer is certain (rightsize.coverage)."""
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
    if queries_per_day < 0 or days < 0:
        raise RightsizeError("--queries-per-day and --days must not be negative")
    grid = carbon.intensity(region) if region else None  # an unknown region fails before any work
    if not pue >= 1.0:
        raise RightsizeError(f"--pue {pue!r}: a data centre's PUE is at least 1.0")

    judgement = judge(group, target, metric, resamples=resamples, seed=seed, level=level)
    verdicts = judgement.verdicts
    front = {r.key for r in pareto_front(group, metric)}
    tests = [r for r in records if r.ok and r.split == "test" and r.metrics is not None]

    def carbon_of(joules: float) -> float | None:
        return carbon_grams(joules, pue, grid.region) if grid else None

    def entry(r: Record) -> dict:
        v = verdicts[r.key]
        life = lifetime_joules(r, queries_per_day, days)
        return {
            "rung": r.rung, "key": r.key, "config": r.config, "n_params": r.n_params,
            "metric": r.score(metric), "ci": r.interval(metric),
            "joules_per_query": r.joules_per_query, "joules_fit": (r.joules or {}).get("fit", 0.0),
            "joules_per_query_uncertainty": energy_quality.jpq_uncertainty(r),
            "joules_per_query_gross": r.gross_joules_per_query,
            "energy_basis": r.basis, "below_resolution": r.below_resolution or [],
            "energy_source": r.energy_source, "estimated": r.estimated,
            "adequate": v.adequate, "rule": v.rule, "detail": v.detail, "bound": v.bound, "threshold": v.threshold,
            "pareto": r.key in front, "lifetime_joules": life, "lifetime_carbon_g": carbon_of(life),
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
            "queries_per_day": queries_per_day, "days": days, "pue": pue,
            "region": grid.region if grid else None, "grid_g_per_kwh": grid.g_per_kwh if grid else None,
            "grid_year": grid.year if grid else None, "grid_source": carbon.attribution() if grid else None,
            "lifetime": "fit joules + queries_per_day x days x joules_per_query (load not counted)",
            "level": level, "resamples": resamples, "seed": seed,
        },
        estimated=any(e["estimated"] for e in entries.values()),
        excluded={"failed": sum(1 for r in others if not r.ok),
                  "other_examples": sum(1 for r in others if r.ok)},
        coverage=covered.to_dict(),
    )


def _test_summary(record: Record, tests: Sequence[Record], metric: str) -> dict | None:
    """The latest ok test-split record of the same config, fit and sample, if there is one."""
    def fit_and_sample(r: Record) -> tuple:
        return r.task, r.config, r.limit, r.train_limit, r.seed, r.device

    matches = [t for t in tests if fit_and_sample(t) == fit_and_sample(record)]
    if not matches:
        return None
    t = matches[-1]
    return {"key": t.key, "metric": t.score(metric), "ci": t.interval(metric), "n_examples": t.n_examples,
            "joules_per_query": t.joules_per_query, "energy_source": t.energy_source}


def _savings(chosen: dict, big: dict, carbon_of) -> dict[str, Any]:
    saved = big["joules_per_query"] - chosen["joules_per_query"]
    life_saved = big["lifetime_joules"] - chosen["lifetime_joules"]
    return {
        "joules_per_query_saved": saved,
        "percent_saved": 100.0 * saved / big["joules_per_query"] if big["joules_per_query"] > 0 else None,
        "lifetime_joules_saved": life_saved,
        "lifetime_kwh_saved": life_saved / JOULES_PER_KWH,
        "lifetime_carbon_g_saved": carbon_of(life_saved),
    }


def _given_up(chosen: dict, big: dict) -> dict[str, float | None]:
    """How much metric the choice gives up against the largest (negative: the choice scores higher)."""
    test = None
    if chosen["test"] and big["test"]:
        test = big["test"]["metric"] - chosen["test"]["metric"]
    return {"validation": big["metric"] - chosen["metric"], "test": test}
