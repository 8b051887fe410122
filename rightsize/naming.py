"""Names of configs as users read them: the rung, plus the knobs that tell it from its siblings.

A search evaluates many configs of one rung (``tfidf`` at threads 1 and 2, ``l6-probe`` in bf16 at
batch 32, ...); a rung name alone does not say which one to deploy. Every place that names a config
to a user (terminal, JSON, Markdown, report, plot) takes its label from :func:`variant_labels`.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

from rightsize.records import Record

_IDENTITY = ("kind", "model")

# Rung and task names: one word that is safe as a folder name (no separators, never "." or "..").
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
NAME_RULE = "a word of letters, digits, '.', '_' or '-' that starts with a letter or digit"


def safe_name(text: str, fallback: str = "data") -> str:
    """``text`` made into a name that follows NAME_RE (other characters become '-'), or ``fallback``."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-._")
    return name if NAME_RE.match(name) else fallback


def knob_text(knobs: Mapping[str, Any]) -> str:
    """``k=5, layers=3`` (``None``, the model's own value, shown as ``-``)."""
    return ", ".join(f"{k}={'-' if v is None else v}" for k, v in knobs.items())


def normalized_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A config with every knob's default filled in, so ``{k: 10}`` written or left out compare equal."""
    from rightsize.rungs import RUNG_KINDS

    cls = RUNG_KINDS.get(config.get("kind", ""))
    defaults = {name: knob.default for name, knob in cls.knobs.items()} if cls is not None else {}
    return {**defaults, **config}


def variant_labels(records: Iterable[Record]) -> dict[str, str]:
    """``key -> label`` of records: the rung name, and where several configs share it, the knobs
    whose values differ between them, e.g. ``tfidf (threads=1)``."""
    by_rung: dict[str, dict[str, Mapping[str, Any]]] = {}
    for r in records:
        if r.key is not None:
            by_rung.setdefault(str(r.rung), {})[r.key] = normalized_config(r.config or {})
    labels: dict[str, str] = {}
    for rung, configs in by_rung.items():
        if len(configs) == 1:
            labels.update({key: rung for key in configs})
            continue
        names = sorted({k for c in configs.values() for k in c if k not in _IDENTITY})
        varying = [k for k in names if len({repr(c.get(k)) for c in configs.values()}) > 1]
        identity = [k for k in _IDENTITY if len({repr(c.get(k)) for c in configs.values()}) > 1]
        for key, config in configs.items():
            shown = {k: config.get(k) for k in identity + varying}
            if "model" in shown and isinstance(shown["model"], str):
                shown["model"] = shown["model"].rstrip("/").split("/")[-1]
            labels[key] = f"{rung} ({knob_text(shown)})" if shown else rung
    return labels


def label_of(record: Record, labels: Mapping[str, str]) -> str:
    """The record's label from ``labels``, else its rung name."""
    return labels.get(record.key, str(record.rung))
