"""Leakage: the texts each pair of a task's splits shares, and the refusal of splits that mostly overlap.

:func:`overlaps` counts the texts that splits share, equal after :func:`normalized`; :func:`refuse_overlap`
rejects two splits that are identical or share more than MOSTLY of the smaller one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rightsize.errors import RightsizeError
from rightsize.tasks.splits import TaskData, normalized

MOSTLY = 0.5  # two splits "mostly overlap" when more than this share of the smaller one's examples is shared
_SAMPLES = 3  # shared texts an overlap keeps as examples


@dataclass(frozen=True)
class Overlap:
    """The texts two splits share, equal after :func:`normalized`."""

    splits: tuple[str, str]
    texts: int  # distinct shared texts
    examples: tuple[int, int]  # examples of each split whose text the other split has
    sizes: tuple[int, int]  # examples in each split
    identical: bool  # both splits hold the same set of texts
    samples: tuple[str, ...]  # a few shared texts, as the first split has them

    @property
    def smaller(self) -> int:
        """0 or 1: the split with fewer examples (the first on a tie)."""
        return 0 if self.sizes[0] <= self.sizes[1] else 1

    @property
    def fraction(self) -> float:
        """The share of the smaller split's examples whose text the other split has."""
        return self.examples[self.smaller] / self.sizes[self.smaller]

    @property
    def blocking(self) -> bool:
        """Identical, or more than MOSTLY of the smaller split shared: no honest held-out score."""
        return self.identical or self.fraction > MOSTLY

    def to_dict(self) -> dict[str, Any]:
        return {"splits": list(self.splits), "texts": self.texts, "examples": list(self.examples),
                "sizes": list(self.sizes), "fraction": round(self.fraction, 4), "identical": self.identical,
                "blocking": self.blocking, "samples": list(self.samples)}


@dataclass(frozen=True)
class Overlaps:
    """Every pair of a task's splits that shares a text (none: no leakage found)."""

    pairs: tuple[Overlap, ...]

    @property
    def blocking(self) -> tuple[Overlap, ...]:
        return tuple(p for p in self.pairs if p.blocking)

    def to_dict(self) -> dict[str, Any]:
        return {"rule": f"texts equal after case folding and whitespace collapsing; an error above {MOSTLY:g} "
                        "of the smaller split", "pairs": [p.to_dict() for p in self.pairs]}


def overlaps(data: TaskData) -> Overlaps:
    """The texts each pair of splits shares (train/validation, train/test, validation/test)."""
    present = [s for s in (data.train, data.validation, data.test) if s is not None]
    norms = {s.name: [normalized(t) for t in s.texts] for s in present}
    sets = {name: set(texts) for name, texts in norms.items()}
    pairs = []
    for i, first in enumerate(present):
        for second in present[i + 1:]:
            shared = sets[first.name] & sets[second.name]
            if not shared:
                continue
            samples: dict[str, str] = {}
            for text, norm in zip(first.texts, norms[first.name]):
                if norm in shared and len(samples) < _SAMPLES:
                    samples.setdefault(norm, text)
            pairs.append(Overlap(
                splits=(first.name, second.name),
                texts=len(shared),
                examples=(sum(t in shared for t in norms[first.name]), sum(t in shared for t in norms[second.name])),
                sizes=(len(first), len(second)),
                identical=sets[first.name] == sets[second.name],
                samples=tuple(samples.values()),
            ))
    return Overlaps(tuple(pairs))


def refuse_overlap(data: TaskData, found: Overlaps) -> None:
    """A RightsizeError naming the first pair of splits that is identical or mostly overlaps, if any."""
    if not found.blocking:
        return
    pair = found.blocking[0]
    small, big = pair.splits[pair.smaller], pair.splits[1 - pair.smaller]
    how = "are identical" if pair.identical else "mostly overlap"
    task = data.task
    files = [f"data.{s} is {task.data[s]}" for s in pair.splits if s in task.data]
    where = f" ({', '.join(files)})" if files else ""
    raise RightsizeError(
        f"{task.path}: splits {pair.splits[0]} and {pair.splits[1]} {how}{where}: {pair.examples[pair.smaller]} of "
        f"{small}'s {pair.sizes[pair.smaller]} examples ({pair.fraction:.0%}) have their text in {big} (after case "
        f"and whitespace normalisation); give each split its own data, or pass --allow-overlap to run anyway"
    )


# ------------------------------------------------------------------------------------------- summary
