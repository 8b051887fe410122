"""Workers that stop: each worker's id (host, pid, process start), whether it is still alive, and
the re-queueing of its trial, whether it died (heartbeats, or a local pid that is gone) or was
stopped by Ctrl-C, so that no config a worker took is lost to the study."""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import signal
import socket
import threading
import warnings
from pathlib import Path
from typing import Callable, Iterator

import optuna
from optuna.trial import TrialState

from rightsize.search import _optuna_compat as compat

log = logging.getLogger(__name__)


class Requeue(optuna.storages.RetryHeartbeatStaleTrialCallback):
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


def worker_id() -> str:
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
    storage, recovered = compat.storage_of(study), []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get("worker")
        if not worker or _worker_alive(worker) is not False:
            continue
        try:
            if not storage.set_trial_state_values(compat.trial_id(t), state=TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another process got there first
        log.info("trial %d of a stopped worker (%s) marked failed; its config is queued again", t.number, worker)
        Requeue(max_retry=3)(study, storage.get_trial(compat.trial_id(t)))
        recovered.append(t.number)
    return recovered


class CtrlC:
    """Ctrl-C raises inside the objective only: Optuna then fails the trial cleanly, whereas an
    interrupt while it tells the storage leaves the trial running (and Optuna 5.0 turns it into an
    UnboundLocalError). Outside the objective it is held until the trial is told (:meth:`check`)."""

    def __init__(self) -> None:
        self.current: int | None = None  # the trial this worker is running
        self._in_objective = False
        self._interrupted = False  # Ctrl-C arrived outside the objective

    def check(self) -> None:
        """Raise the Ctrl-C held since it arrived outside the objective."""
        if self._interrupted:
            raise KeyboardInterrupt

    def guard(self, objective: Callable) -> Callable:
        """``objective``, where Ctrl-C may raise."""

        def guarded(trial: optuna.Trial):
            self.current = trial.number
            self._in_objective = True
            try:
                self.check()
                return objective(trial)
            finally:
                self._in_objective = False

        return guarded

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """The SIGINT handler, while the study optimizes (in the main thread only)."""
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

    def requeue(self, study: optuna.Study) -> None:
        """Optuna marks the interrupted trial failed; queue its config again so a resumed search
        (and "small first") still gets to it."""
        if self.current is None:
            return
        trial = compat.trial_by_number(study, self.current)
        if trial.state == TrialState.FAIL and trial.user_attrs.get("outcome") != "failed":
            Requeue(max_retry=3)(study, trial)  # if its record was written, the retry reuses it
