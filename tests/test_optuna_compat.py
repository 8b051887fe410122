"""The Optuna private names rightsize.search relies on (all in rightsize/search/_optuna_compat.py)
still exist and behave as used, on real studies: a new Optuna that renames or changes one fails here."""

from __future__ import annotations

import optuna
import pytest

from rightsize.search import _optuna_compat as compat

optuna.logging.set_verbosity(optuna.logging.ERROR)


@pytest.fixture(params=["memory", "sqlite"])
def study(request, tmp_path) -> optuna.Study:
    storage = None if request.param == "memory" else f"sqlite:///{tmp_path / 'compat.db'}"
    return optuna.create_study(storage=storage)


def test_the_private_names_exist():
    from optuna.study._constrained_optimization import _CONSTRAINTS_KEY

    assert isinstance(_CONSTRAINTS_KEY, str)
    study = optuna.create_study()
    trial = study.ask()
    frozen = study.trials[0]
    for obj, name in ((study, "_storage"), (study, "_study_id"), (study, "_get_trials"), (trial, "_trial_id"),
                      (trial, "storage"), (frozen, "_trial_id"), (frozen, "_system_attrs")):
        assert hasattr(obj, name), f"{type(obj).__name__}.{name} is gone"


def test_storage_study_and_trial_ids_find_the_stored_trials(study):
    first, second = study.ask(), study.ask()
    study.tell(first, 1.0)
    storage = compat.storage_of(study)
    assert isinstance(storage, optuna.storages.BaseStorage)
    assert [t.number for t in storage.get_all_trials(compat.study_id(study))] == [0, 1]
    assert storage.get_trial(compat.trial_id(second)).number == second.number  # a running Trial
    frozen = study.trials[0]
    assert storage.get_trial(compat.trial_id(frozen)).state == optuna.trial.TrialState.COMPLETE  # a FrozenTrial
    assert compat.trial_by_number(study, 1).number == 1
    assert compat.trial_by_number(study, 1).state == optuna.trial.TrialState.RUNNING


def test_a_system_attribute_is_stored_on_the_trial(study):
    trial = study.ask()
    compat.set_system_attr(trial, "rightsize:test", {"key": "K", "n": 3})
    assert study.trials[0].system_attrs["rightsize:test"] == {"key": "K", "n": 3}
    assert "rightsize:test" not in study.trials[0].user_attrs


def test_a_constraint_is_replaced_on_a_copy_and_read_back_as_optuna_reads_it(study):
    trial = study.ask()
    trial.set_constraint("adequacy", -0.5)
    study.tell(trial, 1.0)
    stored = study.trials[0]
    assert stored.constraints == {"adequacy": -0.5}
    changed = compat.with_constraint(stored, "adequacy", 0.25)
    # The same key as Trial.set_constraint wrote: replaced, not added beside it.
    assert changed.constraints == {"adequacy": 0.25}
    assert set(changed.system_attrs) == set(stored.system_attrs)
    assert stored.constraints == {"adequacy": -0.5} and study.trials[0].constraints == {"adequacy": -0.5}
    # Optuna's own feasibility test (what its samplers use) sees the new value.
    from optuna.study._constrained_optimization import _get_feasible_trials

    assert _get_feasible_trials([stored]) == [stored] and _get_feasible_trials([changed]) == []


def test_the_trials_view_passes_every_list_of_trials_through_refresh(study):
    study.tell(study.ask(), 1.0)
    seen = []

    def refresh(trials: list) -> list:
        seen.append(len(trials))
        return [compat.with_constraint(t, "adequacy", 1.0) for t in trials]

    view = compat.get_trials_view(study, refresh)
    assert view.study_name == study.study_name  # anything else is the study's own
    assert [t.constraints for t in view.get_trials(deepcopy=False)] == [{"adequacy": 1.0}]
    assert [t.constraints for t in compat.sampler_trials(view)] == [{"adequacy": 1.0}]
    assert seen == [1, 1] and study.trials[0].constraints == {}


@pytest.mark.parametrize("multivariate", [False, True])
def test_tpe_reads_the_trials_through_the_view(multivariate):
    """Optuna's TPE reads a study's trials through ``Study._get_trials``: the view must be what it reads."""
    calls = []

    class Viewing(optuna.samplers.TPESampler):
        def _view(self, study):
            return compat.get_trials_view(study, lambda trials: calls.append(len(trials)) or trials)

        def sample_relative(self, study, trial, search_space):
            return super().sample_relative(self._view(study), trial, search_space)

        def sample_independent(self, study, trial, param_name, param_distribution):
            return super().sample_independent(self._view(study), trial, param_name, param_distribution)

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # multivariate is "experimental"
        sampler = Viewing(seed=0, n_startup_trials=2, multivariate=multivariate)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: t.suggest_float("x", 0, 1) + t.suggest_int("y", 0, 3), n_trials=4)
    assert calls, "TPE sampled without reading the trials through the view"
