"""Every Optuna private name the search uses, in one place.

Optuna gives no public way to write a trial's system attribute, to look a trial up by number,
to override a finished trial's constraint, or to hand a sampler a filtered view of a study's
trials. These functions do it with the private names Optuna uses itself;
tests/test_optuna_compat.py fails when a new Optuna renames or changes any of them.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import optuna
from optuna.study._constrained_optimization import _CONSTRAINTS_KEY


def storage_of(study: optuna.Study) -> optuna.storages.BaseStorage:
    return study._storage


def study_id(study: optuna.Study) -> int:
    return study._study_id


def trial_id(trial: optuna.Trial | optuna.trial.FrozenTrial) -> int:
    return trial._trial_id


def set_system_attr(trial: optuna.Trial, key: str, value: Any) -> None:
    """A system attribute of a running trial (kept out of optuna-dashboard's user attributes)."""
    trial.storage.set_trial_system_attr(trial_id(trial), key, value)


def trial_by_number(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    """The stored trial ``number`` of ``study``, as the storage has it now."""
    storage = storage_of(study)
    return storage.get_trial(storage.get_trial_id_from_study_id_trial_number(study_id(study), number))


def with_constraint(trial: optuna.trial.FrozenTrial, name: str, value: float) -> optuna.trial.FrozenTrial:
    """A copy of ``trial`` whose constraint ``name`` is ``value`` (the stored trial is untouched);
    ``FrozenTrial.set_constraint`` keeps a value already set."""
    trial = copy.copy(trial)
    trial._system_attrs = {**trial.system_attrs, f"{_CONSTRAINTS_KEY}:{name}": value}
    return trial


def get_trials_view(study: optuna.Study, refresh: Callable[[list], list]) -> "_TrialsView":
    """``study`` as a sampler sees it, each list of trials passed through ``refresh``: samplers read
    trials through the private ``Study._get_trials``, so the view overrides it and ``get_trials``."""
    return _TrialsView(study, refresh)


def sampler_trials(study, **kwargs) -> list:
    """The trials of ``study`` (or of a view) the way Optuna's samplers read them."""
    return study._get_trials(deepcopy=False, **kwargs)


class _TrialsView:
    def __init__(self, study: optuna.Study, refresh: Callable[[list], list]):
        self._study, self._refresh_trials = study, refresh

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(self, *args, **kwargs) -> list:
        return self._refresh_trials(self._study._get_trials(*args, **kwargs))

    def get_trials(self, *args, **kwargs) -> list:
        return self._refresh_trials(self._study.get_trials(*args, **kwargs))
