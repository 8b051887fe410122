"""`rightsize search`: an Optuna study for the least-energy adequate configuration of a ladder's space.

One concept per module (request, context, study, pruner, sampler, storage, workers, scheduler,
standing, trial, stopping, run); every Optuna private name goes through ``_optuna_compat``. docs/search.md explains how the
search works and why.
"""

from __future__ import annotations

from rightsize.search.pruner import AdequacyPruner
from rightsize.search.request import (
    DUPLICATE, EVALUATED, MIN_PRUNE_EXAMPLES, OBJECTIVES, SKIPPED, STEPS, SearchRequest, SearchResult, TrialOutcome)
from rightsize.search.run import run_search
from rightsize.search.sampler import FreshAdequacyTPESampler
from rightsize.search.standing import RECORD_ATTR, study_records
from rightsize.search.storage import GRACE_S, HEARTBEAT_S, masked, open_storage
from rightsize.search.study import STUDY_FILE
from rightsize.search.trial import DUPLICATE_PENALTY, SKIP_CONSTRAINT
from rightsize.search.workers import recover_dead_trials

# Spaces of up to this many configs are walked cheapest first instead of by TPE. Defined here, and
# read here by the scheduler at each use, so that setting rightsize.search.ENUMERATE_MAX takes effect.
ENUMERATE_MAX = 5_000

__all__ = [
    "AdequacyPruner", "DUPLICATE", "DUPLICATE_PENALTY", "ENUMERATE_MAX", "EVALUATED", "FreshAdequacyTPESampler",
    "GRACE_S", "HEARTBEAT_S", "MIN_PRUNE_EXAMPLES", "OBJECTIVES", "RECORD_ATTR", "SKIPPED", "SKIP_CONSTRAINT",
    "STEPS", "STUDY_FILE", "SearchRequest", "SearchResult", "TrialOutcome", "masked", "open_storage",
    "recover_dead_trials", "run_search", "study_records",
]
