"""A rung's fitted state on disk, for ``save``/``restore``: arrays as safetensors, settings as JSON,
scikit-learn linear heads as their plain arrays, FAISS indexes in FAISS's own format. Never pickle:
an artifact is data, and loading it runs no code from it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def write_arrays(folder: Path, name: str, arrays: dict[str, np.ndarray]) -> None:
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(folder / f"{name}.safetensors"))


def read_arrays(folder: Path, name: str) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(folder / f"{name}.safetensors"))


def write_json(folder: Path, name: str, obj: Any) -> None:
    (folder / f"{name}.json").write_text(json.dumps(obj, ensure_ascii=False, allow_nan=False), encoding="utf-8")


def read_json(folder: Path, name: str) -> Any:
    return json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))


def save_linear_head(folder: Path, classifier, name: str = "head") -> None:
    """A fitted LogisticRegression as its coefficients, intercepts and class names."""
    write_arrays(folder, name, {"coef": classifier.coef_, "intercept": classifier.intercept_})
    write_json(folder, name, {"classes": [str(c) for c in classifier.classes_]})


def load_linear_head(folder: Path, name: str = "head"):
    """The LogisticRegression :func:`save_linear_head` wrote: the same arrays, so the same predictions."""
    from sklearn.linear_model import LogisticRegression

    arrays, meta = read_arrays(folder, name), read_json(folder, name)
    coef, intercept, classes = arrays["coef"], arrays["intercept"], np.array(meta["classes"])
    rows = 1 if len(classes) == 2 else len(classes)
    if coef.ndim != 2 or coef.shape[0] != rows or intercept.shape != (rows,):
        raise ValueError(f"{name}: coefficients {coef.shape} and intercepts {intercept.shape} do not fit "
                         f"{len(classes)} classes")
    head = LogisticRegression()
    head.coef_, head.intercept_, head.classes_ = coef, intercept, classes
    head.n_features_in_ = coef.shape[1]
    return head


def save_index(folder: Path, index, name: str = "index") -> None:
    import faiss

    faiss.write_index(index, str(folder / f"{name}.faiss"))


def load_index(folder: Path, name: str = "index"):
    import faiss

    path = folder / f"{name}.faiss"
    if not path.is_file():  # FAISS aborts less politely on a missing file
        raise FileNotFoundError(f"{path.name} is missing")
    return faiss.read_index(str(path))


def save_neighbours(folder: Path, index, classes: np.ndarray, train_label_ids: np.ndarray) -> None:
    """A neighbour vote's state: the index, the sorted class names and each indexed vector's class."""
    save_index(folder, index)
    write_arrays(folder, "neighbours", {"train_label_ids": np.asarray(train_label_ids, dtype=np.int64)})
    write_json(folder, "neighbours", {"classes": [str(c) for c in classes]})


def load_neighbours(folder: Path) -> tuple[Any, np.ndarray, np.ndarray]:
    """``(index, classes, train_label_ids)`` as :func:`save_neighbours` wrote them."""
    index = load_index(folder)
    classes = np.array(read_json(folder, "neighbours")["classes"])
    ids = read_arrays(folder, "neighbours")["train_label_ids"]
    if len(ids) != index.ntotal or (len(ids) and (ids.min() < 0 or ids.max() >= len(classes))):
        raise ValueError("neighbours: labels do not match the index")
    return index, classes, ids
