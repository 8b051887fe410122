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

``data`` takes either ``train`` (plus optional ``validation`` and ``test``) or ``all`` alone:

* ``train`` + ``validation`` (+ ``test``): every split comes from its file.
* ``train`` (+ ``test``) without ``validation``: a seeded, stratified ``validation_fraction`` of the train
  file is carved off as validation (``source == "carved from train"``); the rest stays train.
* ``all``: for datasets with no official split. A seeded, stratified ``test_fraction`` *of the whole file* is
  carved off as test, then ``validation_fraction`` *of the whole file* as validation; the rest is train
  (defaults: 70 / 15 / 15).

Carving moves examples whose texts are equal after :func:`normalized` (case folded, whitespace collapsed)
together, so a duplicate never sits on both sides of a carve; the fractions are of the distinct texts.
:func:`overlaps` counts the texts that splits given as files share; :func:`refuse_overlap` rejects two splits
that are identical or share more than MOSTLY of the smaller one.

``name`` (default: the file's stem) follows the rung-name rule (:data:`rightsize.naming.NAME_RE`): it names
the run folder ``results/<name>``, so it can never lead outside ``results/``.

**The test split is only for confirming a final choice.** Selection (which rung, which hyper-parameters,
whether a rung meets the target) must use the validation split; the test split is read once, at the end, to
report the chosen configuration's held-out score. ``test`` is ``None`` when the task gives no test data.

Data paths may use environment variables, ``${VAR}`` or ``${VAR:-default}`` (default used when VAR is unset
or empty; nesting is not supported), and a leading ``~``; the result, if relative, is resolved against the
folder of the task file (this includes a relative value taken from the environment).

Formats:

* ``jsonl`` (``.jsonl`` / ``.json``): one JSON object per line; blank lines are skipped.
* ``csv`` (``.csv``): a header row naming the columns; comma-separated, standard quoting.
* ``folder`` (a directory): as ``sklearn.datasets.load_files``: one sub-folder per label, one UTF-8 text file
  per example. Hidden entries (``.name``) and files directly in the top folder are ignored.

UTF-8 with or without a BOM and CRLF line endings are accepted. Labels are converted to ``str`` (integer labels
are allowed in the data). Anything wrong with the task file or the data raises :class:`RightsizeError` with
a one-line message naming the file (and line), the field and the value.

Every split is returned in a seeded shuffled order (file splits are shuffled too; several datasets are
sorted by label on disk), so a prefix of ``Split.texts`` / ``Split.labels`` (``--limit``) is a random sample.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import yaml

from rightsize.adequacy import DEFAULT_WITHIN, Target
from rightsize.errors import RightsizeError
from rightsize.naming import NAME_RE, NAME_RULE

log = logging.getLogger(__name__)

METRICS = ("accuracy", "macro_f1")
FORMATS = ("jsonl", "csv", "folder")
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
_SUFFIX_FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv"}
_MAX_NAMED = 5  # how many offending labels an error message lists


# --------------------------------------------------------------------------------------------- types


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


@dataclass(frozen=True)
class Split:
    """One split. ``source`` is ``"file"``, ``"carved from train"`` or ``"carved from all"``."""

    name: str
    texts: list[str]
    labels: list[str]
    source: str

    def __len__(self) -> int:
        return len(self.texts)


@dataclass(frozen=True)
class TaskData:
    """The loaded splits; ``labels`` is the sorted label set of train (validation/test labels are a subset)."""

    task: TaskSpec
    train: Split
    validation: Split
    test: Split | None
    labels: list[str]


# ----------------------------------------------------------------------------------------- task file


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


def _read_utf8(path: Path, cannot: str, hint: str = "") -> str:
    """A whole file's text (UTF-8, a BOM dropped), or a one-line error naming the file and the line
    of the first bad byte."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise RightsizeError(f"{path}: {cannot}: {e.strerror or e}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise RightsizeError(f"{path}:{line}: not valid UTF-8 (byte 0x{raw[e.start]:02x}){hint}") from None


def _read_yaml(path: Path) -> Any:
    if not path.exists():
        raise RightsizeError(f"{path}: task file not found")
    if path.is_dir():
        raise RightsizeError(f"{path}: task file is a directory, expected a YAML file")
    text = _read_utf8(path, "cannot read task file")
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        context = getattr(e, "context", None)
        what = f"{context}: {problem}" if context and problem and context not in problem else problem
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise RightsizeError(f"{where}: malformed YAML: {what}") from None


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _short(value: Any, limit: int = 60) -> str:
    """repr() of a value, cut to ``limit`` characters for a one-line message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
        raise RightsizeError(f"{path}: task file must be a YAML mapping of keys, got {_type_name(doc)}")

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
            raise bad(field, f"must be a string, got {_type_name(value)} {_short(value)}")
        if not allow_empty and not value.strip():
            raise bad(field, "must not be empty")
        return value

    def fraction(field: str) -> float:
        value = doc.get(field, 0.15)
        if not _is_number(value):
            raise bad(field, f"must be a number in (0, 0.5], got {_type_name(value)} {_short(value)}")
        if not 0 < value <= 0.5:
            raise bad(field, f"must be in (0, 0.5], got {value!r}")
        return float(value)

    name = string("name", path.stem)
    if not NAME_RE.match(name):
        origin = "field 'name'" if "name" in doc else "task name (from the file name; add a 'name' field)"
        raise RightsizeError(f"{path}: {origin} must be {NAME_RULE} (it names the run folder), got {_short(name)}")
    description = string("description", "", allow_empty=True)
    text_field = string("text_field", "text")
    label_field = string("label_field", "label")

    metric = doc.get("metric", "accuracy")
    if metric not in METRICS:
        raise bad("metric", f"must be one of {', '.join(METRICS)}, got {_short(metric)}")

    fmt = doc.get("format")
    if fmt is not None and fmt not in FORMATS:
        raise bad("format", f"must be one of {', '.join(FORMATS)}, got {_short(fmt)}")

    seed = doc.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        raise bad("seed", f"must be an integer in [0, 2**32), got {_type_name(seed)} {_short(seed)}")

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
        raise bad("target", f"must be a mapping {{min: X}} or {{within: X}}, got {_type_name(value)} {_short(value)}")
    extra = [k for k in value if k not in ("min", "within")]
    if extra:
        raise bad("target", f"unknown key {str(extra[0])!r}; use exactly one of min, within")
    if ("min" in value) == ("within" in value):
        which = "both" if value else "neither"
        raise bad("target", f"has {which} of min and within; give exactly one")
    key = "min" if "min" in value else "within"
    number = value[key]
    if not _is_number(number):
        raise bad(f"target.{key}", f"must be a number in [0, 1], got {_type_name(number)} {_short(number)}")
    if not 0 <= number <= 1:
        raise bad(f"target.{key}", f"must be in [0, 1], got {number!r}")
    return Target(**{key: float(number)})


def _parse_data(value: Any, path: Path, bad) -> dict[str, Path]:
    if value is None:
        raise bad("data", "is required: give {train: PATH, test: PATH} (validation optional) or {all: PATH}")
    if isinstance(value, str):
        raise bad("data", f"must be a mapping like {{train: PATH, test: PATH}} or {{all: PATH}}, got string {value!r}")
    if not isinstance(value, dict):
        raise bad("data", f"must be a mapping like {{train: PATH, test: PATH}} or {{all: PATH}}, got {_type_name(value)}")
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
            raise bad(f"data.{split}", f"must be a non-empty path string, got {_type_name(raw)} {_short(raw)}")
        resolved[split] = expand_path(raw.strip(), base, where=f"{path}: field 'data.{split}'")
    return resolved


# ----------------------------------------------------------------------------------------- data files


def data_format(p: Path) -> str | None:
    """The format a data path has by its kind and extension: folder, jsonl or csv (None: not a data path)."""
    return "folder" if p.is_dir() else _SUFFIX_FORMATS.get(p.suffix.lower())


def _fmt_for(task: TaskSpec, split: str, p: Path) -> str:
    where = f"{task.path}: data.{split}"
    if not p.exists():
        raise RightsizeError(f"{where}: not found: {p}")
    if task.format is not None:
        if task.format == "folder" and not p.is_dir():
            raise RightsizeError(f"{where}: format is folder but {p} is not a directory")
        if task.format != "folder" and p.is_dir():
            raise RightsizeError(f"{where}: format is {task.format} but {p} is a directory")
        return task.format
    fmt = data_format(p)
    if fmt is None:
        raise RightsizeError(
            f"{where}: cannot infer the format of {p} from its extension {p.suffix or '(none)'!r}; "
            f"add 'format: jsonl|csv|folder' to the task"
        )
    return fmt


def _decoded_lines(p: Path) -> Iterator[tuple[int, str]]:
    """Yield (line number, line with its newline) from a UTF-8 file, strictly decoded, BOM dropped, streamed."""
    try:
        f = p.open("rb")
    except OSError as e:
        raise RightsizeError(f"{p}: cannot read: {e.strerror or e}") from None
    with f:
        for number, raw in enumerate(f, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise RightsizeError(
                    f"{p}:{number}: not valid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1}); "
                    f"re-encode the file as UTF-8"
                ) from None


def _label(value: Any, where: str, field: str) -> str:
    if value is None:
        raise RightsizeError(f"{where}: label field {field!r} is null")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise RightsizeError(
            f"{where}: label field {field!r} must be a string or integer, got {_type_name(value)} {_short(value)}"
        )
    label = str(value)
    if not label.strip():
        raise RightsizeError(f"{where}: label field {field!r} is empty")
    return label


def _text(value: Any, where: str, field: str) -> str:
    if not isinstance(value, str):
        raise RightsizeError(f"{where}: text field {field!r} must be a string, got {_type_name(value)} {_short(value)}")
    if not value.strip():
        raise RightsizeError(f"{where}: text field {field!r} is empty or whitespace-only")
    return value


def _jsonl_records(p: Path) -> Iterator[tuple[str, dict]]:
    """Each object of a JSON Lines file with where it stands (``file:line``); blank lines are skipped."""
    for number, line in _decoded_lines(p):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        where = f"{p}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            hint = " (expected JSON Lines: one object per line, not a JSON array)" if line.lstrip()[:1] == "[" else ""
            raise RightsizeError(f"{where}: not valid JSON: {e.msg} at column {e.colno}{hint}") from None
        if not isinstance(record, dict):
            raise RightsizeError(f"{where}: expected a JSON object, got {_type_name(record)}")
        yield where, record


def _read_jsonl(p: Path, text_field: str, label_field: str | None) -> tuple[list[str], list[str]]:
    """Texts and labels of a JSONL file (no labels read when ``label_field`` is None)."""
    texts: list[str] = []
    labels: list[str] = []
    for where, record in _jsonl_records(p):
        for field in (text_field, label_field):
            if field is not None and field not in record:
                keys = ", ".join(map(str, list(record)[:8])) or "none"
                raise RightsizeError(f"{where}: missing field {field!r} (record has: {keys})")
        texts.append(_text(record[text_field], where, text_field))
        if label_field is not None:
            labels.append(_label(record[label_field], where, label_field))
    return texts, labels


def _csv_rows(p: Path) -> Iterator[tuple[int, list[str]]]:
    """Each non-blank row of a CSV file with the line it starts on; the first is the header."""
    lines = _decoded_lines(p)
    current = [0]

    def source() -> Iterator[str]:
        for number, line in lines:
            current[0] = number
            yield line

    reader = csv.reader(source())
    while True:
        start = current[0] + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise RightsizeError(f"{p}:{start}: malformed CSV: {e}") from None
        if row and any(cell.strip() for cell in row):
            yield start, row


def _csv_header(p: Path, rows: Iterator[tuple[int, list[str]]]) -> tuple[int, list[str]]:
    """The header row (its line and its column names) taken off ``rows``."""
    first = next(rows, None)
    if first is None:
        raise RightsizeError(f"{p}: CSV file is empty (no header row)")
    return first[0], [cell.strip() for cell in first[1]]


def _read_csv(p: Path, text_field: str, label_field: str | None) -> tuple[list[str], list[str]]:
    """Texts and labels of a CSV file with a header row (no labels read when ``label_field`` is None)."""
    texts: list[str] = []
    labels: list[str] = []
    rows = _csv_rows(p)
    line, header = _csv_header(p, rows)
    missing = [f for f in (text_field, label_field) if f is not None and f not in header]
    if missing:
        raise RightsizeError(
            f"{p}:{line}: CSV header has no column {missing[0]!r}"
            + (f" (nor {missing[1]!r})" if len(missing) > 1 else "")
            + f"; columns: {', '.join(header)}"
        )
    text_col = header.index(text_field)
    label_col = header.index(label_field) if label_field is not None else -1
    for start, row in rows:
        where = f"{p}:{start}"
        for field, col in ((text_field, text_col), (label_field, label_col)):
            if field is not None and col >= len(row):
                raise RightsizeError(f"{where}: missing field {field!r} (row has {len(row)} of {len(header)} columns)")
        texts.append(_text(row[text_col].replace("\r\n", "\n"), where, text_field))
        if label_field is not None:
            labels.append(_label(row[label_col], where, label_field))
    return texts, labels


def read_columns(p: Path) -> dict[str, list[Any]]:
    """Every column of a JSONL or CSV file and its values, in file order (to detect the text and label
    fields). A JSONL key missing from some record is left out; a short CSV row gives ``None``."""
    if data_format(p) == "csv":
        rows = _csv_rows(p)
        _, header = _csv_header(p, rows)
        table = [row for _, row in rows]
        return {name: [row[i] if i < len(row) else None for row in table] for i, name in enumerate(header)}
    records = [record for _, record in _jsonl_records(p)]
    keys = [k for k in (records[0] if records else {}) if all(k in r for r in records)]
    return {k: [r[k] for r in records] for k in keys}


def read_texts(path: str | os.PathLike, text_field: str = "text") -> list[str]:
    """Texts to label (``rightsize predict``): JSONL or CSV (by extension) with a ``text_field``,
    anything else one text per line; blank lines are skipped."""
    p = Path(path)
    fmt = _SUFFIX_FORMATS.get(p.suffix.lower())
    if p.is_dir():
        raise RightsizeError(f"{p}: is a folder; give a text, JSONL or CSV file")
    if fmt == "jsonl":
        texts, _ = _read_jsonl(p, text_field, None)
    elif fmt == "csv":
        texts, _ = _read_csv(p, text_field, None)
    else:
        texts = [line.rstrip("\r\n") for _, line in _decoded_lines(p) if line.strip()]
    if not texts:
        raise RightsizeError(f"{p}: no texts to label")
    return texts


def _read_folder(p: Path) -> tuple[list[str], list[str]]:
    texts: list[str] = []
    labels: list[str] = []
    try:
        classes = sorted(d for d in p.iterdir() if d.is_dir() and not d.name.startswith("."))
    except OSError as e:
        raise RightsizeError(f"{p}: cannot read folder: {e.strerror or e}") from None
    for class_dir in classes:
        files = sorted(f for f in class_dir.iterdir() if f.is_file() and not f.name.startswith("."))
        if not files:
            log.warning("%s: label folder has no files; ignored", class_dir)
        for f in files:
            text = _read_utf8(f, "cannot read", "; re-encode the file as UTF-8").replace("\r\n", "\n")
            if not text.strip():
                raise RightsizeError(f"{f}: text is empty or whitespace-only")
            texts.append(text)
            labels.append(class_dir.name)
    return texts, labels


def _read_split(task: TaskSpec, split: str) -> tuple[list[str], list[str]]:
    p = task.data[split]
    fmt = _fmt_for(task, split, p)
    if fmt == "jsonl":
        texts, labels = _read_jsonl(p, task.text_field, task.label_field)
    elif fmt == "csv":
        texts, labels = _read_csv(p, task.text_field, task.label_field)
    else:
        texts, labels = _read_folder(p)
    if not texts:
        what = "no label sub-folders with files" if fmt == "folder" else "no examples"
        raise RightsizeError(f"{p}: data.{split} of {task.path} has {what}")
    return texts, labels


# ------------------------------------------------------------------------------------------- carving


def normalized(text: str) -> str:
    """A text as carving and the leakage check compare texts: case folded, whitespace collapsed."""
    return " ".join(text.casefold().split())


def _carve(
    texts: list[str], labels: list[str], fraction: float, seed: int, what: str
) -> tuple[list[int], list[int]]:
    """Split indices 0..n-1 into (kept, carved) with ``fraction`` of the distinct texts carved, stratified by
    label when possible.

    Examples whose texts are equal after :func:`normalized` move together (a group stratified by its most
    common label), so a duplicate never lands on both sides. A label held by a single group cannot be
    stratified; its group always stays in ``kept`` (so the label never ends up only in the carved split). If
    stratification is still impossible (fewer groups to carve than labels), one group of each label is held
    in ``kept`` and the carve is drawn unstratified from the others, with a warning; so ``kept`` always has
    every label.
    """
    from sklearn.model_selection import train_test_split

    by_text: dict[str, list[int]] = {}
    for i, text in enumerate(texts):
        by_text.setdefault(normalized(text), []).append(i)
    members = list(by_text.values())
    group_labels = [Counter(labels[i] for i in m).most_common(1)[0][0] for m in members]
    holders = Counter(y for m in members for y in {labels[i] for i in m})
    pinned = [g for g, m in enumerate(members) if any(holders[labels[i]] < 2 for i in m)]
    rest = [g for g, m in enumerate(members) if all(holders[labels[i]] >= 2 for i in m)]
    rare = sorted(y for y, n in holders.items() if n < 2)
    if rare:
        log.warning(
            "%s: %d label(s) have a single example and stay in train unstratified: %s",
            what, len(rare), ", ".join(rare[:_MAX_NAMED]) + (" ..." if len(rare) > _MAX_NAMED else ""),
        )
    n_carve = max(1, round(fraction * len(members)))
    distinct = f", {len(members)} distinct texts" if len(members) < len(texts) else ""
    if len(rest) <= n_carve:
        raise RightsizeError(f"{what}: too few examples ({len(labels)}{distinct}) to carve {fraction:g} of them off")
    rest_labels = [group_labels[g] for g in rest]
    try:
        kept, carved = train_test_split(rest, test_size=n_carve, stratify=rest_labels, random_state=seed)
    except ValueError as e:
        log.warning("%s: cannot stratify (%s); carving unstratified", what, e)
        anchors: dict[str, int] = {}
        for g in random.Random(seed).sample(rest, len(rest)):
            anchors.setdefault(group_labels[g], g)
        pool = sorted(set(rest) - set(anchors.values()))
        if len(pool) <= n_carve:
            raise RightsizeError(
                f"{what}: too few examples ({len(labels)}{distinct}, {len(holders)} labels) to carve {fraction:g} of "
                "them off"
            ) from None
        kept, carved = train_test_split(pool, test_size=n_carve, random_state=seed)
        kept = list(kept) + list(anchors.values())
    kept = list(kept) + pinned
    return [i for g in kept for i in members[int(g)]], [i for g in carved for i in members[int(g)]]


def _shuffled(name: str, texts: list[str], labels: list[str], source: str, seed: int) -> Split:
    order = list(range(len(texts)))
    random.Random(f"{seed}:{name}").shuffle(order)
    return Split(name, [texts[i] for i in order], [labels[i] for i in order], source)


def _take(name: str, texts: list[str], labels: list[str], idx: list[int], source: str, seed: int) -> Split:
    return _shuffled(name, [texts[i] for i in idx], [labels[i] for i in idx], source, seed)


def _label_list(labels: set[str]) -> str:
    names = sorted(labels)
    more = f" and {len(names) - _MAX_NAMED} more" if len(names) > _MAX_NAMED else ""
    return ", ".join(repr(n) for n in names[:_MAX_NAMED]) + more


def load_data(task: TaskSpec) -> TaskData:
    """Read the task's files, carve missing splits (seeded, stratified) and check the result.

    Returns train, validation and (if the task has one) test. The test split exists to confirm a final
    choice once; never select or tune on it. Raises :class:`RightsizeError` for any data problem.
    """
    seed = task.seed
    test: Split | None = None
    if "all" in task.data:
        texts, labels = _read_split(task, "all")
        where = f"{task.data['all']} (data.all of {task.path})"
        rest, test_idx = _carve(texts, labels, task.test_fraction, seed, where)
        # validation_fraction is a fraction of the whole file, so rescale it to the remainder
        val_share = task.validation_fraction / (1 - task.test_fraction)
        train_pos, val_pos = _carve([texts[i] for i in rest], [labels[i] for i in rest], val_share, seed, where)
        train = _take("train", texts, labels, [rest[i] for i in train_pos], "carved from all", seed)
        validation = _take("validation", texts, labels, [rest[i] for i in val_pos], "carved from all", seed)
        test = _take("test", texts, labels, test_idx, "carved from all", seed)
    else:
        texts, labels = _read_split(task, "train")
        if "validation" in task.data:
            train = _shuffled("train", texts, labels, "file", seed)
            validation = _shuffled("validation", *_read_split(task, "validation"), "file", seed)
        else:
            where = f"{task.data['train']} (data.train of {task.path})"
            train_idx, val_idx = _carve(texts, labels, task.validation_fraction, seed, where)
            train = _take("train", texts, labels, train_idx, "carved from train", seed)
            validation = _take("validation", texts, labels, val_idx, "carved from train", seed)
        if "test" in task.data:
            test = _shuffled("test", *_read_split(task, "test"), "file", seed)
        del texts, labels

    train_labels = set(train.labels)
    if len(train_labels) < 2:
        raise RightsizeError(
            f"{task.data.get('train', task.data.get('all'))}: train split of {task.path} has a single label "
            f"{next(iter(train_labels))!r}; a classifier needs at least two"
        )
    for split in (validation, test):
        if split is None:
            continue
        unseen = set(split.labels) - train_labels
        if unseen:
            if split.source == "file":
                origin = f"{task.data[split.name]}: data.{split.name} of {task.path}"
            else:
                origin = f"{task.path}: {split.name} ({split.source})"
            raise RightsizeError(
                f"{origin} has {len(unseen)} label(s) never seen in train: {_label_list(unseen)}"
            )
    return TaskData(task=task, train=train, validation=validation, test=test, labels=sorted(train_labels))


# ------------------------------------------------------------------------------------------- leakage

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
