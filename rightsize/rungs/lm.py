"""Small causal LMs as classifiers: each label's words scored by log-likelihood after a prompt.

No free text is generated or parsed: the prediction is the label whose verbalization (the label
with ``_`` and ``-`` as spaces, or ``label_words``) the model finds most likely after the prompt,
by mean log-probability per token (``normalize: sum`` for the plain sum), minus the same score
after a content-free text (``calibrate``, on by default).

* zero-shot (``shots: 0``): instruction + label list + the text;
* few-shot with retrieval (``shots: N``): the N train examples nearest to the text (FAISS over the
  ``retriever`` encoder's embeddings) are put in the prompt, nearest last. Embedding the train split
  and building the index is the fit phase; embedding the queries and searching is inside infer, so
  the retrieval's energy is part of the rung's cost (and the embedding cache's rules apply).

Weights: any causal LM folder or id; GGUF checkpoints (dequantized by transformers) are found via
``rightsize.assets.gguf_file_for`` or a single ``*.gguf`` in the folder.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rightsize.errors import RightsizeError
from rightsize.retrieval import INDEX_KINDS, build_index, index_bytes, search
from rightsize.rungs import register
from rightsize.rungs.base import Knob, Rung, RungSpec
from rightsize.rungs.encoder_rung import ENCODER_KNOBS, make_encoder
from rightsize.rungs.state import load_index, read_arrays, read_json, save_index, write_arrays, write_json
from rightsize.threads import set_threads

log = logging.getLogger(__name__)

DEFAULT_TEMPLATE = "Classify the text into one of these categories: {labels}.\n\n{shots}Text: {text}\nCategory:"
DEFAULT_RETRIEVER = "sentence-transformers/all-MiniLM-L6-v2"
LM_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


class TemplateKnob(Knob):
    """A prompt with ``{text}`` once, optionally ``{labels}`` and ``{shots}`` (before ``{text}``)."""

    def validate(self, name: str, value: Any, where: str) -> Any:
        value = super().validate(name, value, where)
        if value.count("{text}") != 1:
            raise RightsizeError(f"{where}: knob '{name}' must contain {{text}} exactly once")
        if value.count("{shots}") > 1 or ("{shots}" in value and value.index("{shots}") > value.index("{text}")):
            raise RightsizeError(f"{where}: knob '{name}' may contain {{shots}} once, before {{text}}")
        return value


class LabelWordsKnob(Knob):
    """A mapping label -> words that replaces a label's default verbalization."""

    def validate(self, name: str, value: Any, where: str) -> Any:
        value = super().validate(name, value, where)
        if value is not None:
            for label, words in value.items():
                if not isinstance(words, str) or not words.strip():
                    raise RightsizeError(f"{where}: knob '{name}': label {label!r} needs non-empty words")
        return value


def verbalize(label: str, overrides: dict[str, str] | None = None) -> str:
    """The words a label is scored by: ``lost_or_stolen_card`` -> ``lost or stolen card``."""
    if overrides and str(label) in overrides:
        return overrides[str(label)].strip()
    return " ".join(str(label).replace("_", " ").replace("-", " ").split())


def split_template(template: str) -> tuple[str, str]:
    """(head shared by every example, per-example part with ``{text}``).

    The head ends where ``{shots}`` stands, or, without it, at the start of the line holding
    ``{text}`` (where shots are then inserted).
    """
    if "{shots}" in template:
        head, query = template.split("{shots}", 1)
        return head, query
    cut = template.rfind("\n", 0, template.index("{text}")) + 1
    return template[:cut], template[cut:]


@register
class LmRung(Rung):
    kind = "lm"
    needs_model = True
    # The first predict may run the scorer's self-check, and every call adds to forward_tokens.
    repeatable_predict = False
    knobs = {
        "shots": Knob(int, 0, min=0, max=64, help="retrieved train examples in the prompt (0 = zero-shot)"),
        "retriever": Knob(str, DEFAULT_RETRIEVER, help="sentence encoder that finds the shots"),
        "index": Knob(str, "flat", choices=INDEX_KINDS, help="FAISS index of the retriever: flat | hnsw | ivf"),
        "max_length": Knob(int, 128, min=4, max=8192, help="tokens kept of each text (query and shots)"),
        "batch_size": Knob(int, 8, min=1, max=4096, help="prompts per forward pass (each with all labels)"),
        "precision": Knob(str, "fp32", choices=("fp32", "bf16", "fp16", "int8"), help="LM weights and activations"),
        "threads": Knob(int, None, min=1, max=1024, nullable=True, help="CPU threads for torch, FAISS and BLAS"),
        "template": TemplateKnob(str, DEFAULT_TEMPLATE, help="prompt with {labels}, {shots}, {text}"),
        "normalize": Knob(str, "mean", choices=("mean", "sum"), help="label log-likelihood per token or summed"),
        "label_words": LabelWordsKnob(dict, None, nullable=True, help="label -> words (default: from the label)"),
        "calibrate": Knob(bool, True, help="subtract each label's score after a content-free text ('N/A')"),
    }

    @classmethod
    def models(cls, spec: RungSpec) -> list[str]:
        shots = spec.knobs.get("shots", cls.knobs["shots"].default)
        retriever = spec.knobs.get("retriever", cls.knobs["retriever"].default)
        return [m for m in (spec.model, retriever if shots else None) if m]

    # ------------------------------------------------------------------ load

    def load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from rightsize.models import checked_folder, count_parameters

        set_threads(self.k["threads"])
        precision, device = self.k["precision"], self.context.device
        if precision == "int8" and device != "cpu":
            raise RightsizeError("precision int8 (dynamic quantization) runs on the CPU only")
        folder = checked_folder(self.spec.model, self.context.allow_pickle)
        self.gguf_file = _gguf_file(self.spec.model, folder)
        extra = {"gguf_file": self.gguf_file} if self.gguf_file else {}
        common = {"trust_remote_code": self.context.trust_remote_code, "local_files_only": True, **extra}
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder), **common)
        dtype = getattr(torch, LM_DTYPES.get(precision, "float32"))
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype, **common)
        model.eval().to(device)
        self.lm_params = count_parameters(model)  # before int8 packing hides the weights
        if precision == "int8":
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        self.model = model
        from rightsize.lm_scoring import ContinuationScorer

        # bf16/fp16 round differently on the two paths: allow more before calling the mask unsupported.
        self.scorer = ContinuationScorer(model, device, self.k["batch_size"],
                                         tolerance=1e-3 if precision in ("fp32", "int8") else 0.1)
        self.retriever = None
        if self.k["shots"]:
            knobs = {name: knob.default for name, knob in ENCODER_KNOBS.items()}
            knobs["threads"] = self.k["threads"]
            self.retriever = make_encoder(self, self.k["retriever"], knobs)
            self.retriever.load()

    # ------------------------------------------------------------------ fit / predict

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> None:
        self._prepare_prompts(sorted(set(labels)))
        self.train_texts, self.train_labels = list(texts), list(labels)
        if self.retriever is not None:
            self.index = build_index(self.retriever.encode(self.train_texts), self.k["index"], seed=self.context.seed)
        # Contextual calibration (Zhao et al. 2021): some label words are likely after any text
        # (a two-token abbreviation whose second token is predictable); their prior is removed.
        self.baseline = np.zeros(len(self.classes))
        if self.k["calibrate"]:
            self.baseline = self._scores([self._ids(self._fill("N/A"))])[0]

    def _prepare_prompts(self, classes: list[str]) -> None:
        """The prompt's shared head and per-text part, and each label's tokens to score."""
        self.classes = classes
        words = [verbalize(c, self.k["label_words"]) for c in self.classes]
        self.words = dict(zip(self.classes, words))
        self.head, self.query = split_template(self.k["template"])
        listing = ", ".join(words)
        self.head = self.head.replace("{labels}", listing)
        self.query = self.query.replace("{labels}", listing)
        self.prefix_ids = self._ids(self.head, special=True)
        space = "" if self.query.endswith((" ", "\n")) else " "
        self.option_ids = [self._ids(space + w) for w in words]
        empty = [c for c, ids in zip(self.classes, self.option_ids) if not ids]
        if empty:
            raise RightsizeError(f"label {empty[0]!r} has no tokens to score")
        self._prompt_tokens: list[int] = []

    def save(self, folder: Path) -> None:
        # The shots are train examples quoted in prompts, so the train split is part of the fitted state.
        write_json(folder, "lm", {"classes": self.classes, "train_texts": self.train_texts,
                                  "train_labels": self.train_labels})
        write_arrays(folder, "calibration", {"baseline": self.baseline})
        if self.retriever is not None:
            save_index(folder, self.index)

    def restore(self, folder: Path) -> None:
        state = read_json(folder, "lm")
        classes, texts, labels = state["classes"], state["train_texts"], state["train_labels"]
        if len(texts) != len(labels) or not set(labels) <= set(classes):
            raise ValueError("lm: train texts and labels do not match its classes")
        self._prepare_prompts([str(c) for c in classes])
        self.train_texts, self.train_labels = [str(t) for t in texts], [str(x) for x in labels]
        self.baseline = read_arrays(folder, "calibration")["baseline"]
        if self.baseline.shape != (len(self.classes),):
            raise ValueError(f"lm: calibration has {self.baseline.shape} scores for {len(self.classes)} labels")
        if self.retriever is not None:
            self.index = load_index(folder)
            if self.index.ntotal != len(self.train_texts):
                raise ValueError("lm: the retrieval index does not match the train texts")

    def predict(self, texts: Sequence[str]) -> list[str]:
        prompts = [self._prompt(text, shots) for text, shots in zip(texts, self._shots(texts))]
        ids = [self._ids(p) for p in prompts]
        self._prompt_tokens.extend(len(x) for x in ids)
        scores = self._scores(ids) - self.baseline[None, :]
        return [self.classes[i] for i in scores.argmax(axis=1)]

    def _scores(self, prompt_ids: list[list[int]]) -> np.ndarray:
        scores = self.scorer.score(self.prefix_ids, prompt_ids, self.option_ids)
        if self.k["normalize"] == "mean":
            scores = scores / np.array([len(o) for o in self.option_ids])[None, :]
        return scores

    def _shots(self, texts: Sequence[str]) -> list[list[int]]:
        """Train positions of each text's shots, nearest last (closest to the question)."""
        if self.retriever is None:
            return [[] for _ in texts]
        _, ids = search(self.index, self.retriever.encode(texts), self.k["shots"])
        return [[int(i) for i in row[::-1] if i >= 0] for row in ids]

    def _prompt(self, text: str, shots: list[int]) -> str:
        blocks = [self._fill(self.train_texts[i]) + " " + self.words[self.train_labels[i]] + "\n\n" for i in shots]
        return "".join(blocks) + self._fill(text)

    def _fill(self, text: str) -> str:
        return self.query.replace("{text}", self._truncate(text))

    def _truncate(self, text: str) -> str:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) <= self.k["max_length"]:
            return text
        return self.tokenizer.decode(ids[: self.k["max_length"]])

    def _ids(self, text: str, special: bool = False) -> list[int]:
        if not text:
            return list(self.tokenizer("", add_special_tokens=True)["input_ids"]) if special else []
        return list(self.tokenizer(text, add_special_tokens=special)["input_ids"])

    # ------------------------------------------------------------------ facts

    def n_params(self) -> int:
        return self.lm_params + (self.retriever.params if self.retriever is not None else 0)

    def facts(self) -> dict:
        facts: dict[str, Any] = {
            "lm_params": self.lm_params, "gguf_file": self.gguf_file, "kv_reuse": self.scorer.kv_reuse,
            "prefix_tokens": len(self.prefix_ids), "labels_scored": len(self.option_ids),
            "mean_prompt_tokens": float(np.mean(self._prompt_tokens)) if self._prompt_tokens else 0.0,
            "forward_tokens": self.scorer.forward_tokens,
        }
        if self.retriever is not None:
            facts.update(retriever_params=self.retriever.params, embedding_cache=self.retriever.namespace,
                         index=self.k["index"], index_bytes=index_bytes(self.index))
        return facts

    def close(self) -> None:
        self.model = None
        self.scorer = None
        if getattr(self, "retriever", None) is not None:
            self.retriever.close()
        if self.context.device == "cuda":
            import torch

            torch.cuda.empty_cache()


def _gguf_file(model: str, folder: Path) -> str | None:
    """The GGUF file to load when the folder has no safetensors weights."""
    if next(folder.glob("*.safetensors"), None) is not None:
        return None
    from rightsize.assets import gguf_file_for

    name = gguf_file_for(model)
    if name and (folder / name).exists():
        return name
    found = sorted(p.name for p in folder.glob("*.gguf"))
    if len(found) == 1:
        return found[0]
    if found:
        raise RightsizeError(f"model {model!r}: several GGUF files in {folder} ({', '.join(found)}); "
                             f"give a folder with one")
    return None
