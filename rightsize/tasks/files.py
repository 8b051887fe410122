"""Data files read strictly: JSONL, CSV and folder-per-class, UTF-8, every problem one line naming the
file and the line.

* ``jsonl`` (``.jsonl`` / ``.json``): one JSON object per line; blank lines are skipped.
* ``csv`` (``.csv``): a header row naming the columns; comma-separated, standard quoting.
* ``folder`` (a directory): as ``sklearn.datasets.load_files``: one sub-folder per label, one UTF-8 text file
  per example. Hidden entries (``.name``) and files directly in the top folder are ignored.

UTF-8 with or without a BOM and CRLF line endings are accepted. Labels are converted to ``str`` (integer labels
are allowed in the data).
"""

from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from rightsize.errors import RightsizeError

if TYPE_CHECKING:
    from rightsize.tasks.spec import TaskSpec

log = logging.getLogger(__name__)

FORMATS = ("jsonl", "csv", "folder")
_SUFFIX_FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv"}


def read_utf8(path: Path, cannot: str, hint: str = "") -> str:
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


def type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def short_repr(value: Any, limit: int = 60) -> str:
    """repr() of a value, cut to ``limit`` characters for a one-line message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."



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
            f"{where}: label field {field!r} must be a string or integer, got {type_name(value)} {short_repr(value)}"
        )
    label = str(value)
    if not label.strip():
        raise RightsizeError(f"{where}: label field {field!r} is empty")
    return label


def _text(value: Any, where: str, field: str) -> str:
    if not isinstance(value, str):
        raise RightsizeError(f"{where}: text field {field!r} must be a string, got {type_name(value)} {short_repr(value)}")
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
            raise RightsizeError(f"{where}: expected a JSON object, got {type_name(record)}")
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
            text = read_utf8(f, "cannot read", "; re-encode the file as UTF-8").replace("\r\n", "\n")
            if not text.strip():
                raise RightsizeError(f"{f}: text is empty or whitespace-only")
            texts.append(text)
            labels.append(class_dir.name)
    return texts, labels


def read_split(task: TaskSpec, split: str) -> tuple[list[str], list[str]]:
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
