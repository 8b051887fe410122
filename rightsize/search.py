"""`rightsize search`: an Optuna study for the smallest adequate configuration of a ladder's space.

How it works, and why:

* **Objective.** Minimize joules per query (the record's ``joules_per_query``, the config's cost)
  subject to adequacy, given to the sampler as a constraint (``trial.set_constraint``, value <= 0
  feasible; it replaces ``constraints_func``, deprecated in Optuna 5.0). The constraint is the
  policy's own test (:func:`rightsize.recommend.assess`) over the study's records so far. For a
  ``within`` target adequacy is relative to the best config found *so far*, so a stored constraint
  goes stale when a better config turns up: :class:`FreshAdequacyTPESampler` recomputes every
  trial's adequacy before it samples, and the answer is made at the end by
  :func:`rightsize.recommend.recommend` over every record of the study, never by Optuna's
  ``best_trial``. ``objective="pareto"`` runs NSGA-II
  on (metric up, J/query down) instead, without pruning: a cheap inadequate config can still be on
  the Pareto front.
* **Cheap trials.** The ladder's rungs go first, in ladder order, at their own knob values
  (small rungs first), so the cheap configs and a first "best" are known early. With an absolute
  (``min``) target in a space small enough to enumerate, the configs run cheapest first instead
  (see "Cost bound" below). A trial is fit once
  and predicts nested, growing seeded parts of the validation split (``steps``, 25/50/100%); after
  each part it reports the metric's 95% bootstrap CI *upper* bound and :class:`AdequacyPruner` stops
  it when that bound is below the bar (``target.min``, or the best complete score so far minus
  ``within``) once at least ``min_prune_examples`` examples were seen. The embedding cache, when the
  rungs use it, makes repeated encodes of the same texts cheap; a record's ``joules_spent`` (what a
  run really spent) is what the search is charged.
* **Cost bound, and descent from the answer so far.** The cheapest adequate config found so far
  (the incumbent) is what every other config must undercut. Before a config is evaluated,
  :class:`rightsize.cost_model.CostModel` bounds its J/query from below (compute weights times the
  least rate measured for its run settings); when the bound is above the incumbent's J/query the
  config cannot be the answer and is *skipped* without spending an encode. For a ``within``
  target the bar is the best config, so the ladder's own rungs are always evaluated (they set it)
  and a config whose encoder was already run costs nothing to check; other costlier configs are
  skipped. The ladder's rungs are queued one at a time, small to large, and ahead of each the
  one-knob neighbours of the incumbent (or, while nothing is adequate, of the best config so far)
  that are bounded cheaper than that rung: fewer layers, int8, another head setting, where a cheaper
  adequate config is likeliest, so one may turn up before a large rung has to run. After the
  ladder, each new incumbent's neighbours are queued first; then, in a space small enough to
  enumerate, the config with the least cost bound among those that could still be the answer,
  until none is left (a stop reason: the answer is then certain within the space). With a
  ``min`` target that order applies from the first trial: adequacy does not depend on other
  configs, and every config cheaper than the answer has to be evaluated before the answer is
  certain, so cheapest first (by the cost model's estimate: compute weights times the rate
  measured) spends nothing on a costlier config before the answer is found; the ladder's
  order only matters for a ``within`` target, whose bar the large rungs set. TPE proposes while
  nothing is adequate (``within``), and in spaces too large to enumerate.
* **No config twice.** A trial's config key is the evaluation key of ``runs.jsonl``. A trial first
  writes its key into the study (a user attribute), then reads every other trial: if one with the
  same key is complete, pruned, failed or running, it steps back as a ``duplicate`` (told to the
  sampler as pruned and infeasible, so TPE does not propose it again and again); a key already in
  ``runs.jsonl`` is reused, not re-evaluated. Since every trial writes before it reads, of two trials with the same key the later
  writer always sees the earlier one: two workers can never both evaluate a config. When both
  write before either reads, both step back; a stepped-back trial claims nothing, and each worker
  queues the config once more.
* **Storage, workers, resume.** The study lives in a SQLite file of the run folder by default, or in
  any database Optuna's ``RDBStorage`` takes (``postgresql://...``); processes with the same study
  name share it. Heartbeats mark a dead worker's running trial failed after ``GRACE_S`` seconds and
  re-queue its config; a worker of *this* machine that is gone (its process no longer exists) is
  recognised at once on start; a trial stopped by Ctrl-C is queued again. Records are appended to
  ``runs.jsonl`` before the trial is told, so a kill loses at most the trial that was running. A
  SQLite study runs in WAL mode (readers do not wait for the writer); on a network file system,
  use PostgreSQL.
* **Energy of the search.** One meter window spans the whole search (evaluations plus sampling,
  storage and bookkeeping); each trial stores its share, so the study knows what all its workers
  spent. ``budget_joules`` stops starting new trials once the study's energy plus the mean cost of
  a trial so far would pass it.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import math
import os
import signal
import socket
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import optuna
from optuna.study._constrained_optimization import _CONSTRAINTS_KEY
from optuna.trial import TrialState

from rightsize import metrics as M
from rightsize.cost_model import CostModel, settings_of
from rightsize.coverage import plan_entry, search_end_entry
from rightsize.errors import RightsizeError
from rightsize.evaluate import EvalPlan, Step, StopEvaluation, evaluate_rung, evaluation_key, task_identity
from rightsize.naming import knob_text, variant_labels
from rightsize.session import RunOptions, TaskRun, open_run
from rightsize.space import SearchSpace, build_space

log = logging.getLogger(__name__)

STEPS = (0.25, 0.5, 1.0)
MIN_PRUNE_EXAMPLES = 30
ENUMERATE_MAX = 5_000  # spaces up to this size are walked cheapest first instead of by TPE (_queue_cheapest)
HEARTBEAT_S = 10
GRACE_S = 60
STUDY_FILE = "study.db"
RECORD_ATTR = "rightsize:record"  # the trial's full record (system attribute: kept out of dashboards)
OBJECTIVES = ("smallest", "pareto")
# Outcomes of a trial (user attribute "outcome"); the first four spent an evaluation on a config.
EVALUATED = ("complete", "pruned", "failed", "reused")
DUPLICATE = "duplicate"
SKIPPED = "skipped"  # ruled out by cost without an evaluation (may be reconsidered later)
SKIP_CONSTRAINT = 1e-6  # what a skipped trial tells TPE: infeasible, barely (it is costlier, not inadequate)
DUPLICATE_PENALTY = 1.0  # the constraint a duplicate trial is told (an accuracy gap: the largest there is)


@dataclass
class SearchRequest(RunOptions):
    trials: int = 30
    timeout: float | None = None
    budget_joules: float | None = None
    storage: str | None = None
    study: str | None = None
    seed: int = 0  # the sampler's
    objective: str = "smallest"
    steps: tuple[float, ...] = STEPS
    min_prune_examples: int = MIN_PRUNE_EXAMPLES


@dataclass
class TrialOutcome:
    """One trial as this worker saw it (what the CLI prints per line)."""

    number: int
    rung: str
    searched: dict[str, Any]
    outcome: str  # complete | pruned | failed | reused | duplicate | skipped
    metric: str
    score: float | None = None
    joules_per_query: float | None = None
    adequate: bool | None = None
    detail: str = ""
    joules: float = 0.0  # what this trial's evaluation spent (0 for duplicates and reused records)
    key: str = ""


@dataclass
class SearchResult:
    study: str
    storage: str
    objective: str
    out_dir: str
    space_size: int
    stopped: str
    trials: list[TrialOutcome]  # this worker's
    study_counts: dict[str, int]  # every worker's trials, by outcome
    energy: dict[str, Any]
    records: list[dict] = field(default_factory=list)
    recommendation: Any = None  # rightsize.recommend.Recommendation, or None
    no_recommendation: str | None = None
    pareto: list[dict] = field(default_factory=list)
    tried: list[dict] = field(default_factory=list)  # no recommendation: every config tried, and why it stopped

    @property
    def exit_code(self) -> int:
        """0: an adequate answer, certain; 1: no answer or nothing adequate; 3: an answer, not certain."""
        rec = self.recommendation
        if rec is None or not rec.adequate:
            return 1
        return 0 if rec.certain else 3

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in ("records", "recommendation")}
        out["recommendation"] = self.recommendation.to_dict() if self.recommendation is not None else None
        out["exit_code"] = self.exit_code
        return out


# ------------------------------------------------------------------------------------ pruning


class AdequacyPruner(optuna.pruners.BasePruner):
    """Prunes a trial whose reported value (the metric's 95% CI upper bound on the examples seen so
    far, reported at step = their number) is below the bar: ``target.min``, or (``within``) the best
    complete score of the study minus ``within``. Never before ``min_examples`` examples."""

    def __init__(self, rule: str, value: float, min_examples: int = MIN_PRUNE_EXAMPLES) -> None:
        self.rule, self.value, self.min_examples = rule, value, min_examples

    def threshold(self, study: optuna.Study) -> float | None:
        if self.rule == "min":
            return self.value
        scores = [t.user_attrs["score"] for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                  if isinstance(t.user_attrs.get("score"), (int, float))]
        return max(scores) - self.value if scores else None

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step < self.min_examples:
            return False  # a bootstrap interval over a handful of examples is too optimistic to act on
        bar = self.threshold(study)
        return bar is not None and trial.intermediate_values[step] < bar


# ------------------------------------------------------------------------------------ sampler


class FreshAdequacyTPESampler(optuna.samplers.TPESampler):
    """TPE that sees each trial's adequacy as it stands *now*, not as it stood when the trial ended.

    With a ``within`` target a config is adequate relative to the best config found so far, so the
    constraint a trial stored goes stale as soon as a better config turns up: the TF-IDF trial that
    was "adequate" as the first (and best) trial would stay feasible, and TPE would keep sampling
    around it. Before each sampling this sampler recomputes adequacy over the study's records
    (:func:`rightsize.recommend.assess`) and hands TPE copies of the trials with current constraints.
    """

    def __init__(self, target: dict, metric: str, **kwargs):
        super().__init__(**kwargs)
        self._target, self._metric = target, metric
        self._memo: tuple[tuple, dict[str, float]] | None = None

    def sample_relative(self, study, trial, search_space):
        return super().sample_relative(_FreshStudy(study, self._refresh), trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return super().sample_independent(_FreshStudy(study, self._refresh), trial, param_name, param_distribution)

    def _refresh(self, trials: list) -> list:
        gaps = self._gaps(trials)
        out = []
        for t in trials:
            gap = gaps.get(t.user_attrs.get("config_key")) if t.state == TrialState.COMPLETE else None
            if gap is not None and t.constraints.get("adequacy") != gap:
                t = copy.copy(t)
                t._system_attrs = {**t.system_attrs, f"{_CONSTRAINTS_KEY}:adequacy": gap}
            out.append(t)
        return out

    def _gaps(self, trials: list) -> dict[str, float]:
        """Config key -> constraint (<= 0 adequate) over the records of the complete trials."""
        from rightsize.recommend import assess, comparable

        done = tuple(sorted(t.number for t in trials if t.state == TrialState.COMPLETE))
        if self._memo is not None and self._memo[0] == done:
            return self._memo[1]
        records = {}
        for t in trials:
            record = t.system_attrs.get(RECORD_ATTR)
            if t.state == TrialState.COMPLETE and isinstance(record, dict) and record.get("status") == "ok":
                records.setdefault(record["key"], record)
        group = comparable(list(records.values()))
        verdicts = assess(group, self._target, self._metric) if group else {}
        gaps = {key: _constraint(v) for key, v in verdicts.items()}
        self._memo = (done, gaps)
        return gaps


class _FreshStudy:
    """A study as the sampler sees it: the same study, with trials passed through ``refresh``."""

    def __init__(self, study: optuna.Study, refresh: Callable[[list], list]):
        self._study, self._refresh_trials = study, refresh

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(self, *args, **kwargs) -> list:
        return self._refresh_trials(self._study._get_trials(*args, **kwargs))

    def get_trials(self, *args, **kwargs) -> list:
        return self._refresh_trials(self._study.get_trials(*args, **kwargs))


def _gamma(n: int) -> int:
    """How many of ``n`` finished trials TPE models as "good": a quarter, at most 25."""
    return min(math.ceil(0.25 * n), 25)


def _constraint(verdict) -> float:
    """The adequacy constraint of a verdict: <= 0 when adequate, > 0 (by how much) when not."""
    gap = verdict.threshold - verdict.bound
    return min(gap, 0.0) if verdict.adequate else max(gap, 1e-9)


# ------------------------------------------------------------------------------------ storage


def masked(url: str) -> str:
    """The storage URL without its password, for messages."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 — a URL SQLAlchemy cannot parse is shown as given, minus a password
        import re

        return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """Optuna's RDBStorage with heartbeats; a dead worker's running trial is failed and re-queued."""
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError, SQLAlchemyError

    engine_url = _with_driver(url)
    engine_kwargs: dict[str, Any] = {}
    sqlite = engine_url.startswith("sqlite")
    if sqlite:
        engine_kwargs = {"connect_args": {"timeout": 120}}  # workers take turns on the file lock
        _sqlite_wal(url)
    for attempt in range(5):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # heartbeat and the retry callback are "experimental"
            try:
                storage = optuna.storages.RDBStorage(
                    engine_url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                    heartbeat_stale_trial_callback=_Requeue(max_retry=3))
                if sqlite:
                    _sqlite_transactions(storage)
                return storage
            except (IntegrityError, ProgrammingError, OperationalError) as exc:
                # Workers starting together on a new database race to create Optuna's tables; the
                # loser sees "already exists" (or a locked SQLite file) and finds them on the next try.
                racing = not isinstance(exc, OperationalError) or any(
                    w in str(exc) for w in ("already exists", "database is locked"))
                if attempt == 4 or not racing:
                    raise RightsizeError(_storage_problem(url, exc)) from None
                time.sleep(0.5 + attempt)
            except (SQLAlchemyError, ValueError, ImportError) as exc:
                raise RightsizeError(_storage_problem(url, exc)) from None
    raise AssertionError("unreachable")


def _sqlite_wal(url: str) -> None:
    """Write-ahead logging on the study file (it persists in the file): readers do not wait for a
    writer, so workers sharing a SQLite study block each other far less."""
    import sqlite3

    from sqlalchemy.engine import make_url

    path = make_url(url).database
    if not path or path == ":memory:":
        return
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=120)) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
    except sqlite3.Error as exc:
        raise RightsizeError(_storage_problem(url, exc)) from None


def _sqlite_transactions(storage) -> None:
    """Two settings on every SQLite connection of the study.

    * ``BEGIN IMMEDIATE``: Python's sqlite3 starts a transaction only at the first write, so Optuna's
      "read the queued trial's state, then set it RUNNING" ran as two transactions, and two workers
      could both pop one queued trial and run it (seen once two workers queued configs for each
      other: "Cannot tell a COMPLETE trial"). Taking the write lock when a transaction begins makes
      each storage call atomic across workers (SQLAlchemy's recipe for pysqlite); the calls are
      milliseconds long, and the others wait on the lock (``timeout``).
    * ``synchronous=NORMAL``: in WAL mode a commit no longer waits for the disk. A killed process
      loses nothing committed (the OS still has it); only a power cut can drop the last trials, and
      their records are in runs.jsonl (fsynced), where a resumed search finds them."""
    from sqlalchemy import event

    def on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # no BEGIN of sqlite3's own: on_begin says when
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")

    def on_begin(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    event.listen(storage.engine, "connect", on_connect)
    event.listen(storage.engine, "begin", on_begin)
    storage.engine.dispose()  # connections made while creating the tables get the settings too


def _storage_problem(url: str, exc: Exception) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"--storage {masked(url)}: cannot open the study storage ({exc.__class__.__name__}: {first})"[:400]


def _with_driver(url: str) -> str:
    """``postgresql://`` with the driver rightsize ships: SQLAlchemy 2.1 maps a bare ``postgresql://``
    to psycopg 3, while the requirements pin psycopg2-binary; an explicit ``+driver`` is kept."""
    from importlib.util import find_spec

    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix) and find_spec("psycopg") is None and find_spec("psycopg2") is not None:
            return "postgresql+psycopg2://" + url[len(prefix):]
    return url


class _Requeue(optuna.storages.RetryHeartbeatStaleTrialCallback):
    """Optuna's retry callback, minus the dead worker's name on the new trial (otherwise the trial,
    once a live worker takes it, could look dead to another worker's start-up check)."""

    def __init__(self, max_retry: int | None = None):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "experimental"
            super().__init__(max_retry=max_retry)

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        trial = copy.deepcopy(trial)
        trial.user_attrs = {k: v for k, v in trial.user_attrs.items() if k not in ("worker", "outcome")}
        super().__call__(study, trial)


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{_process_start(os.getpid()) or ''}"


def _process_start(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (distinguishes a reused pid); None when unknown or dead."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    if fields and fields[0] == "Z":
        return None  # a zombie: killed, not yet reaped
    return fields[19] if len(fields) > 19 else None


def _worker_alive(worker: str) -> bool | None:
    """True/False for a worker of this machine; None for another machine's (heartbeats decide)."""
    host, _, rest = worker.partition(":")
    pid_text, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    if not Path("/proc").is_dir():
        try:
            os.kill(int(pid_text), 0)
            return True
        except OSError:
            return False
    now = _process_start(int(pid_text))
    return now is not None and (not started or now == started)


def recover_dead_trials(study) -> list[int]:
    """Fail and re-queue running trials whose worker, on this machine, no longer exists."""
    storage, recovered = study._storage, []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get("worker")
        if not worker or _worker_alive(worker) is not False:
            continue
        try:
            if not storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another process got there first
        log.info("trial %d of a stopped worker (%s) marked failed; its config is queued again", t.number, worker)
        _Requeue(max_retry=3)(study, storage.get_trial(t._trial_id))
        recovered.append(t.number)
    return recovered


# ------------------------------------------------------------------------------------ the search


class _RungFailed(Exception):
    """A config whose evaluation failed (recorded as failed); the trial is marked FAIL."""


def run_search(request: SearchRequest, on_trial: Callable[[TrialOutcome], None] | None = None,
               on_note: Callable[[str], None] | None = None) -> SearchResult:
    """Run (or resume, or join) the study and return what it found."""
    if request.objective not in OBJECTIVES:
        raise RightsizeError(f"--objective {request.objective!r}: choose one of {', '.join(OBJECTIVES)}")
    if request.trials < 1:
        raise RightsizeError(f"--trials must be at least 1, got {request.trials}")
    if request.budget_joules is not None and not request.budget_joules > 0:
        raise RightsizeError(f"--budget-joules must be positive, got {request.budget_joules!r}")
    steps = tuple(sorted({float(s) for s in request.steps}))
    if not steps or steps[0] <= 0 or steps[-1] != 1.0:
        raise RightsizeError(f"steps {request.steps!r}: fractions in (0, 1] ending with 1.0")
    # Evaluations use the seed of `rightsize evaluate` (0): the same config has the same key and
    # subsets in both commands, so their records are shared. --seed drives the sampler.
    with open_run(request, seed=0) as run:
        space = build_space(run.ladder, run.context.device)
        return _Search(request, run, space, steps, on_trial, on_note or (lambda _: None)).run()


class _Search:
    """One worker's run of the study: the objective, the stop rules and the energy ledger."""

    def __init__(self, request: SearchRequest, run: TaskRun, space: SearchSpace, steps, on_trial, on_note):
        from rightsize.recommend import target_rule

        task, data = run.task, run.data
        self.r, self.task, self.data, self.space, self.meter = request, task, data, space, run.meter
        self.run_log = run.run_log
        self.steps, self.on_trial, self.note = steps, on_trial, on_note
        self.metric = task.metric
        self.target = {"min": task.target.min, "within": task.target.within}
        self.rule, self.rule_value = target_rule(self.target)
        self.plan = EvalPlan(split="validation", limit=request.limit, train_limit=request.train_limit)
        self.context = run.context
        self.ident = task_identity(data)
        self.run_id = run.run_id
        self.worker = _worker_id()
        self.outcomes: list[TrialOutcome] = []
        self.total_joules = 0.0  # this worker's meter window, closed segments
        self.spent: dict[str, float] = {"evaluations": 0.0, "pruned": 0.0}
        self.stopped = ""
        self.proposals_in_a_row = 0  # proposals that evaluated nothing (duplicates, skips), in a row
        self.retried: set[str] = set()  # configs this worker queued again after a race (once each)
        self._standing_memo: tuple[tuple, _Standing] | None = None
        self._configs: list[tuple] | None = None  # the space enumerated, with keys (see _enumerated)
        self.exhausted = ""  # set when no config left could be the answer (see _queue_cheapest)
        self.ladder = [(r, evaluation_key(self.ident, r.base, self.plan, self.context)) for r in space.rungs]
        self.ladder_keys = {key for _, key in self.ladder}
        self._current: int | None = None  # the trial this worker is running
        self._in_objective = False
        self._interrupted = False  # Ctrl-C arrived outside the objective

    # -------------------------------------------------------------- set-up

    def study_name(self) -> str:
        if self.r.study:
            return self.r.study
        ident = {"task": self.ident, "space": self.space.describe(), "plan": asdict(self.plan),
                 "objective": self.r.objective, "metric": self.metric, "target": self.target}
        digest = hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:8]
        return f"{self.task.name}-{self.r.objective}-{digest}"

    def open_study(self) -> optuna.Study:
        url = self.r.storage or f"sqlite:///{(self.run_log.dir / STUDY_FILE).resolve()}"
        self.storage_url = url
        storage = open_storage(url)
        name = self.study_name()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TPE's multivariate/group options are "experimental"
            if self.r.objective == "pareto":
                sampler = optuna.samplers.NSGAIISampler(seed=self.r.seed,
                                                        population_size=max(4, min(20, self.r.trials // 2)))
                directions, pruner = ["maximize", "minimize"], optuna.pruners.NopPruner()
            else:
                # The enqueued ladder rungs are the start-up trials: TPE models from there on,
                # instead of spending more trials on random (often large and costly) configs.
                # gamma 0.25 (Hyperopt's; Optuna's 0.1 models the single best trial alone until there
                # are 15 trials): with few trials TPE also studies the configs nearest to adequate.
                sampler = FreshAdequacyTPESampler(self.target, self.metric, seed=self.r.seed, multivariate=True,
                                                  group=True, n_startup_trials=len(self.space.rungs),
                                                  gamma=_gamma)
                directions = ["minimize"]
                pruner = AdequacyPruner(self.rule, self.rule_value, self.r.min_prune_examples)
            try:
                study = optuna.create_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner,
                                            directions=directions, load_if_exists=True)
            except Exception as exc:  # noqa: BLE001 — e.g. an existing study with other directions
                raise RightsizeError(f"study {name!r} in {masked(url)}: {exc}".splitlines()[0]) from None
        facts = {"task": self.ident, "metric": self.metric,
                 "target": self.target, "objective": self.r.objective, "space": self.space.describe(),
                 "plan": asdict(self.plan)}
        known = study.user_attrs.get("rightsize")
        if known is None:
            study.set_user_attr("rightsize", facts)
        elif json.loads(json.dumps(known)) != json.loads(json.dumps(facts, default=str)):
            what = next((k for k in facts if json.dumps(known.get(k), default=str, sort_keys=True)
                         != json.dumps(facts[k], default=str, sort_keys=True)), "settings")
            raise RightsizeError(f"study {name!r} in {masked(url)} was created with another {what}; "
                                 f"give a new --study name (or the same task, ladder and options)")
        self.study = study
        return study

    # -------------------------------------------------------------- run

    def run(self) -> SearchResult:
        verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.ERROR)  # the CLI prints each trial itself
        try:
            return self._run()
        finally:
            optuna.logging.set_verbosity(verbosity)

    def _run(self) -> SearchResult:
        study = self.open_study()
        recovered = recover_dead_trials(study)
        if recovered:
            self.note(f"trials {', '.join(map(str, recovered))} were left running by a stopped worker; "
                      f"their configs are queued again")
        if self.r.objective == "smallest":
            self._plan_next(study)  # the ladder's rungs (or, for a min target, the cheapest) first
        else:
            for params in self.space.small_first():
                study.enqueue_trial(params, skip_if_exists=True)
        done = self._evaluated_keys(study)
        if done:
            self.note(f"study {study.study_name!r}: {len(done)} configs already evaluated; continuing")
        self._warn_small_budget(done)
        start = plan_entry("search", task=self.task.name, split=self.plan.split, limit=self.plan.limit,
                           seed=self.context.seed, run_id=self.run_id, study=study.study_name,
                           rungs=[(r.name, key, r.base.config()) for r, key in self.ladder])
        self.run_log.write_plan(start)
        self.meter.begin("search")
        started = time.monotonic()
        try:
            self.stopped = self._stop_reason(study)
            if not self.stopped:
                try:
                    with self._interruptible():
                        study.optimize(self.objective, timeout=self.r.timeout, callbacks=[self._after_trial],
                                       catch=(_RungFailed,), gc_after_trial=False)
                except KeyboardInterrupt:
                    self._requeue_interrupted(study)
                    raise
                if not self.stopped:
                    timed_out = self.r.timeout is not None and time.monotonic() - started >= self.r.timeout
                    self.stopped = f"timeout ({self.r.timeout:g} s)" if timed_out else "stopped"
        finally:
            self.total_joules += self.meter.end("search").joules
        self.run_log.write_plan(search_end_entry(start, stopped=self.stopped, remaining=self._remaining(study),
                                                 space_size=self.space.size))
        return self.result(study)

    def _warn_small_budget(self, done: set[str]) -> None:
        """Say at the start when --trials cannot cover the ladder rungs that set a within target's bar."""
        if self.r.objective != "smallest" or self.rule != "within":
            return
        left = [r.name for r, key in self.ladder if key not in done]
        budget = max(self.r.trials - len(done), 0)
        if len(left) > budget:
            self.note(f"--trials {self.r.trials} leaves {budget} evaluations for the {len(left)} ladder rungs that "
                      f"set the bar of the 'within' target and are not evaluated yet ({', '.join(left)}): the answer "
                      f"will not be certain; give --trials {len(done) + len(left)} or more")

    def _remaining(self, study) -> list[tuple[str, str]] | None:
        """Configs off the ladder, not evaluated, that could still be the answer (their cost bound is
        not above the incumbent's J/query): (label, key); None when the space is too large to list."""
        if self.r.objective != "smallest":
            return None
        trials = study.get_trials(deepcopy=False)
        evaluated = self._evaluated_keys(study, trials)
        if len(evaluated) >= self.space.size:
            return []
        configs = self._enumerated()
        if configs is None:
            return None
        incumbent = self._standing(study, trials).incumbent
        cost = self._standing(study, trials).cost
        out = []
        for name, values, spec, key in configs:
            if key in evaluated or key in self.ladder_keys:
                continue  # ladder rungs are judged as rungs (rightsize.coverage)
            bound = cost.lower_bound(spec) if incumbent is not None else None
            if bound is not None and bound > incumbent["joules_per_query"]:
                continue
            out.append((f"{name} ({knob_text(values)})" if values else name, key))
        return out

    @contextlib.contextmanager
    def _interruptible(self) -> Iterator[None]:
        """Ctrl-C raises inside the objective only: Optuna then fails the trial cleanly, whereas an
        interrupt while it tells the storage leaves the trial running (and Optuna 5.0 turns it
        into an UnboundLocalError). Outside the objective it is held until the trial is told."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def on_sigint(signum, frame) -> None:
            if self._in_objective:
                raise KeyboardInterrupt
            self._interrupted = True

        previous = signal.signal(signal.SIGINT, on_sigint)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _requeue_interrupted(self, study: optuna.Study) -> None:
        """Ctrl-C: Optuna marks the running trial failed; queue its config again so a resumed search
        (and "small first") still gets to it."""
        if self._current is None:
            return
        trial = study._storage.get_trial(study._storage.get_trial_id_from_study_id_trial_number(
            study._study_id, self._current))
        if trial.state == TrialState.FAIL and trial.user_attrs.get("outcome") != "failed":
            _Requeue(max_retry=3)(study, trial)  # if its record was written, the retry reuses it

    def _segment(self) -> float:
        """Energy of this worker since the last trial ended (the trial's share of the search)."""
        m = self.meter.end("search")
        self.meter.begin("search")
        self.total_joules += m.joules
        return m.joules

    def objective(self, trial: optuna.Trial):
        self._current = trial.number
        self._in_objective = True
        try:
            if self._interrupted:
                raise KeyboardInterrupt
            return self._objective(trial)
        finally:
            self._in_objective = False

    def _objective(self, trial: optuna.Trial):
        trial.set_user_attr("worker", self.worker)
        spec, searched = self.space.suggest(trial)
        key = evaluation_key(self.ident, spec, self.plan, self.context)
        for name, value in (("config_key", key), ("rung", spec.name), ("config", spec.config()),
                            ("searched", searched), ("metric", self.metric)):
            trial.set_user_attr(name, value)
        outcome = TrialOutcome(trial.number, spec.name, searched, "", self.metric, key=key)
        other = _claimed(trial.study, trial.number, key)
        if other is not None:
            return self._duplicate(trial, other, outcome)
        record = self._recorded(key)
        if record is None and self.r.objective == "smallest":
            reason = self._ruled_out(self._standing(trial.study), spec, key)
            if reason:
                return self._skip(trial, outcome, reason)
        self.proposals_in_a_row = 0
        if record is not None:
            outcome.outcome = "reused" if record["status"] == "ok" else "pruned"
            outcome.detail = "recorded earlier in runs.jsonl"
        else:
            on_step = self._reporter(trial) if self.r.objective == "smallest" else None
            record = evaluate_rung(self.data, spec, self.meter, self.context, self.plan, run_id=self.run_id,
                                   steps=self.steps, on_step=on_step)
            record["search"] = {"study": trial.study.study_name, "trial": trial.number, "searched": searched}
            self.run_log.append(record)
            outcome.joules = _spent(record)
            outcome.outcome = {"ok": "complete", "pruned": "pruned"}.get(record["status"], "failed")
        trial.storage.set_trial_system_attr(trial._trial_id, RECORD_ATTR, _storable(record))
        self._describe(trial, record, outcome)
        if outcome.outcome == "pruned":
            self.spent["pruned"] += outcome.joules
        self.spent["evaluations"] += outcome.joules
        trial.set_user_attr("eval_joules", outcome.joules)
        trial.set_user_attr("search_joules", self._segment())
        self._tell_progress(outcome)
        if record["status"] == "failed":
            raise _RungFailed(record.get("error", "failed"))
        if record["status"] == "pruned":
            trial.set_constraint("adequacy", self._pruned_gap(trial.study, record))
            raise optuna.TrialPruned(outcome.detail)
        if self.r.objective == "pareto":
            return record["metrics"][self.metric], record["joules_per_query"]
        return record["joules_per_query"]

    def _recorded(self, key: str) -> dict | None:
        """The latest record of ``key`` in runs.jsonl that a trial can stand on (a kill between the
        append and telling the study, or an earlier `rightsize evaluate`): ok, or pruned when pruning."""
        usable = ("ok", "pruned") if self.r.objective == "smallest" else ("ok",)
        found = None
        for r in self.run_log.records():
            if r.get("key") == key and r.get("status") in usable:
                found = r
        return found

    def _pruned_gap(self, study: optuna.Study, record: dict) -> float:
        """How far a pruned record falls short (> 0, the constraint): the bar minus its CI upper bound."""
        names = record["label_names"]
        _, hi = M.confidence_interval(self.metric, record["references"], record["predictions"], len(names))
        bar = study.pruner.threshold(study) if isinstance(study.pruner, AdequacyPruner) else None
        return max((bar - hi) if bar is not None else 0.0, 1e-9)

    def _reporter(self, trial) -> Callable[[Step], None]:
        metric = self.metric

        def on_step(step: Step) -> None:
            _, hi = M.confidence_interval(metric, step.references, step.predictions, step.n_classes)
            trial.report(hi, step.n)
            if not step.final and trial.should_prune():
                point = M.score(metric, step.references, step.predictions, step.n_classes)
                bar = trial.study.pruner.threshold(trial.study)
                raise StopEvaluation(f"{metric} {point:.3f} on {step.n}/{step.total} examples: 95% CI upper bound "
                                     f"{hi:.3f} < {bar:.3f} needed")

        return on_step

    def _describe(self, trial, record: dict, outcome: TrialOutcome) -> None:
        """Readable user attributes (optuna-dashboard shows them) and the adequacy constraint."""
        trial.set_user_attr("outcome", outcome.outcome)
        trial.set_user_attr("energy_source", record.get("energy_source"))
        if record["status"] == "failed":
            outcome.detail = record.get("error", "")
            trial.set_user_attr("error", outcome.detail)
            return
        score, jpq = record["metrics"][self.metric], record["joules_per_query"]
        outcome.score, outcome.joules_per_query = score, jpq
        trial.set_user_attr("score", score)
        trial.set_user_attr("ci", record.get("ci", {}).get(self.metric))
        trial.set_user_attr("joules_per_query", jpq)
        if record["status"] == "pruned":
            outcome.adequate = False
            outcome.detail = record["pruned"]["reason"]
            trial.set_user_attr("adequate", False)
            trial.set_user_attr("adequacy", f"pruned: {outcome.detail}")
            return
        verdict = self._adequacy(trial.study, record)
        if verdict is None:
            return
        outcome.adequate = verdict.adequate
        trial.set_user_attr("adequate", verdict.adequate)
        trial.set_user_attr("adequacy", verdict.detail)
        if self.r.objective == "smallest":
            trial.set_constraint("adequacy", _constraint(verdict))

    def _adequacy(self, study, record: dict):
        from rightsize.recommend import assess, comparable

        group = comparable(study_records(study) + [record])
        verdicts = assess(group, self.target, self.metric) if group else {}
        verdict = verdicts.get(record["key"])
        if verdict is None:
            log.warning("trial record %s is not comparable with the study's records; no adequacy", record["key"])
        return verdict

    def _ruled_out(self, standing: "_Standing", spec, key: str) -> str:
        """Why ``spec`` cannot be the answer, judged before spending anything on it ('' when it may be)."""
        incumbent = standing.incumbent
        if incumbent is None:
            return ""
        if self.rule == "within" and (key in self.ladder_keys or standing.encoder_done(spec)):
            return ""  # it may raise the bar: a ladder rung, or an encoder already run (nearly free)
        bound = standing.cost.lower_bound(spec)
        if bound is None or bound <= incumbent["joules_per_query"]:
            return ""
        from rightsize.tables import human_joules

        return (f"costs at least {human_joules(bound)}/query by the rates measured so far; "
                f"{incumbent['rung']} is adequate at {human_joules(incumbent['joules_per_query'])}/query")

    def _standing(self, study, trials: list | None = None) -> "_Standing":
        """The study's records so far: the incumbent, the cost model, the encoders already run."""
        records = study_records(study, trials)
        done = tuple(sorted(r["key"] for r in records))
        if self._standing_memo is None or self._standing_memo[0] != done:
            self._standing_memo = (done, _Standing(records, self.target, self.metric))
        return self._standing_memo[1]

    def _skip(self, trial, outcome: TrialOutcome, reason: str):
        self.proposals_in_a_row += 1
        outcome.outcome, outcome.detail = SKIPPED, reason
        trial.set_user_attr("outcome", SKIPPED)
        trial.set_user_attr("skipped", reason)
        trial.set_user_attr("search_joules", self._segment())
        self._tell_progress(outcome)
        trial.set_constraint("adequacy", SKIP_CONSTRAINT)
        raise optuna.TrialPruned(reason)

    def _plan_next(self, study) -> None:
        """Queue what runs next, when nothing is queued: the next ladder rung, preceded by the one-knob
        neighbours of the answer so far (or, while nothing is adequate, of the best config so far)
        that are bounded cheaper than that rung. Past the ladder: the neighbours of each new answer,
        then the cheapest config that could still be the answer (:meth:`_queue_cheapest`); TPE
        proposes while nothing is adequate, or when the space is too large to enumerate. For a
        ``min`` target in a space that can be enumerated: cheapest first from the first trial."""
        trials = study.get_trials(deepcopy=False)
        if any(t.state == TrialState.WAITING for t in trials):
            return
        taken = {t.user_attrs.get("config_key") for t in trials if t.state == TrialState.RUNNING or (
            t.state.is_finished() and t.user_attrs.get("outcome") in EVALUATED)}
        busy = taken | {t.user_attrs.get("config_key") for t in trials
                        if t.state.is_finished() and t.user_attrs.get("outcome") == SKIPPED}
        standing = self._standing(study, trials)
        if self.rule == "min" and self._enumerated() is not None:
            # An absolute target: the answer is certain only once every config cheaper than it has
            # been evaluated, so cheapest first from the start spends nothing on a costlier config
            # before the answer is found, and the ladder's order adds nothing.
            self._queue_cheapest(study, standing, taken)
            return
        rung = next((r for r, key in self.ladder if key not in busy), None)
        spare = math.inf
        if rung is not None and self.rule == "within":
            # The ladder's rungs set a within target's bar: neighbours go ahead of them only with
            # trials to spare beyond the rungs left, so a budget that runs out leaves variants
            # unevaluated, never the bar.
            spare = self._spare_trials(trials, busy)
            if spare <= 0:
                study.enqueue_trial(rung.default_params(), skip_if_exists=True)
                return
        if rung is None:
            ceiling = math.inf
        else:
            bound = standing.cost.lower_bound(rung.base)
            ceiling = bound if bound is not None else -math.inf  # an unknown cost: nothing is known cheaper
        anchor = standing.incumbent or standing.best
        candidates = []
        if anchor is not None and anchor["rung"] in self.space.names:
            searched = _searched_of(trials, anchor["key"])
            space = self.space[anchor["rung"]]
            for values in space.neighbours(searched) if searched is not None else []:
                spec = space.spec_for(values)
                if evaluation_key(self.ident, spec, self.plan, self.context) in busy:
                    continue
                bound = standing.cost.lower_bound(spec)
                if (bound or 0.0) < ceiling:  # an unknown bound counts as 0: queued unless the rung's cost is unknown
                    candidates.append((bound or 0.0, space.params(values)))
        for _, params in sorted(candidates, key=lambda c: c[0])[:spare if spare < math.inf else None]:
            study.enqueue_trial(params, skip_if_exists=True)
        if rung is not None:
            study.enqueue_trial(rung.default_params(), skip_if_exists=True)
        elif not candidates and standing.incumbent is not None:
            self._queue_cheapest(study, standing, taken)

    def _spare_trials(self, trials: list, busy: set) -> int:
        """Trials --trials leaves beyond the ladder rungs not yet run (0 under --budget-joules or
        --timeout: what a trial will cost, or how long it takes, is not known in advance)."""
        if self.r.budget_joules is not None or self.r.timeout is not None:
            return 0
        left = sum(1 for _, key in self.ladder if key not in busy)
        return self.r.trials - len(self._evaluated_keys(None, trials)) - left

    def _queue_cheapest(self, study, standing: "_Standing", taken: set) -> None:
        """Queue the config with the least estimated cost (:meth:`CostModel.estimate`) among those not
        evaluated that could still be the answer, or, when there is none, record that the space is
        exhausted (a stop reason).

        Why not TPE here: once a config is adequate, the answer is among the configs not bounded
        above it, and every one of them has to be evaluated before the answer is certain; TPE, which
        knows nothing of the bound, kept proposing configs that were ruled out (each proposal a
        trial written to the storage) and never said when nothing was left. Cheapest first, because
        a cheaper adequate config rules out more of the rest."""
        configs = self._enumerated()
        if configs is None:
            return  # too many to enumerate: TPE proposes, the skip rule still applies
        choice = None
        for name, values, spec, key in configs:
            if key in taken or self._ruled_out(standing, spec, key):
                continue
            cost = standing.cost.estimate(spec)
            if choice is None or cost < choice[0]:
                choice = (cost, name, values)
        if choice is None:
            self.exhausted = f"every config of the space evaluated or ruled out by cost ({self.space.size})"
        else:
            study.enqueue_trial(self.space[choice[1]].params(choice[2]))

    def _enumerated(self) -> list[tuple] | None:
        """Every config of the space with its evaluation key (computed once), or None when the space
        has more than ENUMERATE_MAX configs."""
        if self._configs is None and self.space.size <= ENUMERATE_MAX:
            self._configs = [(name, values, spec, evaluation_key(self.ident, spec, self.plan, self.context))
                             for name, values, spec in self.space.configs()]
        return self._configs

    def _duplicate(self, trial, other, outcome: TrialOutcome):
        self.proposals_in_a_row += 1
        outcome.outcome = DUPLICATE
        outcome.detail = f"duplicate of trial {other.number} ({other.state.name.lower()})"
        trial.set_user_attr("outcome", DUPLICATE)
        trial.set_user_attr("duplicate_of", other.number)
        for name in ("score", "ci", "joules_per_query", "adequate", "adequacy", "energy_source"):
            if name in other.user_attrs:
                trial.set_user_attr(name, other.user_attrs[name])
        outcome.score = other.user_attrs.get("score")
        outcome.joules_per_query = other.user_attrs.get("joules_per_query")
        outcome.adequate = other.user_attrs.get("adequate")
        trial.set_user_attr("search_joules", self._segment())
        self._tell_progress(outcome)
        if other.state == TrialState.RUNNING and outcome.key not in self.retried:
            # Two trials of one config that write their keys before either reads both step back, and
            # TPE, told "infeasible", would not propose it again: queue it once more from here. If
            # the other trial was really evaluating it, the retry is a cheap duplicate of it.
            self.retried.add(outcome.key)
            trial.study.enqueue_trial(trial.params)
        if self.r.objective == "pareto" and other.state == TrialState.COMPLETE:
            return other.values
        # To TPE a duplicate is a miss, not one more observation of a good point: told as a second
        # "complete" trial it made TPE propose the same config over and over. Pruned and infeasible,
        # it counts against proposing that config again.
        trial.set_constraint("adequacy", DUPLICATE_PENALTY)
        raise optuna.TrialPruned(outcome.detail)

    def _tell_progress(self, outcome: TrialOutcome) -> None:
        self.outcomes.append(outcome)
        if self.on_trial is not None:
            self.on_trial(outcome)

    # -------------------------------------------------------------- stopping

    def _after_trial(self, study, trial) -> None:
        if self._interrupted:
            raise KeyboardInterrupt
        if self.r.objective == "smallest":
            self._plan_next(study)
        reason = self._stop_reason(study)
        if reason:
            self.stopped = reason
            study.stop()

    def _evaluated_keys(self, study, trials: list | None = None) -> set[str]:
        """Config keys of the study's finished trials that evaluated (or reused) a config."""
        finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        trials = study.get_trials(deepcopy=False) if trials is None else trials
        return {t.user_attrs["config_key"] for t in trials
                if t.state in finished and t.user_attrs.get("outcome") in EVALUATED and "config_key" in t.user_attrs}

    def _stop_reason(self, study) -> str:
        trials = study.get_trials(deepcopy=False)  # once: each read is a query of the storage
        keys = self._evaluated_keys(study, trials)
        if len(keys) >= self.space.size:
            return f"every config of the space evaluated ({self.space.size})"
        if self.exhausted:
            return self.exhausted
        if len(keys) >= self.r.trials:
            return f"{self.r.trials} configs evaluated (--trials)"
        if self.r.budget_joules is not None:
            spent, mean = self.study_energy(study, trials)
            if spent >= self.r.budget_joules or spent + mean > self.r.budget_joules:
                return (f"energy budget: the search has used {spent:.3g} J of {self.r.budget_joules:g} J and a "
                        f"trial costs {mean:.3g} J on average (--budget-joules)")
        if self.proposals_in_a_row >= max(20, self.r.trials):
            return (f"the sampler proposed only evaluated or ruled-out configs {self.proposals_in_a_row} "
                    f"times in a row")
        return ""

    def study_energy(self, study, trials: list | None = None) -> tuple[float, float]:
        """Energy of the whole study (every worker's trials) and the mean of its evaluating trials."""
        trials = study.get_trials(deepcopy=False) if trials is None else trials
        total = sum(float(t.user_attrs.get("search_joules", 0.0)) for t in trials)
        evaluating = [float(t.user_attrs.get("search_joules", 0.0)) for t in trials
                      if t.user_attrs.get("outcome") in ("complete", "pruned", "failed")]
        return total, (sum(evaluating) / len(evaluating) if evaluating else 0.0)

    # -------------------------------------------------------------- result

    def result(self, study) -> SearchResult:
        from rightsize.recommend import NothingCompleted, comparable, pareto_front, recommend

        records = study_records(study)
        counts: dict[str, int] = {}
        for t in study.get_trials(deepcopy=False):
            outcome = t.user_attrs.get("outcome") or t.state.name.lower()
            counts[outcome] = counts.get(outcome, 0) + 1
        study_total, _ = self.study_energy(study)
        evaluations = self.spent["evaluations"]
        energy = {
            "source": self.meter.source,
            "estimated": "estimate" in self.meter.source,
            "total_joules": self.total_joules,  # this worker: evaluations + sampling, storage, bookkeeping
            "evaluations_joules": evaluations,
            "pruned_joules": self.spent["pruned"],
            "overhead_joules": self.total_joules - evaluations,
            "study_joules": study_total,  # every worker of the study, trials so far
            "budget_joules": self.r.budget_joules,
        }
        rec, why, front, tried = None, None, [], []
        try:
            rec = recommend(records, plans=self.run_log.plans())
        except NothingCompleted as exc:
            why, tried = str(exc), exc.tried
        except RightsizeError as exc:
            why = str(exc)
        if rec is not None:
            group = comparable(records)
            labels = variant_labels(group)
            front = [{"rung": r["rung"], "label": labels[r["key"]], "config": r["config"], "key": r["key"],
                      "metric": r["metrics"][self.metric], "joules_per_query": r["joules_per_query"]}
                     for r in pareto_front(group, self.metric)]
        elif not records:
            why = "no trial evaluated a config"
        return SearchResult(
            study=study.study_name, storage=masked(self.storage_url), objective=self.r.objective,
            out_dir=str(self.run_log.dir), space_size=self.space.size, stopped=self.stopped, trials=self.outcomes,
            study_counts=counts, energy=energy, records=records, recommendation=rec, no_recommendation=why,
            pareto=front, tried=tried)


# ------------------------------------------------------------------------------------ helpers


def _claimed(study, me: int, key: str):
    """Another trial that has (or is evaluating) config ``key``: complete first, else the earliest."""
    state = TrialState
    found = []
    for t in study.get_trials(deepcopy=False):
        if t.number == me or t.user_attrs.get("config_key") != key or t.user_attrs.get("outcome") in (SKIPPED, DUPLICATE):
            continue  # neither evaluated anything: a skipped config is decided again (the incumbent may have moved)
        if t.state in (state.COMPLETE, state.PRUNED, state.RUNNING) or (
                t.state == state.FAIL and t.user_attrs.get("outcome") == "failed"):
            found.append(t)
    if not found:
        return None
    return min(found, key=lambda t: (t.state != state.COMPLETE, t.number))


class _Standing:
    """What the search knows at one moment: the cheapest adequate config (the incumbent), the cost
    rates measured, and which encoder configurations have already run."""

    def __init__(self, records: list[dict], target: dict, metric: str):
        from rightsize.recommend import assess, comparable, spec_from_config

        self.cost = CostModel()
        self._encoders: set[tuple] = set()
        for r in records:
            if r.get("status") in ("ok", "pruned"):
                spec = spec_from_config(r["rung"], r["config"])
                self.cost.observe(spec, r)
                self._encoders.add(_encoder_identity(spec))
        group = comparable([r for r in records if r.get("status") == "ok"])
        verdicts = assess(group, target, metric) if group else {}
        adequate = [r for r in group if verdicts[r["key"]].adequate]
        self.incumbent = min(adequate, key=lambda r: (r["joules_per_query"], r.get("n_params") or 0), default=None)
        self.best = max(group, key=lambda r: (r["metrics"][metric], -r["joules_per_query"]), default=None)

    def encoder_done(self, spec) -> bool:
        return spec.model is not None and _encoder_identity(spec) in self._encoders


def _encoder_identity(spec) -> tuple:
    """What makes two configs share an encoding (and the embedding cache): model, depth, run settings."""
    return (spec.model, spec.knobs.get("layers"), settings_of(spec))


def _searched_of(trials: list, key: str) -> dict | None:
    """The searched knob values of the trial that evaluated config ``key``."""
    for t in trials:
        if t.user_attrs.get("config_key") == key and isinstance(t.user_attrs.get("searched"), dict):
            return t.user_attrs["searched"]
    return None


def study_records(study, trials: list | None = None) -> list[dict]:
    """The records of the study's trials (every worker's), one per config key, in trial order."""
    out: dict[str, dict] = {}
    for t in study.get_trials(deepcopy=False) if trials is None else trials:
        record = t.system_attrs.get(RECORD_ATTR)
        if isinstance(record, dict) and "key" in record:
            out.setdefault(record["key"], record)
    return list(out.values())


def _storable(record: dict) -> dict:
    return {k: v for k, v in record.items() if not k.startswith("_")}


def _spent(record: dict) -> float:
    """What an evaluation really spent (``joules_spent``: less than its cost when the embedding
    cache served part of it); ``joules`` for records written before the cache existed."""
    if isinstance(record.get("joules_total_spent"), (int, float)):
        return float(record["joules_total_spent"])
    spent = record.get("joules_spent")
    if isinstance(spent, dict) and spent:
        return float(sum(spent.values()))
    return float(record.get("joules_total") or sum((record.get("joules") or {}).values()))
