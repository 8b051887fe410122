"""A run's set-up, one for evaluate, search and confirm.

Checks come first and write nothing; then the run folder, its id and its meters, each meter's
environment recorded with the run's next record; leaving the run closes every meter (NVML handles,
RAPL files, threads).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

from rightsize import environment
from rightsize.assumed import TASK_FILE, AssumedTask
from rightsize.artifacts import ArtifactStore
from rightsize.cache import EmbeddingCache
from rightsize.energy import Meter, make_meter
from rightsize.errors import RightsizeError
from rightsize.evaluate import new_run_id
from rightsize.ladder import Ladder, load_ladder
from rightsize.models import checked_folder
from rightsize.records import Record
from rightsize.results import RunLog
from rightsize.rungs import RunContext, RungSpec, rung_class
from rightsize.naming import NAME_RE
from rightsize.tasks import Overlaps, TaskData, TaskSpec, load_data, load_task, overlaps, refuse_overlap

log = logging.getLogger(__name__)


@dataclass
class RunOptions:
    """What every command that evaluates a ladder on a task takes (evaluate's and search's requests).

    ``task`` is a task file, or the task assumed for a bare data file: kept at ``save_task``, else as
    task.yaml in the run folder, once the checks pass (then ``on_assumed`` is told where)."""

    task: Path | AssumedTask
    ladder: Path | None = None
    limit: int | None = None
    train_limit: int | None = None
    out_dir: Path | None = None
    meter: str = "auto"
    cpu_watts: float | None = None
    device: str = "auto"
    progress: bool = False
    trust_remote_code: bool = False
    allow_pickle: bool = False
    cache_dir: Path | None = None  # the embedding cache (default: RIGHTSIZE_CACHE_DIR or ~/.cache/rightsize/embeddings)
    no_cache: bool = False
    task_name: str | None = None
    allow_overlap: bool = False  # run even when a split is identical to another or mostly overlaps it
    save_task: Path | None = None
    on_assumed: Callable[[AssumedTask, Path], None] | None = None

    def resolved_out_dir(self) -> Path:
        """--out, else ``results/<task name>``: a task name is one safe word, so this stays under results/."""
        if self.out_dir is not None:
            return self.out_dir
        name = self.task_name or (self.task.name if isinstance(self.task, AssumedTask) else Path(self.task).stem)
        if not NAME_RE.match(name):
            raise RightsizeError(f"task name {name!r} cannot name a run folder; pass --out DIR")
        return Path("results") / name


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RightsizeError("--device cuda: no CUDA device is available (torch.cuda.is_available() is False)")
    return device


def check_models(spec: RungSpec, allow_pickle: bool = False) -> None:
    """Every model the rung will load is reachable and in a safe format, and the rung's own checks
    pass (e.g. LoRA has target modules for the architecture); RightsizeError if not."""
    cls = rung_class(spec.kind)
    for model in cls.models(spec):
        checked_folder(model, allow_pickle)
    cls.preflight(spec)


def preflight_models(ladder: Ladder, allow_pickle: bool = False) -> Ladder:
    """Every model of the ladder must be reachable before any evaluation starts.

    Returns the ladder to run: a rung marked ``optional`` whose model cannot be had is left out
    with a logged message; any other missing model stops the run (RightsizeError).
    """
    kept = []
    for spec in ladder.rungs:
        try:
            check_models(spec, allow_pickle)
        except RightsizeError as exc:
            if not spec.optional:
                raise
            log.warning("rung %s skipped (optional): %s", spec.name, exc)
            continue
        kept.append(spec.name)
    if not kept:
        raise RightsizeError(f"{ladder.path}: no rung left to run (every optional model is missing)")
    return ladder.select(kept) if len(kept) < len(ladder.rungs) else ladder


class _RunLog(RunLog):
    """A run's log: its meters' environments go in just before its next record, so that a run rejected
    before it recorded anything (a bad --storage, a study made with other settings) leaves no trace."""

    def __init__(self, out_dir: Path, create: bool):
        super().__init__(out_dir, create=create)
        self._environments: list[dict] = []

    def add_environment(self, env: dict) -> None:
        self._environments.append(env)

    def append(self, record: Record) -> None:
        for env in self._environments:
            self.write_environment(env)
        self._environments.clear()
        super().append(record)


class Session:
    """One run: its id, its folder and its meters; leaving the ``with`` block closes every meter."""

    def __init__(self, out_dir: str | Path, *, create: bool = True):
        self.out_dir = Path(out_dir)
        self.run_id = new_run_id()
        self._create = create
        self._log: _RunLog | None = None
        self._meters: dict[tuple, Meter] = {}

    @property
    def run_log(self) -> _RunLog:
        """Opened on first use: a meter that cannot be made leaves no run folder behind."""
        if self._log is None:
            self._log = _RunLog(self.out_dir, create=self._create)
        return self._log

    def meter(self, kind: str = "auto", device: str = "cpu", cpu_watts: float | None = None) -> Meter:
        """The run's meter of these settings, made (and its environment taken) on first use."""
        key = (kind, device, cpu_watts)
        if key not in self._meters:
            meter = self._meters[key] = make_meter(kind, device=device, cpu_watts=cpu_watts)
            self.run_log.add_environment(environment.collect(self.run_id, device, meter.describe()))
        return self._meters[key]

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        for meter in self._meters.values():
            meter.close()


def assumed_spec(assumed: AssumedTask, options: RunOptions) -> TaskSpec:
    """The assumed task as it will read from where it is kept (--save-task, else the run folder);
    a RightsizeError when a file there holds another task."""
    if options.save_task is not None:
        return assumed.spec_at(options.save_task, "--save-task file", "remove it or save to another file")
    return assumed.spec_at(options.resolved_out_dir() / TASK_FILE)


def checked_overlaps(data: TaskData, allow: bool) -> Overlaps:
    """The texts the task's splits share: a RightsizeError when two splits are identical or mostly
    overlap (unless ``allow``), a logged warning when any text is shared."""
    from rightsize.terminal import overlap_warning

    found = overlaps(data)
    if not allow:
        refuse_overlap(data, found)
    if found.pairs:
        log.warning("%s", overlap_warning(found))
    return found


@dataclass
class TaskRun:
    """A ladder on a task, set up: what evaluate and search evaluate with."""

    task: TaskSpec
    data: TaskData
    ladder: Ladder
    context: RunContext
    meter: Meter
    run_log: RunLog
    run_id: str
    planned: tuple[RungSpec, ...] = ()  # the ladder as written (before --rungs), less absent optional rungs
    overlaps: Overlaps = Overlaps(())  # texts its splits share
    artifacts: ArtifactStore | None = None  # the run folder's fitted states (rightsize.artifacts)


@contextlib.contextmanager
def open_run(options: RunOptions, *, seed: int = 0, rungs: list[str] | None = None, split: str = "validation",
             specs: Sequence[RungSpec] | None = None) -> Iterator[TaskRun]:
    """Check task, ladder, device, models, data and cache, then open the run (meter, folder, environment).

    Everything that can reject the request comes before the run folder is touched; the task assumed
    for a bare data file is written there just before the run opens.
    """
    assumed = options.task if isinstance(options.task, AssumedTask) else None
    if assumed is not None:
        options.task_name = assumed.name
        task = assumed_spec(assumed, options)
    else:
        task = load_task(options.task)
        options.task_name = task.name
    written = load_ladder(options.ladder) if specs is None else Ladder("the given rungs", "", tuple(specs), {})
    ladder = written.select(rungs)
    device = resolve_device(options.device)
    ladder = preflight_models(ladder, options.allow_pickle)
    # A `within` answer is certain only once every rung that could set the bar was evaluated, so the
    # plan is the ladder as written, not the --rungs selected; optional rungs are the ladder's "may skip".
    planned = tuple(s for s in written.rungs if not s.optional) + tuple(s for s in ladder.rungs if s.optional)
    data = load_data(task)
    if getattr(data, split) is None:
        raise RightsizeError(f"task {task.path}: has no {split} split")
    shared = checked_overlaps(data, options.allow_overlap)
    for spec in ladder.rungs:
        rung_class(spec.kind).check_task(spec, data, options.allow_overlap)
    cache = None if options.no_cache else EmbeddingCache(options.cache_dir)
    if cache is not None:
        cache.check_writable()
    context = RunContext(device=device, seed=seed, progress=options.progress,
                         trust_remote_code=options.trust_remote_code, allow_pickle=options.allow_pickle, cache=cache)
    if assumed is not None:
        assumed.keep(task.path)
        if options.on_assumed is not None:
            options.on_assumed(assumed, task.path)
    with Session(options.resolved_out_dir()) as session:
        meter = session.meter(options.meter, device, options.cpu_watts)
        yield TaskRun(task, data, ladder, context, meter, session.run_log, session.run_id, planned, shared,
                      ArtifactStore(session.out_dir))
