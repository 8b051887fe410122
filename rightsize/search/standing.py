"""What the study knows so far, read from its trials: their records, the configs they evaluated,
and the standing (the incumbent, the best config, the cost rates measured, the encoders run)."""

from __future__ import annotations

from optuna.trial import TrialState

from rightsize.adequacy import comparable, judge
from rightsize.cost_model import CostModel, settings_of
from rightsize.records import Record
from rightsize.search.request import EVALUATED

RECORD_ATTR = "rightsize:record"  # the trial's full record (system attribute: kept out of dashboards)


def stored_record(record: Record) -> dict:
    """What a trial stores under RECORD_ATTR: the record's JSON object."""
    return {k: v for k, v in record.to_dict().items() if not k.startswith("_")}


def trial_record(trial) -> Record | None:
    """The record a trial stored (:func:`stored_record`), if it stored one with a key."""
    stored = trial.system_attrs.get(RECORD_ATTR)
    if not isinstance(stored, dict) or "key" not in stored:
        return None
    return Record.from_dict(stored, f"trial {trial.number} of the study")


def study_records(study, trials: list | None = None) -> list[Record]:
    """The records of the study's trials (every worker's), one per config key, in trial order."""
    out: dict[str, Record] = {}
    for t in study.get_trials(deepcopy=False) if trials is None else trials:
        record = trial_record(t)
        if record is not None:
            out.setdefault(record.key, record)
    return list(out.values())


def evaluated_keys(study, trials: list | None = None) -> set[str]:
    """Config keys of the study's finished trials that evaluated (or reused) a config."""
    finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    trials = study.get_trials(deepcopy=False) if trials is None else trials
    return {t.user_attrs["config_key"] for t in trials
            if t.state in finished and t.user_attrs.get("outcome") in EVALUATED and "config_key" in t.user_attrs}


def searched_of(trials: list, key: str) -> dict | None:
    """The searched knob values of the trial that evaluated config ``key``."""
    for t in trials:
        if t.user_attrs.get("config_key") == key and isinstance(t.user_attrs.get("searched"), dict):
            return t.user_attrs["searched"]
    return None


class Standing:
    """What the search knows at one moment: the cheapest adequate config (the incumbent), the cost
    rates measured, and which encoder configurations have already run."""

    def __init__(self, records: list[Record], target, metric: str, cost=None, cost_range=None,
                 adjust: str = "none"):
        from rightsize.recommend import spec_from_config

        self.cost = CostModel()
        self._encoders: set[tuple] = set()
        for r in records:
            if r.status in ("ok", "pruned"):
                spec = spec_from_config(r.rung, r.config)
                self.cost.observe(spec, r)
                self._encoders.add(_encoder_identity(spec))
        # The same correction as the search's recommendation: else the search could stop on a config
        # that its own answer, corrected over the configs compared, does not find adequate.
        judgement = judge(comparable([r for r in records if r.ok]), target, metric, cost=cost, cost_range=cost_range,
                          adjust=adjust)
        self.incumbent = judgement.cheapest_adequate
        self.best = judgement.best

    def encoder_done(self, spec) -> bool:
        return spec.model is not None and _encoder_identity(spec) in self._encoders


def _encoder_identity(spec) -> tuple:
    """What makes two configs share an encoding (and the embedding cache): model, depth, run settings."""
    return (spec.model, spec.knobs.get("layers"), settings_of(spec))
