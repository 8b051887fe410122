"""The task rightsize assumes for a bare data file: the zero-config first run.

``rightsize evaluate|search|check DATA`` takes a JSONL or CSV file, or a folder per class, where a task
file would go. The text and label fields are detected (or given with ``--text-field``/``--label-field``),
the splits are carved as for ``data: {all: ...}`` (seeded, stratified 70/15/15), the target is
``within 0.02`` of the best config, and the metric is accuracy, or macro_f1 when the labels are
imbalanced (the most common has more than IMBALANCE times the examples of the least common).

The assumed task is then a task file like any other: kept as ``task.yaml`` in the run folder (or
where ``--save-task`` puts it), so the records name it and a later ``recommend`` reads it back. A
file that already stands there and holds another task is never overwritten.

Detection, over the columns of a JSONL or CSV file (a CSV column, or a key every JSON record has):

* label-like: string or integer values, at least 2 distinct ones, at most half as many as rows;
* text-like: string values, more than half of them distinct and more than half with a space;
* one candidate of a kind is taken; among several, the one named ``text`` (``label``); else the file
  is refused with one line saying which flag to pass.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rightsize.adequacy import DEFAULT_WITHIN, Target
from rightsize.errors import RightsizeError
from rightsize.naming import safe_name
from rightsize.results import RUNS_FILE
from rightsize.tasks import TaskSpec, data_format, read_columns

IMBALANCE = 3.0  # most common / least common label count above which the metric is macro_f1
TASK_FILE = "task.yaml"  # where a run folder keeps the task assumed for it
_SHOWN = 8  # column names a message lists
_FRACTION = 0.15  # validation and test, each a fraction of the whole file (as load_task's defaults)


@dataclass(frozen=True)
class AssumedTask:
    """A task built from a data file alone; ``notes`` say why each field has its value."""

    source: Path
    name: str
    text_field: str | None  # None for a folder per class
    label_field: str | None
    metric: str
    notes: dict[str, str] = field(default_factory=dict)

    def document(self, where: Path) -> dict[str, Any]:
        """The task file's content when it is kept at ``where`` (the data path relative to it if under it)."""
        data = str(self.source.resolve())
        folder = where.parent.resolve()
        if Path(data).is_relative_to(folder) and not os.path.relpath(data, folder).startswith("~"):
            data = os.path.relpath(data, folder)
        doc: dict[str, Any] = {"name": self.name, "description": f"assumed by rightsize for {self.source.name}",
                               "data": {"all": data}}
        if self.text_field is not None:
            doc.update(text_field=self.text_field, label_field=self.label_field)
        doc.update(metric=self.metric, target={"within": DEFAULT_WITHIN})
        return doc

    def yaml_text(self, where: Path) -> str:
        return yaml.safe_dump(self.document(where), sort_keys=False, default_flow_style=None, width=1000)

    def spec_at(self, where: Path, what: str = "the run folder's task file",
                remedy: str = "pass that file as TASK to run it, or --out DIR to keep the two apart") -> TaskSpec:
        """The task as it will read from ``where``; a RightsizeError if a file there holds another one."""
        if where.is_dir():
            raise RightsizeError(f"{where}: is a folder; {what} must be a file")
        if where.exists():
            try:
                same = where.read_text(encoding="utf-8") == self.yaml_text(where)
            except (OSError, UnicodeDecodeError) as exc:
                raise RightsizeError(f"{where}: cannot read {what} ({exc})") from None
            if not same:
                raise RightsizeError(f"{where}: {what} exists and holds another task than the one assumed for "
                                     f"{self.source}; {remedy}")
        return TaskSpec(name=self.name, path=where, data={"all": self.source.resolve()},
                        text_field=self.text_field or "text", label_field=self.label_field or "label",
                        metric=self.metric, target=Target(within=DEFAULT_WITHIN), seed=0,
                        validation_fraction=_FRACTION, test_fraction=_FRACTION,
                        description=self.document(where)["description"], format=None)

    def keep(self, where: Path) -> None:
        """Write the task file at ``where`` (after :meth:`spec_at` said it is free or holds this task)."""
        if where.exists():
            return
        try:
            where.parent.mkdir(parents=True, exist_ok=True)
            where.write_text(self.yaml_text(where), encoding="utf-8")
        except OSError as exc:
            raise RightsizeError(f"{where}: cannot write the assumed task ({exc.strerror or exc})") from None


def is_data_path(path: Path) -> bool:
    """A JSONL/CSV file or a folder (a task file is anything else)."""
    return data_format(path) is not None


def is_class_folder(path: Path) -> bool:
    """A folder of label sub-folders, not a run folder: it has sub-folders, and no runs.jsonl in it or them."""
    if not path.is_dir() or (path / RUNS_FILE).exists():
        return False
    subs = [d for d in path.iterdir() if d.is_dir() and not d.name.startswith(".")]
    return bool(subs) and not any((d / RUNS_FILE).exists() for d in subs)


def assume_task(path: Path, text_field: str | None = None, label_field: str | None = None) -> AssumedTask:
    """The task for a bare data file (see the module's docstring); RightsizeError when it cannot be told."""
    if not path.exists():
        raise RightsizeError(f"{path}: no such data file or folder")
    name = safe_name(path.stem if path.is_file() else path.resolve().name)
    if data_format(path) == "folder":
        given = "--text-field" if text_field else "--label-field" if label_field else None
        if given:
            raise RightsizeError(f"{path}: {given} does not apply to a folder per class (its sub-folders are the "
                                 "labels)")
        counts = _folder_counts(path)
        if not counts:
            raise RightsizeError(f"{path}: a folder per class needs label sub-folders with files; it has none")
        metric, why = _metric(counts)
        return AssumedTask(path, name, None, None, metric,
                           {"fields": "a folder per class: each sub-folder is a label, each file a text",
                            "metric": why})
    columns = read_columns(path)
    if not columns or not any(columns.values()):
        raise RightsizeError(f"{path}: has no examples")
    if text_field is not None and text_field == label_field:
        raise RightsizeError(f"--text-field and --label-field are both {text_field!r}; they must differ")
    for flag, given in (("--text-field", text_field), ("--label-field", label_field)):
        if given is not None and given not in columns:
            raise RightsizeError(f"{path}: {flag} {given!r}: no such column (columns: {_names(list(columns))})")
    label, label_note, label_flag = _pick(columns, label_field, "label", _label_like,
                                          exclude=text_field, what="a label (few distinct values)")
    text, text_note, text_flag = _pick(columns, text_field, "text", _text_like, exclude=label, what="free text")
    problems = [p for p in (text_flag, label_flag) if p]
    if problems:
        raise RightsizeError(f"{path}: " + "; ".join(p for p, _ in problems)
                             + "; pass " + " and ".join(f for _, f in problems))
    metric, why = _metric(Counter(str(v) for v in columns[label]))
    return AssumedTask(path, name, text, label, metric, {"text_field": text_note, "label_field": label_note,
                                                         "metric": why})


def _pick(columns: dict[str, list], given: str | None, usual: str, test, *, exclude: str | None, what: str):
    """(column, why, None) or (None, None, (problem, flag)) for one field."""
    flag = f"--{usual}-field NAME"
    if given is not None:
        return given, f"--{usual}-field", None
    candidates = [c for c, values in columns.items() if c != exclude and test(values)]
    if len(candidates) == 1:
        return candidates[0], f"the only column that looks like {what}", None
    named = [c for c in candidates if c.lower() == usual]
    if len(named) == 1:
        return named[0], f"named {usual!r} among {_names(candidates)}", None
    if not candidates:
        return None, None, (f"no column looks like {what} (columns: {_names(list(columns))})", flag)
    return None, None, (f"several columns look like {what} ({_names(candidates)}) and none is named {usual!r}", flag)


def _label_like(values: list) -> bool:
    if not values or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in values):
        return False
    distinct = len({str(v).strip() for v in values})
    return 2 <= distinct <= len(values) / 2


def _text_like(values: list) -> bool:
    if not values or not all(isinstance(v, str) for v in values):
        return False
    spaced = sum(" " in v.strip() for v in values)
    return len(set(values)) > len(values) / 2 and spaced > len(values) / 2


def _metric(counts: Counter) -> tuple[str, str]:
    (most, n_most), (least, n_least) = counts.most_common()[0], counts.most_common()[-1]
    ratio = n_most / max(n_least, 1)
    if ratio > IMBALANCE:
        return "macro_f1", f"labels imbalanced: {most!r} has {ratio:.1f}x the examples of {least!r}"
    return "accuracy", f"labels balanced within {IMBALANCE:g}x ({len(counts)} labels)"


def _folder_counts(path: Path) -> Counter:
    try:
        return Counter({d.name: sum(1 for f in d.iterdir() if f.is_file() and not f.name.startswith("."))
                        for d in path.iterdir() if d.is_dir() and not d.name.startswith(".")}) + Counter()
    except OSError as exc:
        raise RightsizeError(f"{path}: cannot read folder: {exc.strerror or exc}") from None


def _names(columns: list[str]) -> str:
    shown = ", ".join(repr(c) for c in columns[:_SHOWN])
    return shown + (f" and {len(columns) - _SHOWN} more" if len(columns) > _SHOWN else "") if columns else "none"
