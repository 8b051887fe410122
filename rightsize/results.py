"""The evidence store: an append-only ``runs.jsonl`` (one JSON object per evaluation, a
:class:`rightsize.records.Record`), and the other files of a run folder.

Each record is written with a single ``write`` under an exclusive lock, flushed and fsynced, so a
crash or Ctrl-C can at worst leave one torn, unfinished line at the end; that fragment is moved
aside on the next open and every finished record stays intact. Several processes (search workers)
may append to the same file.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from rightsize.errors import RightsizeError
from rightsize.records import Record

log = logging.getLogger(__name__)

RUNS_FILE = "runs.jsonl"
ENVIRONMENT_FILE = "environment.jsonl"
LOCKS_DIR = "locks"  # one lock file per evaluation key being evaluated (RunLog.evaluating)
_KEY = re.compile(r"[0-9a-f]{8,64}")
PLAN_FILE = "plan.jsonl"  # what each run set out to evaluate, and how a search ended (rightsize.coverage)
STUDY_FILE = "study.db"  # the search's Optuna study, unless --storage names another database


class RunLog:
    """A run folder: ``runs.jsonl`` of records, ``environment.jsonl`` of run environments and
    ``plan.jsonl`` of what each run set out to evaluate."""

    def __init__(self, out_dir: str | Path, create: bool = True):
        self.dir = Path(out_dir)
        self.path = self.dir / RUNS_FILE
        if create:
            try:
                self.dir.mkdir(parents=True, exist_ok=True)
                with open(self.path, "a", encoding="utf-8"):
                    pass
            except OSError as exc:
                raise RightsizeError(f"output folder {self.dir} is not writable ({exc.strerror or exc})") from None
            self._repair_tail()
        elif not self.path.exists():
            raise RightsizeError(f"{self.dir} holds no {RUNS_FILE}: not a rightsize run folder")

    def _repair_tail(self) -> None:
        """Move a torn last line (a write cut short by a kill) aside into runs.jsonl.torn."""
        with open(self.path, "rb+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                if size == 0:
                    return
                f.seek(size - 1)
                if f.read(1) == b"\n":
                    return
                f.seek(0)
                data = f.read()
                cut = data.rfind(b"\n") + 1
                with open(self.path.with_suffix(".jsonl.torn"), "ab") as torn:
                    torn.write(data[cut:] + b"\n")
                f.truncate(cut)
                log.warning("%s ended in a torn line (an interrupted write); moved it to %s.torn", self.path, self.path.name)
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def append(self, record: Record) -> None:
        """Append one record. A write that fails part way (a full disk) is cut back off, so the file
        ends with the last whole record, and the failure is one line (RightsizeError)."""
        line = (json.dumps(record.to_dict(), ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            try:
                view = memoryview(line)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            except OSError as exc:
                os.ftruncate(fd, size)
                raise RightsizeError(f"{self.path}: could not record {record.rung or 'a record'!r} "
                                     f"({exc.strerror or exc}); the file is as it was before") from None
        finally:
            os.close(fd)

    @contextmanager
    def evaluating(self, key: str) -> Iterator[None]:
        """Hold the run folder's lock of evaluation ``key`` (locks/<key>.lock): a second process that
        wants the same key waits here, then finds the first one's record and reuses it."""
        if not _KEY.fullmatch(key):
            raise ValueError(f"not an evaluation key: {key!r}")
        folder = self.dir / LOCKS_DIR
        folder.mkdir(exist_ok=True)
        fd = os.open(folder / f"{key}.lock", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def records(self) -> list[Record]:
        return read_records(self.path)

    def completed(self) -> dict[str, Record]:
        """The latest successful record for each evaluation key (what a rerun can skip)."""
        return {r.key: r for r in self.records() if r.ok and r.key is not None}

    def write_environment(self, env: dict[str, Any]) -> None:
        _append_line(self.dir / ENVIRONMENT_FILE, env)

    def write_plan(self, entry: dict[str, Any]) -> None:
        _append_line(self.dir / PLAN_FILE, entry)

    def plans(self) -> list[dict[str, Any]]:
        return [obj for _, obj in _json_lines(self.dir / PLAN_FILE)]

    def environments(self) -> list[dict[str, Any]]:
        return [obj for _, obj in _json_lines(self.dir / ENVIRONMENT_FILE)]


def _append_line(path: Path, obj: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_records(path: Path) -> list[Record]:
    """The records of a runs.jsonl file (none while it does not exist)."""
    return [Record.from_dict(obj, f"{path}:{number}") for number, obj in _json_lines(path)]


def _json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of each JSON object of a JSONL file; an unparseable line (a torn write)
    is skipped with a warning."""
    if not path.exists():
        return
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                log.warning("%s:%d is not a complete JSON record; skipped", path, number)
                continue
            if isinstance(obj, dict):
                yield number, obj
