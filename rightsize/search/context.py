"""SearchContext: what one worker's search holds fixed from start to end (the request, the task and
its data, the space, how configs are evaluated and keyed, the target), shared by its parts."""

from __future__ import annotations

from rightsize.cache import EmbeddingCache
from rightsize.evaluate import EvalPlan, evaluation_key, new_run_id, task_identity
from rightsize.results import RunLog
from rightsize.rungs import RunContext
from rightsize.search.request import SearchRequest
from rightsize.search.workers import worker_id
from rightsize.space import SearchSpace


class SearchContext:
    """The fixed facts of one worker's search, and the evaluation key of a config."""

    def __init__(self, request: SearchRequest, task, data, space: SearchSpace, run_log: RunLog, steps):
        from rightsize.recommend import target_rule

        self.request, self.task, self.data, self.space, self.run_log = request, task, data, space, run_log
        self.steps = steps
        self.metric = task.metric
        self.target = {"min": task.target.min, "within": task.target.within}
        self.rule, self.rule_value = target_rule(self.target)
        self.plan = EvalPlan(split="validation", limit=request.limit, train_limit=request.train_limit)
        # Evaluations use the seed of `rightsize evaluate` (0): the same config has the same key and
        # subsets in both commands, so their records are shared. --seed drives the sampler.
        cache = None if request.no_cache else EmbeddingCache(request.cache_dir)
        self.run_context = RunContext(device=space.device, seed=0, progress=request.progress,
                                      trust_remote_code=request.trust_remote_code,
                                      allow_pickle=request.allow_pickle, cache=cache)
        self.ident = task_identity(data)
        self.run_id = new_run_id()
        self.worker = worker_id()
        self.ladder = [(r, self.key_of(r.base)) for r in space.rungs]  # the ladder's rungs, with their keys
        self.ladder_keys = {key for _, key in self.ladder}

    @property
    def smallest(self) -> bool:
        """The objective is the smallest adequate config (else the Pareto front, without pruning)."""
        return self.request.objective == "smallest"

    def key_of(self, spec) -> str:
        """The evaluation key of a config (as in runs.jsonl)."""
        return evaluation_key(self.ident, spec, self.plan, self.run_context)
