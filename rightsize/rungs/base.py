"""The rung interface: what every model family implements, and the knob schema it declares.

A rung is one configuration on the ladder. The evaluator drives it through three measured
phases — ``load``, ``fit`` (train a head / build an index), ``predict`` — and knows nothing about
the family behind it, so adding a family means adding one subclass and registering it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Sequence

from rightsize.cache import CacheLedger
from rightsize.errors import RightsizeError

if TYPE_CHECKING:
    import numpy as np

    from rightsize.cache import EmbeddingCache
    from rightsize.energy import Meter
    from rightsize.tasks import TaskData


@dataclass(frozen=True)
class Knob:
    """One tunable setting of a rung: its type, default and the values that make sense."""

    type: type
    default: Any
    choices: tuple | None = None
    min: float | None = None
    max: float | None = None
    nullable: bool = False
    help: str = ""
    # (other knob, value): this knob matters only when the other one has that value (LoRA's rank
    # only with method: lora). The search varies it only then, so no two configs differ in a knob
    # that does nothing; a ladder that sets it where it does nothing is told so.
    only_if: tuple[str, Any] | None = None

    def applies(self, values: Mapping[str, Any], knobs: Mapping[str, "Knob"]) -> bool:
        """Whether this knob matters for a rung whose knobs are ``values`` (missing ones at their default)."""
        if self.only_if is None:
            return True
        other, wanted = self.only_if
        return values.get(other, knobs[other].default) == wanted

    def validate(self, name: str, value: Any, where: str) -> Any:
        if value is None:
            if self.nullable or self.default is None:
                return None
            raise RightsizeError(f"{where}: knob '{name}' must not be null")
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) and self.type is not bool:
            raise RightsizeError(f"{where}: knob '{name}' must be {self.type.__name__}, got {value!r}")
        if not isinstance(value, self.type):
            raise RightsizeError(f"{where}: knob '{name}' must be {self.type.__name__}, got {value!r}")
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(map(str, self.choices))
            raise RightsizeError(f"{where}: knob '{name}' = {value!r} is not one of: {allowed}")
        if self.min is not None and value < self.min:
            raise RightsizeError(f"{where}: knob '{name}' = {value!r} is below its minimum {self.min}")
        if self.max is not None and value > self.max:
            raise RightsizeError(f"{where}: knob '{name}' = {value!r} is above its maximum {self.max}")
        return value


@dataclass(frozen=True)
class RungSpec:
    """A rung as written in a ladder file: a name, a kind, an optional model and its knobs."""

    name: str
    kind: str
    model: str | None = None
    knobs: dict[str, Any] = field(default_factory=dict)
    # An optional rung whose model cannot be had is skipped with a message instead of stopping the
    # run; it says nothing about the evaluation itself, so it is not part of config().
    optional: bool = False

    def config(self) -> dict[str, Any]:
        """The full configuration (kind, model, every knob) that identifies this evaluation."""
        return {"kind": self.kind, "model": self.model, **dict(sorted(self.knobs.items()))}


@dataclass(frozen=True)
class RunContext:
    """Settings of the whole run that every rung shares."""

    device: str = "cpu"  # "cpu" or "cuda"
    seed: int = 0
    progress: bool = False
    trust_remote_code: bool = False
    allow_pickle: bool = False
    # Where encoders keep their embeddings between configurations; None encodes every time.
    cache: "EmbeddingCache | None" = None


class Rung(ABC):
    """Base class of all rungs. Subclasses set ``kind`` and ``knobs`` and register themselves."""

    kind: ClassVar[str]
    knobs: ClassVar[dict[str, Knob]] = {}
    needs_model: ClassVar[bool] = False
    # predict does the same work on every call (nothing set up or learned on first use), so an
    # inference too short for the meter can be repeated inside its window and divided (evaluate.py).
    repeatable_predict: ClassVar[bool] = True
    trained: ClassVar[bool] = False  # True where fit() trains model weights (finetune, distill, static)

    def __init__(self, spec: RungSpec, context: RunContext, meter: "Meter | None" = None):
        self.spec = spec
        self.context = context
        # The run's meter, for work a rung measures itself (cache misses); phases are measured outside.
        self.meter = meter
        # Work served from a cache, with its stored cost: the evaluator charges it to the phase.
        self.ledger = CacheLedger()
        self.k = {name: spec.knobs.get(name, knob.default) for name, knob in self.knobs.items()}

    @classmethod
    def conflict(cls, knobs: dict[str, Any]) -> str | None:
        """Why these knob values (every knob, defaults filled in) cannot go together; None when they
        can. A ladder rung with a conflict is bad input; the search space leaves such configs out."""
        return None

    @classmethod
    def models(cls, spec: RungSpec) -> list[str]:
        """Every model this rung will load (checked before a run starts)."""
        return [spec.model] if cls.needs_model and spec.model else []

    @classmethod
    def preflight(cls, spec: RungSpec) -> None:
        """Checks a run makes before any evaluation starts, once the rung's models are known to be
        there (RightsizeError naming the problem): what would otherwise fail every evaluation."""

    @classmethod
    def check_task(cls, spec: RungSpec, data: TaskData, allow_overlap: bool) -> None:
        """Checks of the rung against the task's loaded splits before any evaluation starts
        (RightsizeError naming the problem): e.g. files of its own that share the held-out texts."""

    @abstractmethod
    def load(self) -> None:
        """Load weights or build empty structures (measured as the ``load`` phase)."""

    @abstractmethod
    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> None:
        """Train the head or build the index on the train split (the ``fit`` phase)."""

    @abstractmethod
    def predict(self, texts: Sequence[str]) -> list[str]:
        """Label each text (the ``infer`` phase)."""

    def predict_proba(self, texts: Sequence[str]) -> tuple[list[str], "np.ndarray"]:
        """The class names and, per text, a probability for each (rows sum to 1): what a cascade
        reads its confidence from. Kinds that give no class probabilities (LMs) leave it out."""
        raise NotImplementedError(f"kind {self.kind!r} gives no class probabilities")

    @classmethod
    def gives_probabilities(cls) -> bool:
        return cls.predict_proba is not Rung.predict_proba

    @abstractmethod
    def n_params(self) -> int:
        """Parameters counted on the loaded/fitted objects, never declared."""

    def save(self, folder: Path) -> None:
        """Write the fitted state into ``folder`` (empty, exists): tensors as safetensors, scikit-learn
        heads with skops or as plain arrays, settings as JSON; never pickle."""
        raise NotImplementedError(f"kind {self.kind!r} cannot save its fitted state")

    def restore(self, folder: Path) -> None:
        """After ``load()``, take the fitted state from ``folder`` (written by ``save``) instead of ``fit()``."""
        raise NotImplementedError(f"kind {self.kind!r} cannot restore a fitted state")

    def training(self) -> dict[str, Any]:
        """What the fit did, for kinds that train: epochs run, train examples seen, final train loss."""
        return {}

    def facts(self) -> dict[str, Any]:
        """Measured facts worth recording beside the metrics (dimensions, index size, dtype...)."""
        return {}

    def example_facts(self, texts: Sequence[str]) -> dict[str, Any]:
        """Facts per scored example (``texts`` in the record's order), gathered after the measured
        inference and outside its cost: what a report needs to derive other settings' scores."""
        return {}

    def close(self) -> None:
        """Release memory (models, indexes) once the rung is done."""

    @classmethod
    def link(cls, spec: RungSpec, rungs: Mapping[str, RungSpec], folder: Path, where: str) -> RungSpec:
        """The spec with what it names resolved: other rungs of its ladder (``rungs``, by name) and
        files relative to the ladder's ``folder``. What it returns is the config evaluated and keyed,
        so a change in anything it names changes the evaluation key. Most kinds name nothing."""
        return spec

    @classmethod
    def inference_spec(cls, spec: RungSpec) -> RungSpec | None:
        """The config whose model runs a forward pass per query (what the search's cost model bounds),
        or None where inference runs no model (TF-IDF, table look-ups)."""
        return spec if cls.needs_model and spec.model else None
