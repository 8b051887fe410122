"""Coverage: did a run evaluate everything that could change its answer?

A ``within`` answer is judged against the best config, so it is *certain* only once every rung of
the ladder (the configs that set the bar) has been evaluated. An answer is *minimal* only once
every config that could be cheaper and adequate has been evaluated or ruled out by cost; otherwise
it is the cheapest adequate config *found*. ``evaluate`` and ``search`` record what they set out
to evaluate (and a search how it ended) in the run folder's ``plan.jsonl``; this module compares
that with the records. Pure functions; docs/search.md says how the search uses it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from rightsize.errors import RightsizeError
from rightsize.records import Record

PLAN_SCHEMA = "rightsize.plan/1"
LISTED = 200  # remaining configs a search's end entry lists by key (the count is always kept)
SHOWN = 3  # names in the one-line note


@dataclass(frozen=True)
class Coverage:
    """``certain``: the answer's adequacy stands (None: the folder records no plan, so unknown);
    ``minimal``: no config that could be cheaper and adequate is left unevaluated."""

    certain: bool | None
    minimal: bool | None
    missing: tuple[dict, ...] = ()  # ladder rungs not evaluated: {"name", "key", "why"}
    remaining: int | None = 0  # other configs that could be the answer, not evaluated (None: unknown)
    remaining_names: tuple[str, ...] = ()
    stopped: str | None = None  # the latest search's stop reason
    note: str = ""  # one line for people; "" when certain and minimal
    notes: tuple[str, ...] = field(default_factory=tuple)  # each finding, one line each

    @property
    def flagged(self) -> bool:
        """The answer carries a caveat a user must see (not certain, or not minimal)."""
        return self.certain is False or self.minimal is False

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["missing"], out["remaining_names"], out["notes"] = list(self.missing), list(self.remaining_names), \
            list(self.notes)
        return out


def plan_entry(command: str, *, task: str, split: str, limit: int | None, seed: int, run_id: str,
               rungs: Iterable[tuple[str, str, Mapping[str, Any]]], **extra: Any) -> dict[str, Any]:
    """What a run sets out to evaluate: its rungs as (name, evaluation key, config)."""
    return {"schema": PLAN_SCHEMA, "command": command, "event": "start", "run_id": run_id, "task": task,
            "split": split, "limit": limit, "seed": seed,
            "rungs": [{"name": n, "key": k, "config": dict(c)} for n, k, c in rungs], **extra}


def search_end_entry(start: Mapping[str, Any], *, stopped: str, remaining: Sequence[tuple[str, str]] | None,
                     space_size: int) -> dict[str, Any]:
    """How a search worker ended: its stop reason and the configs (name, key) that could still be the
    answer, or ``None`` when the space was too large to tell."""
    listed = list(remaining or ())[:LISTED]
    return {"schema": PLAN_SCHEMA, "command": "search", "event": "end", "run_id": start["run_id"],
            "task": start["task"], "split": start["split"], "limit": start["limit"], "seed": start["seed"],
            "stopped": stopped, "space_size": space_size,
            "remaining_count": None if remaining is None else len(remaining),
            "remaining": [{"name": n, "key": k} for n, k in listed]}


def plan_matches(entry: Mapping[str, Any], anchor: Record) -> bool:
    # Same task, split and sample of examples (the seed only picks the sample when a limit is set).
    if entry.get("schema") != PLAN_SCHEMA:
        return False
    same = (entry.get("task"), entry.get("split"), entry.get("limit")) == (anchor.task, anchor.split, anchor.limit)
    return same and (anchor.limit is None or entry.get("seed") == anchor.seed)


def assess_coverage(records: Sequence[Record], anchor: Record, plans: Sequence[Mapping],
                    rule: str, answer: Record | None) -> Coverage:
    """Coverage of the answer (``answer``: the chosen record, or None) over ``anchor``'s examples."""
    from rightsize.cost_model import CostModel
    from rightsize.recommend import spec_from_config

    entries = [p for p in plans if plan_matches(p, anchor)]
    if not entries:
        return Coverage(None, None, note="the run folder does not record which configs were planned "
                                         "(written before rightsize recorded plan.jsonl): completeness unknown")
    status = {r.key: str(r.status or "ok") for r in records if r.key is not None}
    cost = CostModel.from_records(records)
    evaluated = {k for k, s in status.items() if s in ("ok", "pruned")}
    answer_jpq = answer.joules_per_query if answer else None

    def could_be_cheaper(rung: Mapping[str, Any]) -> bool:
        if answer_jpq is None:
            return True
        try:
            bound = cost.lower_bound(spec_from_config(str(rung.get("name")), rung.get("config") or {}))
        except RightsizeError:
            return True
        return bound is None or bound <= answer_jpq

    missing: list[dict] = []
    seen: set[str] = set()
    for entry in entries:
        for rung in entry.get("rungs") or ():
            key = rung.get("key")
            if key in seen or key in evaluated:
                continue
            seen.add(key)
            failed = status.get(key) == "failed"
            if rule == "within":
                why = "failed" if failed else "not evaluated"
                missing.append({"name": rung.get("name"), "key": key, "why": why})
            elif not failed and could_be_cheaper(rung):  # a failed config cannot be the answer
                missing.append({"name": rung.get("name"), "key": key, "why": "not evaluated"})

    searches = [e for e in entries if e.get("command") == "search"]
    missing_keys = {m["key"] for m in missing}
    remaining: int | None = 0
    names: list[str] = []
    stopped, space_size = None, None
    if searches:
        last_start = max((i for i, e in enumerate(searches) if e.get("event") == "start"), default=-1)
        ends = [e for e in searches[last_start + 1:] if e.get("event") == "end"]
        if not ends:
            remaining, stopped = None, "the latest search recorded no end (killed, or still running)"
        else:
            end = ends[-1]
            stopped, space_size = end.get("stopped"), end.get("space_size")
            listed = end.get("remaining") or []
            left = [c for c in listed if c.get("key") not in evaluated and c.get("key") not in missing_keys]
            names = [str(c.get("name")) for c in left]
            count = end.get("remaining_count")
            remaining = None if count is None else len(left) + max(0, int(count) - len(listed))

    certain = not (rule == "within" and missing)
    minimal = not missing and remaining == 0
    notes = _notes(rule, missing, remaining, names, stopped, answer is not None, space_size)
    return Coverage(certain, minimal, tuple(missing), remaining, tuple(names[:LISTED]), stopped,
                    "; ".join(notes), tuple(notes))


def _notes(rule: str, missing: list[dict], remaining: int | None, names: list[str], stopped: str | None,
           answered: bool, space_size: int | None) -> list[str]:
    out = []
    if missing:
        what = _names([f"{m['name']}{' (failed)' if m['why'] == 'failed' else ''}" for m in missing])
        verb = "was" if len(missing) == 1 else "were"
        if rule == "within":
            out.append(f"{what} {verb} not evaluated: the best may be higher, so the bar is uncertain")
        else:
            out.append(f"{what} {verb} not evaluated and may be cheaper and adequate")
    if remaining is None or remaining:
        count = f"{remaining}" if remaining is not None else (
            f"of a space of {space_size:,} configs (too many to list), the" if space_size else "an unknown number of")
        eg = f" (e.g. {_names(names)})" if names else ""
        why = f" (the search stopped: {stopped})" if stopped else ""
        lead = "the answer is the cheapest adequate config found, not certainly the cheapest: " if answered else ""
        out.append(f"{lead}{count} other configs that could be cheaper and adequate were not evaluated{eg}{why}")
    elif missing and stopped:
        out.append(f"the search stopped: {stopped}")
    return out


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(names[:SHOWN])
    return shown + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")
