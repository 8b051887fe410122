"""Task files: what a team's classification task is, where its data lives, and what "good enough" means.

A task is a small YAML file::

    name: snips
    description: "SNIPS intents (source, licence)"
    data: {train: data/train.jsonl, test: data/test.jsonl}   # relative to this file
    text_field: text          # default "text"
    label_field: label        # default "label"
    metric: accuracy          # accuracy | macro_f1
    target: {min: 0.90}       # or {within: 0.02}: within 0.02 of the best rung
    seed: 0                   # default 0; drives every carve and shuffle
    validation_fraction: 0.15 # default 0.15
    test_fraction: 0.15       # default 0.15, only with data.all
    format: jsonl             # optional: jsonl | csv | folder; otherwise inferred per path

``data`` takes either ``train`` (plus optional ``validation`` and ``test``) or ``all`` alone; how missing
splits are carved is :mod:`rightsize.tasks.splits`' job, how each format is read :mod:`rightsize.tasks.files`'.

``name`` (default: the file's stem) follows the rung-name rule (:data:`rightsize.naming.NAME_RE`): it names
the run folder ``results/<name>``, so it can never lead outside ``results/``.

Data paths may use environment variables, ``${VAR}`` or ``${VAR:-default}`` (default used when VAR is unset
or empty; nesting is not supported), and a leading ``~``; the result, if relative, is resolved against the
folder of the task file (this includes a relative value taken from the environment).

Anything wrong with the task file raises :class:`RightsizeError` with a one-line message naming the file
(and line), the field and the value.
"""

from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rightsize.adequacy import DEFAULT_WITHIN, Target
from rightsize.errors import RightsizeError
from rightsize.naming import NAME_RE, NAME_RULE
from rightsize.tasks.files import FORMATS, read_utf8, short_repr, type_name

log = logging.getLogger(__name__)

METRICS = ("accuracy", "macro_f1")
DATA_KEYS = ("train", "validation", "test", "all")
ALLOWED_KEYS = (
    "name",
    "description",
    "data",
    "format",
    "text_field",
    "label_field",
    "metric",
    "target",
    "seed",
    "validation_fraction",
    "test_fraction",
)


@dataclass(frozen=True)
class TaskSpec:
    """A parsed, validated task file. ``data`` maps split name (train/validation/test or all) to a resolved path."""

    name: str
    path: Path
    data: dict[str, Path]
    text_field: str
    label_field: str
    metric: str
    target: Target
    seed: int
    validation_fraction: float
    test_fraction: float
    description: str
    format: str | None



class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key repeated in one mapping (PyYAML silently keeps the last)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            continue  # let the default constructor raise its own error
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first on line {seen[key]})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line + 1
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)



def _read_yaml(path: Path) -> Any:
    if not path.exists():
        raise RightsizeError(f"{path}: task file not found")
    if path.is_dir():
        raise RightsizeError(f"{path}: task file is a directory, expected a YAML file")
    text = read_utf8(path, "cannot read task file")
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        context = getattr(e, "context", None)
        what = f"{context}: {problem}" if context and problem and context not in problem else problem
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise RightsizeError(f"{where}: malformed YAML: {what}") from None




def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{([^}]*)\}?")


def expand_path(value: str, base: Path, where: str = "path") -> Path:
    """Expand ``${VAR}`` / ``${VAR:-default}`` and a leading ``~``; resolve a relative result against ``base``.

    ``where`` prefixes error messages (e.g. ``"tasks/x.yaml: data.train"``).
    """

    def substitute(m: re.Match) -> str:
        name, default = m.group(1), m.group(2)
        if name is None:
            raise RightsizeError(
                f"{where}: bad variable reference {m.group(0)!r} in {value!r} (unclosed or invalid name); "
                f"use ${{VAR}} or ${{VAR:-default}}"
            )
        current = os.environ.get(name)
        if default is not None:
            return current if current else default
        if current is None:
            raise RightsizeError(
                f"{where}: environment variable {name} is not set (in {value!r}); set it or write ${{{name}:-default}}"
            )
        return current

    expanded = os.path.expanduser(_VAR.sub(substitute, value))
    p = Path(expanded)
    if not p.is_absolute():
        p = base / p
    return Path(os.path.normpath(p))


def load_task(path: str | os.PathLike) -> TaskSpec:
    """Parse and validate a task file. Reads no data; data paths are expanded and resolved but not checked."""
    path = Path(path)
    doc = _read_yaml(path)
    if doc is None:
        raise RightsizeError(f"{path}: task file is empty; expected a mapping with at least 'data'")
    if not isinstance(doc, dict):
        raise RightsizeError(f"{path}: task file must be a YAML mapping of keys, got {type_name(doc)}")

    unknown = [k for k in doc if k not in ALLOWED_KEYS]
    if unknown:
        raise RightsizeError(
            f"{path}: unknown key {str(unknown[0])!r}"
            + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "")
            + f"; allowed keys: {', '.join(ALLOWED_KEYS)}"
        )

    def bad(field: str, problem: str) -> RightsizeError:
        return RightsizeError(f"{path}: field {field!r}: {problem}")

    def string(field: str, default: str, allow_empty: bool = False) -> str:
        value = doc.get(field, default)
        if not isinstance(value, str):
            raise bad(field, f"must be a string, got {type_name(value)} {short_repr(value)}")
        if not allow_empty and not value.strip():
            raise bad(field, "must not be empty")
        return value

    def fraction(field: str) -> float:
        value = doc.get(field, 0.15)
        if not _is_number(value):
            raise bad(field, f"must be a number in (0, 0.5], got {type_name(value)} {short_repr(value)}")
        if not 0 < value <= 0.5:
            raise bad(field, f"must be in (0, 0.5], got {value!r}")
        return float(value)

    name = string("name", path.stem)
    if not NAME_RE.match(name):
        origin = "field 'name'" if "name" in doc else "task name (from the file name; add a 'name' field)"
        raise RightsizeError(f"{path}: {origin} must be {NAME_RULE} (it names the run folder), got {short_repr(name)}")
    description = string("description", "", allow_empty=True)
    text_field = string("text_field", "text")
    label_field = string("label_field", "label")

    metric = doc.get("metric", "accuracy")
    if metric not in METRICS:
        raise bad("metric", f"must be one of {', '.join(METRICS)}, got {short_repr(metric)}")

    fmt = doc.get("format")
    if fmt is not None and fmt not in FORMATS:
        raise bad("format", f"must be one of {', '.join(FORMATS)}, got {short_repr(fmt)}")

    seed = doc.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        raise bad("seed", f"must be an integer in [0, 2**32), got {type_name(seed)} {short_repr(seed)}")

    validation_fraction = fraction("validation_fraction")
    test_fraction = fraction("test_fraction")

    target = _parse_target(doc.get("target", {"within": DEFAULT_WITHIN}), bad)
    data = _parse_data(doc.get("data"), path, bad)

    if "all" in data and validation_fraction + test_fraction >= 1:
        raise bad(
            "validation_fraction",
            f"{validation_fraction:g} plus test_fraction {test_fraction:g} leaves no train data from data.all",
        )
    if "all" not in data and "test_fraction" in doc:
        log.warning("%s: test_fraction is only used with data.all; ignored", path)
    if "validation" in data and "validation_fraction" in doc:
        log.warning("%s: validation_fraction is unused because data.validation is given; ignored", path)

    return TaskSpec(
        name=name,
        path=path,
        data=data,
        text_field=text_field,
        label_field=label_field,
        metric=metric,
        target=target,
        seed=seed,
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
        description=description,
        format=fmt,
    )


def _parse_target(value: Any, bad) -> Target:
    if not isinstance(value, dict):
        raise bad("target", f"must be a mapping {{min: X}} or {{within: X}}, got {type_name(value)} {short_repr(value)}")
    extra = [k for k in value if k not in ("min", "within")]
    if extra:
        raise bad("target", f"unknown key {str(extra[0])!r}; use exactly one of min, within")
    if ("min" in value) == ("within" in value):
        which = "both" if value else "neither"
        raise bad("target", f"has {which} of min and within; give exactly one")
    key = "min" if "min" in value else "within"
    number = value[key]
    if not _is_number(number):
        raise bad(f"target.{key}", f"must be a number in [0, 1], got {type_name(number)} {short_repr(number)}")
    if not 0 <= number <= 1:
        raise bad(f"target.{key}", f"must be in [0, 1], got {number!r}")
    return Target(**{key: float(number)})


def _parse_data(value: Any, path: Path, bad) -> dict[str, Path]:
    if value is None:
        raise bad("data", "is required: give {train: PATH, test: PATH} (validation optional) or {all: PATH}")
    if isinstance(value, str):
        raise bad("data", f"must be a mapping like {{train: PATH, test: PATH}} or {{all: PATH}}, got string {value!r}")
    if not isinstance(value, dict):
        raise bad("data", f"must be a mapping like {{train: PATH, test: PATH}} or {{all: PATH}}, got {type_name(value)}")
    unknown = [k for k in value if k not in DATA_KEYS]
    if unknown:
        raise bad("data", f"unknown split {str(unknown[0])!r}; allowed: {', '.join(DATA_KEYS)}")
    if "all" in value:
        others = [k for k in ("train", "validation", "test") if k in value]
        if others:
            raise bad("data", f"'all' cannot be combined with {', '.join(others)}; give either all or train/test")
    elif "train" not in value:
        raise bad("data", "needs 'train' (with optional validation and test) or 'all'")
    base = path.parent
    resolved: dict[str, Path] = {}
    for split in DATA_KEYS:
        if split not in value:
            continue
        raw = value[split]
        if not isinstance(raw, str) or not raw.strip():
            raise bad(f"data.{split}", f"must be a non-empty path string, got {type_name(raw)} {short_repr(raw)}")
        resolved[split] = expand_path(raw.strip(), base, where=f"{path}: field 'data.{split}'")
    return resolved


# ----------------------------------------------------------------------------------------- data files
