"""The record: one evaluation of one config on one split, as ``runs.jsonl`` holds it (one JSON object a line).

:class:`Record` is the one definition of its fields; :func:`rightsize.evaluate.evaluate_rung` makes
it, :class:`rightsize.results.RunLog` writes and reads it, and everything downstream reads its
attributes. ``schema`` names the version of the layout; :meth:`Record.from_dict` reads every version
this code knows and keeps the keys it does not know in ``extra`` (written after the known ones), so a
record read and written again loses nothing, and one that rightsize wrote is the same line, byte for
byte: every version wrote its fields in the order of :class:`Record`'s (but for a trained config's
fit restored from its artifact, which wrote ``artifact`` before ``training`` until the record was typed:
it reads the same and is written back with those two in this order).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Mapping

from rightsize.energy.estimate import is_estimate
from rightsize.energy.meter import GROSS
from rightsize.errors import RightsizeError

SCHEMA = "rightsize.record/1"
# The fields that hold a figure per phase (``{"load": ..., "fit": ..., "infer": ...}``), and those that
# list the phases a condition held in.
PER_PHASE_FIGURES = ("seconds", "joules", "joules_gross", "energy_parts", "energy_uncertainty", "seconds_spent",
                     "joules_spent")
PHASE_FLAGS = ("below_resolution", "energy_read_errors")
# Fields whose None a record made here writes as null, when it has the fields named beside them (the
# layout evaluate writes): "no limit"; "no idle baseline"; "not the CPU-time estimate"; "scored, but no
# inference ran" (a fine-tune the search pruned between epochs). A record read writes null where it had one.
_NULL_WRITTEN: dict[str, tuple[str, ...]] = {
    "limit": (), "train_limit": (), "idle_watts": ("energy_basis",), "cpu_watts_per_core": ("energy_basis",),
    "joules_per_query": ("metrics",), "joules_per_query_spent": ("metrics", "joules_spent"),
    "joules_per_query_gross": ("metrics", "joules_gross"),
}


@dataclass(slots=True)
class Record:
    """One evaluation. Fields are in the order they are written; a field that is None is left out of
    the JSON (a record of a failed config has no scores), except where a record read had a null, or,
    in a record made here, where ``_NULL_WRITTEN`` says (``limit`` and ``train_limit``, ``idle_watts``
    and ``cpu_watts_per_core`` beside ``energy_basis``, the J/query figures beside scores). Records
    from before GPU energy have none of the ``energy_*``, ``*_gross``, ``idle_watts``,
    ``below_resolution`` and ``infer_repeats`` fields."""

    schema: str | None = SCHEMA  # None: a line without one, read as the current schema
    key: str | None = None  # identity of the evaluation (rightsize.evaluate.evaluation_key)
    fit_key: str | None = None  # identity of its fit, the artifact's key (rightsize.evaluate.fit_key)
    run_id: str | None = None
    time: str | None = None
    task: str | None = None
    task_file: str | None = None
    metric: str | None = None  # the task's main metric
    target: dict[str, Any] | None = None  # the task's target, {"min": x, "within": d}
    rung: str | None = None
    config: dict[str, Any] | None = None  # RungSpec.config()
    split: str | None = None
    limit: int | None = None
    train_limit: int | None = None
    n_train: int | None = None
    n_examples: int | None = None
    device: str | None = None
    seed: int | None = None
    energy_source: str | None = None  # "nvml", "rapl", "estimate", or composite such as "nvml+rapl"
    cpu_watts_per_core: float | None = None  # the CPU-time estimate's watts per core (None: no estimate)
    energy_basis: str | None = None  # which energy ``joules`` is: "net-of-idle" or "gross" (see ``basis``)
    idle_watts: float | None = None  # the GPU's idle draw subtracted; written (null) whenever energy_basis is
    energy_resolution_s: float | None = None  # the coarsest counter's update step
    seconds: dict[str, float] | None = None  # per phase, what the config costs (cache-served work included)
    joules: dict[str, float] | None = None  # per phase, likewise, net of idle
    joules_gross: dict[str, float] | None = None  # per phase, the cost with the idle draw in
    energy_parts: dict[str, dict[str, float]] | None = None  # per phase, joules per meter part, net
    energy_uncertainty: dict[str, float] | None = None  # per phase, joules the counters' steps can be off by
    below_resolution: list[str] | None = None  # phases too short for the counters
    energy_read_errors: list[str] | None = None  # phases in which a counter read failed
    infer_repeats: list[int] | None = None  # per inference window, the passes it ran to be resolvable
    seconds_spent: dict[str, float] | None = None  # per phase, what this run spent
    joules_spent: dict[str, float] | None = None
    training: dict[str, Any] | None = None  # what a trained kind's fit did (epochs, losses...), restored or not
    artifact: dict[str, Any] | None = None  # the fitted state saved or restored (rightsize.artifacts)
    metrics: dict[str, float] | None = None
    ci: dict[str, list[float]] | None = None  # per metric, the 95% bootstrap interval
    label_names: list[str] | None = None
    references: list[int] | None = None  # per example, label indices into label_names
    predictions: list[int] | None = None
    n_params: int | None = None
    facts: dict[str, Any] | None = None  # what the rung measured about its model (a cascade: each stage per example)
    joules_per_query: float | None = None
    joules_per_query_spent: float | None = None
    joules_per_query_gross: float | None = None
    joules_per_query_repeats: dict[str, Any] | None = None  # J/query over repeated inference windows (estimate)
    status: str | None = None  # "ok", "pruned" or "failed"; None until the evaluation ends
    pruned: dict[str, Any] | None = None  # {"after", "of", "reason"} of a pruned evaluation
    error: str | None = None
    failed_phase: str | None = None
    joules_total: float | None = None
    seconds_total: float | None = None
    joules_total_spent: float | None = None
    seconds_total_spent: float | None = None
    cache: dict[str, Any] | None = None  # embedding cache hits, misses and joules charged
    search: dict[str, Any] | None = None  # the search study and trial that evaluated it
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know, kept as read
    nulls_read: frozenset[str] | None = field(default=None, compare=False, repr=False)  # fields read as null

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "record") -> Record:
        """A record from its JSON object, read as its ``schema`` says; RightsizeError (naming
        ``where``) for a schema this version does not know."""
        schema = data.get("schema")
        reader = _READERS.get(schema if schema is not None else SCHEMA)
        if reader is None:
            raise RightsizeError(f"{where}: record schema {schema!r} is not one this version of rightsize "
                                 f"reads ({', '.join(_READERS)})")
        return reader(data, where)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to runs.jsonl."""
        out = {}
        for name in _FIELDS:
            value = getattr(self, name)
            if value is not None or self._writes_null(name):
                out[name] = value
        out.update(self.extra)
        return out

    def _writes_null(self, name: str) -> bool:
        if self.nulls_read is not None:
            return name in self.nulls_read
        return name in _NULL_WRITTEN and all(getattr(self, other) is not None for other in _NULL_WRITTEN[name])

    # ---------------------------------------------------------------- what several readers ask

    @property
    def ok(self) -> bool:
        """The evaluation finished and scored the whole split."""
        return self.status == "ok"

    @property
    def estimated(self) -> bool:
        """Some of the record's energy comes from the CPU-time estimate, not a hardware counter."""
        parts = (part for phase in (self.energy_parts or {}).values() for part in phase)
        return is_estimate(self.energy_source or "", parts)

    @property
    def basis(self) -> str:
        """Which energy ``joules`` is: ``net-of-idle`` or ``gross`` (records from before GPU energy)."""
        return self.energy_basis or GROSS

    @property
    def gross_joules_per_query(self) -> float | None:
        """J/query with the GPU's idle draw in (the same as ``joules_per_query`` for a gross record)."""
        return self.joules_per_query if self.joules_per_query_gross is None else self.joules_per_query_gross

    @property
    def spent_joules(self) -> float:
        """What the evaluation really spent: less than its cost (``joules_total``) when the embedding
        cache served part of it; the cost itself for records written before the cache existed."""
        if self.joules_total_spent is not None:
            return float(self.joules_total_spent)
        if self.joules_spent:
            return float(sum(self.joules_spent.values()))
        return float(self.joules_total or sum((self.joules or {}).values()))

    @property
    def fit_joules(self) -> float:
        """What fitting it cost (its ``fit`` phase's joules; 0 when it fits nothing or has no figure)."""
        return float((self.joules or {}).get("fit", 0.0))

    @property
    def examples_id(self) -> tuple:
        """Which examples it was scored on: the same task, split and sample (the seed picks the
        sample only when a limit is set), the same labels and references."""
        return (self.task, self.split, self.limit, self.seed if self.limit is not None else None,
                tuple(self.label_names or ()), tuple(self.references or ()))

    @property
    def pruned_reason(self) -> str | None:
        """Why the search's pruner stopped it (None when it was not pruned)."""
        return (self.pruned or {}).get("reason")

    @property
    def jpq_interval(self) -> tuple[float, float]:
        """J/query's 95% interval across repeated measurements (rightsize.energy_repeats), or the
        point value twice where the record has none (written before repeats, or not repeated)."""
        interval = (self.joules_per_query_repeats or {}).get("interval")
        if (isinstance(interval, list) and len(interval) == 2
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in interval)):
            return float(interval[0]), float(interval[1])
        point = float(self.joules_per_query or 0.0)
        return point, point

    def score(self, metric: str) -> float | None:
        """Its value of ``metric`` (None when it has no scores)."""
        return (self.metrics or {}).get(metric)

    def interval(self, metric: str) -> list[float] | None:
        """The 95% bootstrap interval of ``metric`` (None when it has none)."""
        return (self.ci or {}).get(metric)

    def forget_phase(self, phase: str) -> None:
        """Drop every figure and flag of ``phase``: what a window whose work failed (a restore that
        raised) wrote must not stand beside, or add to, the phase measured again."""
        for name in PER_PHASE_FIGURES:
            (getattr(self, name) or {}).pop(phase, None)
        for name in PHASE_FLAGS:
            flagged = getattr(self, name)
            if flagged and phase in flagged:
                flagged.remove(phase)


_FIELDS = tuple(f.name for f in fields(Record) if f.name not in ("extra", "nulls_read"))


# The JSON type of each field, from its annotation (a string: "dict[str, float] | None" -> dict).
_JSON_TYPES = {"str": (str, "string"), "int": (int, "integer"), "float": ((int, float), "number"),
               "dict": (dict, "object"), "list": (list, "array")}
_TYPES = {f.name: _JSON_TYPES[re.match(r"\w+", f.type).group()] for f in fields(Record) if f.name in _FIELDS}


def _read_v1(data: Mapping[str, Any], where: str) -> Record:
    """``rightsize.record/1``: every field optional (``task_file``, ``target``, the ``*_spent`` fields,
    ``cache``, ``pruned``, ``failed_phase``, ``facts``, ``search``, the GPU-energy fields, ``fit_key``,
    ``training`` and ``artifact`` came in over time)."""
    known = {name: data[name] for name in _FIELDS if name in data}
    for name, value in known.items():
        kind, word = _TYPES[name]
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise RightsizeError(f"{where}: field {name!r} is not a JSON {word}")
    nulls = frozenset(name for name, value in known.items() if value is None)
    known.setdefault("schema", None)
    return Record(**known, extra={k: v for k, v in data.items() if k not in known}, nulls_read=nulls)


_READERS: dict[str, Callable[[Mapping[str, Any], str], Record]] = {SCHEMA: _read_v1}
