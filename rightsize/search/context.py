"""SearchContext: what one worker's search holds fixed from start to end (the request, the task and
its data, the space, how configs are evaluated and keyed, the target), shared by its parts."""

from __future__ import annotations

from rightsize.evaluate import EvalPlan, evaluation_key, task_identity
from rightsize.search.request import SearchRequest
from rightsize.session import TaskRun
from rightsize.search.workers import worker_id
from rightsize.space import SearchSpace


class SearchContext:
    """The fixed facts of one worker's search, and the evaluation key of a config."""

    def __init__(self, request: SearchRequest, run: TaskRun, space: SearchSpace, steps):
        task, data = run.task, run.data
        self.request, self.task, self.data, self.space, self.run_log = request, task, data, space, run.run_log
        self.steps = steps
        self.metric = task.metric
        self.target = task.target  # a rightsize.adequacy.Target
        self.plan = EvalPlan(split="validation", limit=request.limit, train_limit=request.train_limit)
        self.run_context = run.context  # evaluations use seed 0, as `rightsize evaluate` (see run_search)
        self.ident = task_identity(data)
        self.run_id = run.run_id
        self.artifacts = run.artifacts
        self.worker = worker_id()
        self.ladder = [(r, self.key_of(r.base)) for r in space.rungs]  # the ladder's rungs, with their keys
        self.ladder_keys = {key for _, key in self.ladder}
        self.objective = search_objective(request)
        self.n_train = len(data.train.texts) if request.train_limit is None else min(request.train_limit,
                                                                                     len(data.train.texts))

    @property
    def smallest(self) -> bool:
        """The objective is the smallest adequate config, per query or over a lifetime (else the
        Pareto front, without pruning)."""
        return self.request.objective != "pareto"

    def key_of(self, spec) -> str:
        """The evaluation key of a config (as in runs.jsonl)."""
        return evaluation_key(self.ident, spec, self.plan, self.run_context)


def search_objective(request: SearchRequest):
    """What "smallest" minimizes (a :class:`rightsize.recommend.Objective`): J/query, or lifetime joules."""
    from rightsize.recommend import Objective

    name = "lifetime" if request.objective == "lifetime" else "per-query"
    return Objective(name, request.queries_per_day, request.days)
