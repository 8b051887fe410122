"""The Optuna study a worker opens (or joins): its name, its storage, the sampler and pruner of the
objective, and a check that an existing study was made for the same task, space and target."""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import asdict

import optuna

from rightsize.errors import RightsizeError
from rightsize.results import STUDY_FILE
from rightsize.search.context import SearchContext
from rightsize.search.pruner import AdequacyPruner
from rightsize.search.sampler import FreshAdequacyTPESampler, gamma
from rightsize.search.storage import masked, open_storage


def storage_url(ctx: SearchContext) -> str:
    return ctx.request.storage or f"sqlite:///{(ctx.run_log.dir / STUDY_FILE).resolve()}"


def study_name(ctx: SearchContext) -> str:
    """--study, else the task's name, the objective and a digest of what the study is for."""
    if ctx.request.study:
        return ctx.request.study
    ident = {"task": ctx.ident, "space": ctx.space.describe(), "plan": asdict(ctx.plan),
             "objective": objective_facts(ctx), "metric": ctx.metric, "target": ctx.target.record_form()}
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{ctx.task.name}-{ctx.request.objective}-{digest}"


def objective_facts(ctx: SearchContext):
    """The objective a study is for: its name, with the deployment volume for ``lifetime``."""
    return ctx.objective.to_dict() if ctx.request.objective == "lifetime" else ctx.request.objective


def open_study(ctx: SearchContext, url: str) -> optuna.Study:
    """The study in ``url``, created if new; a RightsizeError when it was made for something else."""
    request = ctx.request
    storage = open_storage(url)
    name = study_name(ctx)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TPE's multivariate/group options are "experimental"
        if request.objective == "pareto":
            sampler = optuna.samplers.NSGAIISampler(seed=request.seed,
                                                    population_size=max(4, min(20, request.trials // 2)))
            directions, pruner = ["maximize", "minimize"], optuna.pruners.NopPruner()
        else:
            # The enqueued ladder rungs are the start-up trials: TPE models from there on,
            # instead of spending more trials on random (often large and costly) configs.
            # gamma 0.25 (Hyperopt's; Optuna's 0.1 models the single best trial alone until there
            # are 15 trials): with few trials TPE also studies the configs nearest to adequate.
            sampler = FreshAdequacyTPESampler(ctx.target, ctx.metric, seed=request.seed, multivariate=True,
                                              group=True, n_startup_trials=len(ctx.space.rungs), gamma=gamma)
            directions = ["minimize"]
            pruner = AdequacyPruner(ctx.target.rule, ctx.target.value, request.min_prune_examples)
        try:
            study = optuna.create_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner,
                                        directions=directions, load_if_exists=True)
        except Exception as exc:  # noqa: BLE001 — e.g. an existing study with other directions
            raise RightsizeError(f"study {name!r} in {masked(url)}: {exc}".splitlines()[0]) from None
    facts = {"task": ctx.ident, "metric": ctx.metric, "target": ctx.target.record_form(),
             "objective": objective_facts(ctx), "space": ctx.space.describe(), "plan": asdict(ctx.plan)}
    known = study.user_attrs.get("rightsize")
    if known is None:
        study.set_user_attr("rightsize", facts)
    elif json.loads(json.dumps(known)) != json.loads(json.dumps(facts, default=str)):
        what = next((k for k in facts if json.dumps(known.get(k), default=str, sort_keys=True)
                     != json.dumps(facts[k], default=str, sort_keys=True)), "settings")
        raise RightsizeError(f"study {name!r} in {masked(url)} was created with another {what}; "
                             f"give a new --study name (or the same task, ladder and options)")
    return study
