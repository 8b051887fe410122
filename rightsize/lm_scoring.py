"""Scoring label continuations with a causal LM: log p(option | prefix + prompt), all options at once.

A classification prompt is ``prefix`` (the instruction and label list, the same for every example)
+ ``prompt`` (shots and the text, one per example) + an option (a label's words). The naive way runs
prefix + prompt + option once per (example, label): 77 labels means 77 copies of the same prompt.
Here the work is shared instead:

* the prefix runs once and its key/value cache is reused by every example;
* each batch row holds one example's prompt followed by every option's tokens as a trie (shared
  leading tokens once), and a 4D attention mask lets each option token see the prefix, its own
  prompt and its own earlier tokens only (a tree of continuations), so one forward pass scores all
  labels of an example. An option's last token is never fed: only the logits before it are needed.

Rows are sorted by prompt length so a batch pads little, padding is masked out, and positions are
given explicitly. Models that ignore custom 4D masks would score wrongly, so the first call checks
the shared path against the naive one on a small sample and falls back to the naive path (with a
warning) if they disagree.
"""

from __future__ import annotations

import inspect
import logging
from typing import Sequence

import numpy as np

log = logging.getLogger(__name__)


class ContinuationScorer:
    """Sum of log-probabilities of each option's tokens after each prompt."""

    def __init__(self, model, device: str = "cpu", batch_size: int = 8, tolerance: float = 1e-3):
        self.model = model
        self.device = device
        self.batch_size = batch_size
        self.tolerance = tolerance  # per token, in nats, for the self-check
        params = inspect.signature(model.forward).parameters
        # transformers renamed ``past_key_values`` to ``cache``; accept either.
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        self._keep_arg = "logits_to_keep" in params
        self.kv_reuse: bool | None = None  # decided by the first call's self-check
        self.forward_tokens = 0  # tokens fed through the model (a measured fact for the record)

    def score(self, prefix: Sequence[int], prompts: Sequence[Sequence[int]],
              options: Sequence[Sequence[int]]) -> np.ndarray:
        """(len(prompts), len(options)) summed log-probabilities of each option after each prompt."""
        if not options or any(len(o) == 0 for o in options):
            raise ValueError("every option needs at least one token")
        if any(len(p) == 0 for p in prompts) and len(prefix) == 0:
            raise ValueError("an empty prompt needs a non-empty prefix to condition on")
        if len(prompts) == 0:
            return np.zeros((0, len(options)))
        if self.kv_reuse is None:
            self.kv_reuse = self._self_check(prefix, prompts, options)
        if self.kv_reuse:
            return self.score_shared(prefix, prompts, options)
        return self.score_naive(prefix, prompts, options)

    # ------------------------------------------------------------------ shared prefix + option tree

    def score_shared(self, prefix: Sequence[int], prompts: Sequence[Sequence[int]],
                     options: Sequence[Sequence[int]]) -> np.ndarray:
        import torch

        out = np.zeros((len(prompts), len(options)), dtype=np.float64)
        tree = _Tree(options)
        with torch.inference_mode():
            prefix_kv, prefix_last = self._run_prefix(prefix)
            order = np.argsort([-len(p) for p in prompts], kind="stable")
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                out[rows] = self._score_rows([prompts[i] for i in rows], prefix_kv, prefix_last, len(prefix), tree)
        return out

    def _run_prefix(self, prefix: Sequence[int]):
        """Key/value tensors per layer and the last logits of the prefix (None, None if empty)."""
        import torch

        if len(prefix) == 0:
            return None, None
        ids = torch.tensor([list(prefix)], device=self.device)
        result = self.model(input_ids=ids, use_cache=True)
        self.forward_tokens += len(prefix)
        cache = getattr(result, "cache", None) or getattr(result, "past_key_values", None)
        kv = [(layer.keys, layer.values) for layer in cache.layers]
        return kv, result.logits[0, -1].float()

    def _score_rows(self, prompts: list[Sequence[int]], prefix_kv, prefix_last, p: int, tree: "_Tree") -> np.ndarray:
        import torch
        from transformers import DynamicCache

        b = len(prompts)
        lengths = np.array([len(x) for x in prompts])
        width = int(lengths.max())
        t = tree.size
        q = width + t
        ids = torch.zeros((b, q), dtype=torch.long)
        pos = torch.zeros((b, q), dtype=torch.long)
        allow = torch.zeros((b, 1, q, p + q), dtype=torch.bool)
        allow[..., :p] = True  # everyone sees the shared prefix
        causal = torch.tril(torch.ones((width, width), dtype=torch.bool))
        tree_ids = torch.tensor(tree.tokens, dtype=torch.long)
        tree_mask = torch.from_numpy(tree.mask)
        for r, n in enumerate(lengths):
            ids[r, :n] = torch.tensor(list(prompts[r]), dtype=torch.long)
            pos[r, :width] = p + torch.arange(width)
            pos[r, width:] = p + int(n) + torch.from_numpy(tree.offset)
            allow[r, 0, :width, p : p + width] = causal
            allow[r, 0, n:width, p:] = False  # padding sees only itself (a fully masked row is NaN)
            allow[r, 0, torch.arange(n, width), p + torch.arange(n, width)] = True
            allow[r, 0, width:, p : p + n] = True  # options see the real prompt
            allow[r, 0, width:, p + width :] = tree_mask
        if t:
            ids[:, width:] = tree_ids
        dtype = next(self.model.parameters()).dtype
        mask = torch.zeros(allow.shape, dtype=dtype if dtype.is_floating_point else torch.float32)
        mask.masked_fill_(~allow, torch.finfo(mask.dtype).min)
        kwargs = {}
        if prefix_kv is not None:
            kwargs[self._cache_arg] = DynamicCache(
                ddp_cache_data=[(k.expand(b, -1, -1, -1), v.expand(b, -1, -1, -1)) for k, v in prefix_kv])
        # Logits are needed only where a prompt ends and along the tree: skip the vocabulary
        # projection of every other position (it dominates memory with a 49k vocabulary).
        ends = np.clip(lengths - 1, 0, None)
        keep = np.unique(np.concatenate([ends, width + np.arange(t)]))
        if self._keep_arg:
            kwargs["logits_to_keep"] = torch.from_numpy(keep).to(self.device)
        result = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                            position_ids=pos.to(self.device), use_cache=True, **kwargs)
        self.forward_tokens += b * q
        logits = result.logits
        column = np.full(q, -1, dtype=np.int64)  # sequence position -> column of the kept logits
        column[keep if self._keep_arg else np.arange(q)] = np.arange(len(keep) if self._keep_arg else q)
        logz = torch.logsumexp(logits.float(), dim=-1)  # (b, kept)
        dev = logits.device
        first = torch.tensor([o[0] for o in tree.options], device=dev)
        step_cols = torch.from_numpy(column[width + tree.step_pos]).to(dev)
        step_targets = torch.from_numpy(tree.step_target).to(dev)
        step_owner = torch.from_numpy(tree.step_owner).to(dev)
        out = np.zeros((b, len(tree.options)))
        for r, n in enumerate(lengths):
            if n == 0:  # the prefix's own last logits predict the first option token
                first_lp = prefix_last[first] - torch.logsumexp(prefix_last, dim=-1)
            else:
                col = int(column[n - 1])
                first_lp = logits[r, col, first].float() - logz[r, col]
            total = first_lp.double()
            if tree.size:
                later = logits[r, step_cols, step_targets].float() - logz[r, step_cols]
                total = total.index_add(0, step_owner, later.double())
            out[r] = total.cpu().numpy()
        return out

    # ------------------------------------------------------------------ naive reference

    def score_naive(self, prefix: Sequence[int], prompts: Sequence[Sequence[int]],
                    options: Sequence[Sequence[int]]) -> np.ndarray:
        """Every (prompt, option) pair as its own padded sequence: slow, simple, model-agnostic."""
        import torch

        pairs = [(i, j) for i in range(len(prompts)) for j in range(len(options))]
        out = np.zeros((len(prompts), len(options)), dtype=np.float64)
        with torch.inference_mode():
            for start in range(0, len(pairs), self.batch_size):
                chunk = pairs[start : start + self.batch_size]
                seqs = [list(prefix) + list(prompts[i]) + list(options[j]) for i, j in chunk]
                width = max(len(s) for s in seqs)
                ids = torch.zeros((len(seqs), width), dtype=torch.long)
                att = torch.zeros((len(seqs), width), dtype=torch.long)
                for r, s in enumerate(seqs):
                    ids[r, : len(s)] = torch.tensor(s)
                    att[r, : len(s)] = 1
                logits = self.model(input_ids=ids.to(self.device), attention_mask=att.to(self.device)).logits.float()
                self.forward_tokens += int(att.sum())
                logp = torch.log_softmax(logits, dim=-1)
                for r, (i, j) in enumerate(chunk):
                    m, n = len(options[j]), len(seqs[r])
                    targets = torch.tensor(options[j], device=logp.device)
                    steps = torch.arange(n - m - 1, n - 1, device=logp.device)
                    out[i, j] = float(logp[r, steps, targets].sum())
        return out

    def _self_check(self, prefix, prompts, options) -> bool:
        """Does this model honour the custom mask? Compare both paths on a small sample."""
        sample_prompts = list(prompts[:2])
        sample_options = list(options[:3])
        try:
            shared = self.score_shared(prefix, sample_prompts, sample_options)
        except Exception as exc:  # noqa: BLE001 — any model that cannot take the tree uses the naive path
            log.warning("prefix/tree scoring is not supported by this model (%s: %s); scoring every label "
                        "separately (slower)", exc.__class__.__name__, str(exc).splitlines()[0] if str(exc) else "")
            return False
        naive = self.score_naive(prefix, sample_prompts, sample_options)
        per_token = np.abs(shared - naive) / np.array([len(o) for o in sample_options])[None, :]
        if float(per_token.max()) > self.tolerance:
            log.warning("prefix/tree scoring disagrees with plain scoring on this model (%.3g nats per token); "
                        "scoring every label separately (slower)", float(per_token.max()))
            return False
        return True


class _Tree:
    """The options as a trie of tokens: each option's tokens except its last, shared prefixes once.

    Labels often share words ("card arrival", "card linking"): their common tokens are fed once.
    Block token i is the trie node for one option prefix; ``mask[i, j]`` says node i may attend to
    node j (its ancestors and itself). The logits at node ``step_pos[s]`` score token
    ``step_target[s]`` of option ``step_owner[s]``.
    """

    def __init__(self, options: Sequence[Sequence[int]]):
        self.options = [list(o) for o in options]
        node_of: dict[tuple[int, ...], int] = {}
        tokens, offset, parent = [], [], []
        step_pos, step_target, step_owner = [], [], []
        for o, option in enumerate(self.options):
            for k in range(len(option) - 1):
                key = tuple(option[: k + 1])
                if key not in node_of:
                    node_of[key] = len(tokens)
                    tokens.append(option[k])
                    offset.append(k)
                    parent.append(node_of[key[:-1]] if k else -1)
                step_pos.append(node_of[key])
                step_target.append(option[k + 1])
                step_owner.append(o)
        self.tokens = tokens
        self.size = len(tokens)
        self.offset = np.array(offset, dtype=np.int64)
        self.step_pos = np.array(step_pos, dtype=np.int64)
        self.step_target = np.array(step_target, dtype=np.int64)
        self.step_owner = np.array(step_owner, dtype=np.int64)
        self.mask = np.eye(self.size, dtype=bool)
        for i in range(self.size):  # parents come before children: copy the parent's row
            if parent[i] >= 0:
                self.mask[i] |= self.mask[parent[i]]
