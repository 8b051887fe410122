"""The ladder's top rung against the choice: savings against the largest model the ladder names,
whether or not the run evaluated it.

With a ``min`` target the search rightly skips the large rungs, so the largest config *evaluated*
is often a sibling of the answer. The top rung is the planned ladder rung (plan.jsonl) with the
most compute weights. Its J/query is *measured* when a record of it exists (validation, or test
after ``--measure-largest``), else the cost model's *estimate* from the rates the run measured
(:meth:`CostModel.expected`); the two are kept in separate fields (``measured`` / ``estimate``) so
an estimate never passes for a measurement. Pure functions over records and plans.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from rightsize.cost_model import CostModel, compute_weights_of
from rightsize.coverage import plan_matches
from rightsize.errors import RightsizeError
from rightsize.records import Record


def top_rung(plans: Sequence[Mapping[str, Any]], anchor: Record) -> dict | None:
    """The planned rung ``{name, key, config, compute_weights}`` with the most compute weights
    (ties: the first planned), or None when no planned rung runs a readable model."""
    from rightsize.recommend import spec_from_config

    best: dict | None = None
    for entry in plans:
        if not plan_matches(entry, anchor) or entry.get("event") != "start":
            continue
        for rung in entry.get("rungs") or ():
            try:
                weights = compute_weights_of(spec_from_config(str(rung.get("name")), rung.get("config") or {}))
            except RightsizeError:
                continue
            if weights and (best is None or weights > best["compute_weights"]):
                best = {"name": rung.get("name"), "key": rung.get("key"), "config": rung.get("config"),
                        "compute_weights": weights}
    return best


def against_top(records: Sequence[Record], plans: Sequence[Mapping[str, Any]],
                anchor: Record, chosen: Mapping[str, Any] | None) -> dict | None:
    """The chosen config against the ladder's top rung: ``measured`` (J/query and split) or
    ``estimate`` (J/query from the cost model), each with the percent the choice saves; None without
    a top rung or a choice."""
    from rightsize.recommend import spec_from_config

    top = top_rung(plans, anchor)
    if top is None or chosen is None:
        return None
    out: dict[str, Any] = {"rung": top["name"], "key": top["key"], "config": top["config"],
                           "compute_weights": top["compute_weights"], "measured": None, "estimate": None}
    ok = [r for r in records if r.ok and isinstance(r.joules_per_query, (int, float))
          and (r.task, r.limit, r.seed) == (anchor.task, anchor.limit, anchor.seed)]
    on_validation = [r for r in ok if r.key == top["key"]]
    on_test = [r for r in ok if r.split == "test" and r.config == top["config"]]
    found = (on_validation or on_test or [None])[-1]
    if found is not None:
        out["measured"] = _saved(chosen["joules_per_query"], found.joules_per_query,
                                 split=found.split or "validation", energy_source=found.energy_source)
        return out
    expected = CostModel.from_records(records).expected(spec_from_config(str(top["name"]), top["config"]))
    if expected is not None:
        out["estimate"] = _saved(chosen["joules_per_query"], expected, basis="cost model: the least J/query per "
                                 "compute weight measured in this run x the top rung's compute weights")
    return out


def _saved(chosen_jpq: float, top_jpq: float, **how: Any) -> dict[str, Any]:
    percent = 100.0 * (top_jpq - chosen_jpq) / top_jpq if top_jpq > 0 else None
    return {"joules_per_query": top_jpq, "percent_saved": percent, **how}
