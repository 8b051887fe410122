"""A task's loaded data summarised for ``rightsize tasks validate``: counts, label balance, provenance."""

from __future__ import annotations

from collections import Counter

from rightsize.tasks.leakage import Overlaps, overlaps
from rightsize.tasks.splits import Split, TaskData


def summarize(data: TaskData, shared: Overlaps | None = None) -> dict:
    """Counts, label balance and provenance of each split, for ``rightsize tasks validate``.

    Returns a JSON-serialisable dict::

        {"name", "path", "description", "metric", "target": {"min": x} | {"within": x}, "seed",
         "labels": [...], "num_labels",
         "splits": {split: {"count", "source", "path", "majority_fraction"}},   # only the splits present
         "label_balance": {label: {split: count}},                            # every train label, 0 if absent
         "overlap": {"rule", "pairs": [...]}}                                  # texts shared across splits (Overlaps)

    ``path`` is the file a split was read or carved from; ``majority_fraction`` is the share of the most common
    label (the score of always guessing it, for accuracy). ``shared``: :func:`overlaps` of ``data``, if at hand.
    """
    task = data.task
    present = [s for s in (data.train, data.validation, data.test) if s is not None]
    counts = {s.name: Counter(s.labels) for s in present}

    def one(split: Split) -> dict:
        origin = task.data.get(split.name) if split.source == "file" else task.data.get(split.source.split()[-1])
        n = len(split.labels)
        return {
            "count": n,
            "source": split.source,
            "path": str(origin) if origin is not None else None,
            "majority_fraction": round(max(counts[split.name].values()) / n, 4) if n else 0.0,
        }

    return {
        "name": task.name,
        "path": str(task.path),
        "description": task.description,
        "metric": task.metric,
        "target": task.target.to_dict(),
        "seed": task.seed,
        "labels": list(data.labels),
        "num_labels": len(data.labels),
        "splits": {s.name: one(s) for s in present},
        "label_balance": {label: {s.name: counts[s.name].get(label, 0) for s in present} for label in data.labels},
        "overlap": (shared if shared is not None else overlaps(data)).to_dict(),
    }
