"""A sentence encoder fine-tuned end to end on the train split: mean pooling + a linear head.

``method: full`` trains every weight; ``method: lora`` trains low-rank adapters on the attention's
query and value projections (through ``peft``) plus the head, and merges them into the weights
after training, so inference costs what the plain encoder costs. The head starts where a linear
probe on the frozen encoder ends (LP-FT; see ``_start_from_probe``). ``layers`` cuts the encoder
before training: a fine-tuned 3-layer MiniLM is a right-sizing option of its own. The training
loop is :mod:`rightsize.training`; the model is loaded as every encoder rung loads it
(:class:`~rightsize.encoder.Encoder`: offline, safe weights, attention kernel, layers), in fp32
(``precision: bf16`` is autocast), and never through the embedding cache (its weights change).

The search can watch the fine-tune between epochs: set ``rung.on_epoch`` (a
:data:`~rightsize.training.EpochHook`) before ``fit``; it is called after each epoch with the
rung's ``predict``, and may raise :class:`~rightsize.training.StopTraining` to end training there
or any other exception to abandon the fit (the evaluator records it as failed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rightsize.encoder import Encoder
from rightsize.token_batches import PackedTokens
from rightsize.errors import RightsizeError
from rightsize.model_facts import facts_of
from rightsize.models import count_parameters, read_json
from rightsize.rungs import register
from rightsize.rungs.base import Knob, Rung, RungSpec
from rightsize.rungs.encoder_rung import ENCODER_KNOBS
from rightsize.threads import set_threads
from rightsize.training import (PRECISIONS, EpochHook, TrainSettings, deterministic, predict_logits,
                                seed_everything, train)

METHODS = ("full", "lora")
LEARNING_RATES = {"full": 5e-5, "lora": 5e-4}  # the method's default (LoRA's adapters start at zero)
# Encoder families peft's own table (TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING) lacks:
# their attention's query and value projections, by module name.
ENCODER_LORA_TARGETS = {"mpnet": ["q", "v"], "distilbert": ["q_lin", "v_lin"]}
PROBE_C = 1.0  # the starting probe's inverse regularization (on unnormalized mean-pooled states)
STATE_FILE = "finetune.json"
FORMAT = 1
LORA = ("method", "lora")


def lora_targets(model_type: str | None) -> list[str] | None:
    """The modules LoRA adapts for an architecture (config ``model_type``), or None when unknown."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as PEFT_TARGETS

    targets = ENCODER_LORA_TARGETS.get(model_type) or PEFT_TARGETS.get(model_type)
    return list(targets) if isinstance(targets, (list, tuple)) else None


def _model_type(model: str) -> str | None:
    return facts_of(model).config.get("model_type")


@register
class FinetuneRung(Rung):
    kind = "finetune"
    needs_model = True
    trained = True
    knobs = {
        **ENCODER_KNOBS,
        "batch_size": Knob(int, 32, min=1, max=8192, help="texts per training step (and per inference batch)"),
        "precision": Knob(str, "fp32", choices=PRECISIONS, help="fp32 | bf16 (autocast; weights stay fp32)"),
        "method": Knob(str, "full", choices=METHODS, help="full: every weight | lora: low-rank adapters + head"),
        "epochs": Knob(int, 3, min=1, max=100, help="passes over the train split"),
        "learning_rate": Knob(float, None, min=1e-7, max=1.0, nullable=True,
                              help="peak AdamW learning rate (default: 5e-5 full, 5e-4 lora)"),
        "lora_r": Knob(int, 8, min=1, max=1024, only_if=LORA, help="rank of the LoRA adapters"),
        "lora_alpha": Knob(float, None, min=1e-3, max=1e4, nullable=True, only_if=LORA,
                           help="LoRA scale numerator (default: 2 x lora_r)"),
        "lora_dropout": Knob(float, 0.1, min=0.0, max=0.9, only_if=LORA, help="dropout on the adapters' input"),
    }

    def __init__(self, spec: RungSpec, context, meter=None):
        super().__init__(spec, context, meter)
        self.on_epoch: EpochHook | None = None  # set by the search before fit() (module docstring)
        self.encoder: Encoder | None = None
        self.model = None
        self.classes: list[str] = []
        self._report: dict[str, Any] = {}
        self._adapter: dict | None = None  # LoRA: the trained adapter weights, before the merge
        self._trainable = 0

    @classmethod
    def preflight(cls, spec: RungSpec) -> None:
        if spec.knobs.get("method", cls.knobs["method"].default) != "lora":
            return
        model_type = _model_type(spec.model)
        if lora_targets(model_type) is None:
            raise RightsizeError(f"rung {spec.name}: LoRA has no known target modules for architecture "
                                 f"{model_type!r} of model {spec.model!r}; use method: full")

    # ------------------------------------------------------------------ load

    def load(self) -> None:
        set_threads(self.k["threads"])
        self.preflight(self.spec)
        self.encoder = Encoder(
            self.spec.model, device=self.context.device, precision="fp32", batch_size=self.k["batch_size"],
            max_length=self.k["max_length"], layers=self.k["layers"],
            attn_implementation=self.k["attn_implementation"], progress=self.context.progress,
            trust_remote_code=self.context.trust_remote_code, allow_pickle=self.context.allow_pickle,
            threads=self.k["threads"])
        self.encoder.load()  # layers are cut here, before any training

    @property
    def backbone(self):
        return self.encoder.st[0].model

    def _settings(self) -> TrainSettings:
        rate = self.k["learning_rate"] or LEARNING_RATES[self.k["method"]]
        return TrainSettings(epochs=self.k["epochs"], learning_rate=rate, batch_size=self.k["batch_size"],
                             precision=self.k["precision"], device=self.context.device, seed=self.context.seed,
                             progress=self.context.progress, name=self.spec.name)

    def _build(self, n_classes: int):
        """The classifier over the loaded encoder: LoRA-wrapped for method lora, a new head."""
        backbone = self.backbone
        if self.k["method"] == "lora":
            from peft import LoraConfig, get_peft_model

            targets = lora_targets(getattr(backbone.config, "model_type", None)) or []
            names = {name.rsplit(".", 1)[-1] for name, _ in backbone.named_modules()}
            if not set(targets) & names:
                raise RightsizeError(f"model {self.spec.model!r} has none of LoRA's target modules {targets}")
            r = self.k["lora_r"]
            config = LoraConfig(r=r, lora_alpha=self.k["lora_alpha"] or 2.0 * r, lora_dropout=self.k["lora_dropout"],
                                target_modules=targets, bias="none")
            backbone = get_peft_model(backbone, config)
        from rightsize.classifier import MeanPoolClassifier

        return MeanPoolClassifier(backbone, n_classes)

    # ------------------------------------------------------------------ fit / predict

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> None:
        self.classes = sorted(set(labels))
        index = {c: i for i, c in enumerate(self.classes)}
        targets = np.array([index[label] for label in labels], dtype=np.int64)
        settings = self._settings()
        seed_everything(settings.seed)  # the adapters' first weights, dropout
        self.model = self._build(len(self.classes))
        self._trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        tokens = PackedTokens.of(self.encoder.st.tokenizer, texts, self.encoder.max_length)
        with deterministic(settings.device):
            self._start_from_probe(tokens, targets)
            report = train(self.model, tokens, targets, settings, on_epoch=self.on_epoch, predict=self.predict)
        self._report = report.as_dict()
        if self.k["method"] == "lora":
            from peft import get_peft_model_state_dict

            self._adapter = {k: v.detach().clone() for k, v in get_peft_model_state_dict(self.model.backbone).items()}
            self._merge()

    def _start_from_probe(self, tokens: PackedTokens, targets: np.ndarray) -> None:
        """Start the head where a linear probe on the frozen encoder ends (LP-FT, Kumar et al. 2022):
        a random head's first steps push large, uninformed gradients into the pretrained weights,
        and at the learning rates that keep those weights intact it learns too slowly."""
        from sklearn.linear_model import LogisticRegression

        pooled = predict_logits(self.model, tokens, self.k["batch_size"], self.k["precision"], self.context.device,
                                call=self.model.pool)
        probe = LogisticRegression(C=PROBE_C, max_iter=1000).fit(pooled, targets)
        self.model.start_head_at(probe.coef_, probe.intercept_)

    def _merge(self) -> None:
        """LoRA: fold the adapters into the weights they adapt (inference then costs the plain encoder's)."""
        self.model.backbone = self.model.backbone.merge_and_unload()

    def _logits(self, texts: Sequence[str]) -> np.ndarray:
        if self.model is None:
            raise RuntimeError("FinetuneRung.predict called before fit() or restore()")
        tokens = PackedTokens.of(self.encoder.st.tokenizer, texts, self.encoder.max_length)
        return predict_logits(self.model, tokens, self.k["batch_size"], self.k["precision"], self.context.device)

    def predict(self, texts: Sequence[str]) -> list[str]:
        return [self.classes[i] for i in self._logits(texts).argmax(axis=1)] if len(texts) else []

    def predict_proba(self, texts: Sequence[str]):
        from rightsize.calibration import softmax

        if not len(texts):
            return list(self.classes), np.zeros((0, len(self.classes)))
        return list(self.classes), softmax(self._logits(texts).astype(np.float64))

    # ------------------------------------------------------------------ facts

    def n_params(self) -> int:
        return count_parameters(self.model if self.model is not None else self.encoder.st)

    def facts(self) -> dict[str, Any]:
        return {"method": self.k["method"], "trainable_params": self._trainable, "total_params": self.n_params(),
                "layers": getattr(self.backbone.config, "num_hidden_layers", None),
                "max_length": self.encoder.max_length, "attn_implementation": self.encoder.attn_used,
                "precision": self.k["precision"]}

    def training(self) -> dict[str, Any]:
        return dict(self._report)

    # ------------------------------------------------------------------ artifacts

    def save(self, folder: Path) -> None:
        """full: every weight (model.safetensors); lora: the adapters (adapter.safetensors) and the
        head (head.safetensors), merged again on restore; finetune.json: the labels and settings."""
        from safetensors.torch import save_file, save_model

        if self.model is None:
            raise RuntimeError("FinetuneRung.save called before fit()")
        if self._adapter is None:
            save_model(self.model, str(folder / "model.safetensors"))
            files = ["model.safetensors"]
        else:
            save_file({k: v.contiguous() for k, v in self._adapter.items()}, str(folder / "adapter.safetensors"))
            save_file({k: v.contiguous() for k, v in self.model.head.state_dict().items()},
                      str(folder / "head.safetensors"))
            files = ["adapter.safetensors", "head.safetensors"]
        state = {"format": FORMAT, "kind": self.kind, "model": self.spec.model, "method": self.k["method"],
                 "labels": self.classes, "files": files, "trainable_params": self._trainable,
                 "training": self._report}
        (folder / STATE_FILE).write_text(json.dumps(state, indent=1), encoding="utf-8")

    def restore(self, folder: Path) -> None:
        from safetensors.torch import load_file, load_model

        state = read_json(folder / STATE_FILE)
        if not isinstance(state, dict) or state.get("format") != FORMAT or state.get("kind") != self.kind:
            raise RightsizeError(f"{folder / STATE_FILE}: not a finetune artifact of format {FORMAT}")
        if state.get("method") != self.k["method"]:
            raise RightsizeError(f"{folder / STATE_FILE}: method {state.get('method')!r}, this rung's is "
                                 f"{self.k['method']!r}")
        labels = state.get("labels")
        if not isinstance(labels, list) or not labels or not all(isinstance(c, str) for c in labels):
            raise RightsizeError(f"{folder / STATE_FILE}: 'labels' must be a non-empty list of label names")
        self.classes = labels
        self.model = self._build(len(labels))
        self._trainable = int(state.get("trainable_params") or 0)
        try:
            if self.k["method"] == "full":
                load_model(self.model, str(folder / "model.safetensors"), strict=True)
            else:
                self._restore_adapter(load_file(str(folder / "adapter.safetensors")))
                self.model.head.load_state_dict(load_file(str(folder / "head.safetensors")), strict=True)
        except (OSError, RuntimeError, KeyError, ValueError) as exc:
            raise RightsizeError(f"{folder}: the saved weights do not fit this rung's model "
                                 f"({exc.__class__.__name__}: {str(exc).splitlines()[0][:200]})") from None
        if self.k["method"] == "lora":
            self._merge()
        self.model.eval()
        self._report = {**(state.get("training") or {}), "restored": True}

    def _restore_adapter(self, weights: dict) -> None:
        from peft import get_peft_model_state_dict, set_peft_model_state_dict

        expected = set(get_peft_model_state_dict(self.model.backbone))
        if set(weights) != expected:
            missing = sorted(expected - set(weights)) or sorted(set(weights) - expected)
            raise KeyError(f"adapter weights differ from the model's LoRA modules ({missing[0]})")
        self._adapter = weights
        set_peft_model_state_dict(self.model.backbone, weights)

    def close(self) -> None:
        self.model = None
        if self.encoder is not None:
            self.encoder.close()

