"""Static token embeddings distilled from a sentence encoder (the model2vec recipe), offline.

Every token of the encoder's vocabulary goes through the encoder once, between the tokenizer's own
special tokens (``[CLS] token [SEP]``), and its output is mean-pooled into one vector per token; a
PCA reduces the vectors to ``pca_dims``, and Zipf/SIF weighting (``sif / (sif + p(rank))``, the
token id as a frequency rank) scales down frequent tokens. The result is a
:class:`model2vec.StaticModel` over the encoder's own tokenizer: a text's vector is the mean of its
tokens' vectors, a table look-up instead of a transformer. The pooled token vectors (the costly
step) go through the encoder's embedding cache when it has one, so static models that differ only
in PCA width or SIF weighting share one pass, each charged its stored cost.

Why this step is written here instead of calling ``model2vec.distill``: in model2vec 0.10 that
module needs its ``distill`` extra, which pins ``transformers<5.4`` (rightsize runs 5.x) and adds
``skeletoken`` (a tokenizer-surgery package rightsize does not install); without it the import
fails. Inference, saving and loading stay model2vec's (``StaticModel``, safetensors + JSON). What
differs from model2vec's own distillation: the tokenizer is kept as it is (model2vec rebuilds it
to drop BERT's ``[unused]`` placeholder tokens; here their rows are zero and they take no part in
the PCA or the ranks, which gives the same vectors for every token a text can produce).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from rightsize.errors import RightsizeError

if TYPE_CHECKING:
    from model2vec import StaticModel

    from rightsize.encoder import Encoder

log = logging.getLogger(__name__)

UNUSED_TOKEN = re.compile(r"\[unused\d+\]")  # BERT's placeholders: never produced from text
DISTILL_BATCH = 512  # token sequences per forward pass (each 3 tokens long: a batch is small)
TOKEN_VECTORS = "static token vectors, mean-pooled"  # their recipe, in the cache's namespace


def distill_static(encoder: "Encoder", *, pca_dims: int | None, sif_coefficient: float | None,
                   max_length: int | None, progress: bool = False) -> "StaticModel":
    """A static model from a loaded ``encoder``: one vector per vocabulary token (see the module)."""
    from model2vec import StaticModel

    tokenizer = encoder.st.tokenizer
    backend = tokenizer.backend_tokenizer
    vocabulary = backend.get_vocab()
    size = len(vocabulary)
    if sorted(vocabulary.values()) != list(range(size)):
        raise RightsizeError(f"model {encoder.model_id!r}: its vocabulary ids are not 0..{size - 1}; "
                             f"a static model needs one row per id")
    tokens = sorted(vocabulary, key=vocabulary.__getitem__)
    kept = np.array([not UNUSED_TOKEN.fullmatch(t) for t in tokens])
    prefix, suffix = _special_tokens(tokenizer)
    pooled = cached_token_vectors(encoder, np.flatnonzero(kept), prefix, suffix, progress)
    reduced = pca(pooled, pca_dims)
    reduced *= sif_weights(len(reduced), sif_coefficient)[:, None]
    vectors = np.zeros((size, reduced.shape[1]), dtype=np.float32)
    vectors[kept] = reduced
    config = {"model_type": "model2vec", "architectures": ["StaticModel"], "tokenizer_name": encoder.model_id,
              "apply_pca": pca_dims, "sif_coefficient": sif_coefficient, "hidden_dim": int(vectors.shape[1]),
              "seq_length": 1_000_000, "pooling": "mean", "tokens_distilled": int(kept.sum()),
              "encoder_params": int(encoder.params)}
    return StaticModel(vectors=vectors, tokenizer=backend, config=config, normalize=True,
                       base_model_name=Path(encoder.model_id).name, max_length=max_length)


def cached_token_vectors(encoder: "Encoder", ids: np.ndarray, prefix: Sequence[int], suffix: Sequence[int],
                         progress: bool = False) -> np.ndarray:
    """:func:`token_vectors` through the encoder's embedding cache, when it has one: configs that
    differ only in what comes after (PCA width, SIF weighting, the head) run the vocabulary through
    the encoder once, and each is charged that pass's stored cost (the cache's energy rule)."""
    width = len(prefix) + 1 + len(suffix)

    def compute(todo: np.ndarray, out: np.ndarray) -> np.ndarray:
        out[todo] = token_vectors(encoder, ids[todo], prefix, suffix, progress)
        return np.full(len(todo), width)

    recipe = {"vectors": TOKEN_VECTORS, "prefix": list(prefix), "suffix": list(suffix), "batch": DISTILL_BATCH}
    hidden = encoder.st[0].model.config.hidden_size
    return encoder.derived_vectors(recipe, [str(i) for i in ids], hidden, compute)


def token_vectors(encoder: "Encoder", ids: np.ndarray, prefix: Sequence[int], suffix: Sequence[int],
                  progress: bool = False) -> np.ndarray:
    """Each token id between ``prefix`` and ``suffix`` through the encoder's transformer, its
    outputs mean-pooled (float32, one row per id, in the order given)."""
    import torch

    from rightsize.encoder import progress_bar

    model = encoder.st[0].model
    device = next(model.parameters()).device
    width = len(prefix) + 1 + len(suffix)
    out = np.empty((len(ids), model.config.hidden_size), dtype=np.float32)
    bar = progress_bar(len(ids), f"distill {encoder.model_id.split('/')[-1]}", progress)
    with torch.inference_mode():
        for start in range(0, len(ids), DISTILL_BATCH):
            batch = ids[start : start + DISTILL_BATCH]
            input_ids = torch.empty((len(batch), width), dtype=torch.long)
            input_ids[:, : len(prefix)] = torch.tensor(prefix, dtype=torch.long)
            input_ids[:, len(prefix)] = torch.from_numpy(batch.astype(np.int64))
            input_ids[:, len(prefix) + 1 :] = torch.tensor(suffix, dtype=torch.long)
            hidden = model(input_ids=input_ids.to(device),
                           attention_mask=torch.ones_like(input_ids, device=device)).last_hidden_state
            out[start : start + len(batch)] = hidden.float().mean(dim=1).cpu().numpy()
            bar.update(len(batch))
    bar.close()
    return out


def pca(vectors: np.ndarray, dims: int | None) -> np.ndarray:
    """``vectors`` centred and projected on their ``dims`` principal axes (all of them when more than
    there are; ``vectors`` as they are when None), each axis's sign fixed so the result does not
    depend on the solver."""
    if dims is None:
        return vectors.astype(np.float32)
    n, width = vectors.shape
    keep = min(dims, width, n - 1)
    if keep < dims:
        log.info("pca_dims %d is more than the %d dimensions the vectors have; keeping %d", dims, width, keep)
    centred = vectors.astype(np.float64) - vectors.mean(axis=0, dtype=np.float64)
    values, axes = np.linalg.eigh(centred.T @ centred)
    axes = axes[:, np.argsort(values)[::-1][:keep]]
    scores = centred @ axes
    signs = np.sign(scores[np.abs(scores).argmax(axis=0), np.arange(keep)])
    return (scores * np.where(signs == 0, 1.0, signs)).astype(np.float32)


def sif_weights(n: int, sif_coefficient: float | None) -> np.ndarray:
    """``sif / (sif + p)`` per rank, ``p`` Zipf's law over ``n`` ranks (ones when ``sif`` is None)."""
    if sif_coefficient is None:
        return np.ones(n, dtype=np.float32)
    inverse_rank = 1.0 / np.arange(2, n + 2)
    probability = inverse_rank / inverse_rank.sum()
    return (sif_coefficient / (sif_coefficient + probability)).astype(np.float32)


def _special_tokens(tokenizer) -> tuple[list[int], list[int]]:
    """The ids the tokenizer puts before and after a single text (``[CLS]`` and ``[SEP]`` for BERT)."""
    word = "a"
    bare = tokenizer(word, add_special_tokens=False)["input_ids"]
    full = tokenizer(word, add_special_tokens=True)["input_ids"]
    for i in range(len(full) - len(bare) + 1):
        if full[i : i + len(bare)] == bare:
            return list(full[:i]), list(full[i + len(bare) :])
    raise RightsizeError("cannot tell the tokenizer's special tokens from a text's own")
