"""Rung kinds and their registry: one module per model family, each registering one class."""

from __future__ import annotations

from rightsize.errors import RightsizeError
from rightsize.rungs.base import Knob, Rung, RunContext, RungSpec

RUNG_KINDS: dict[str, type[Rung]] = {}


def register(cls: type[Rung]) -> type[Rung]:
    """Class decorator: make a rung kind available to ladder files by its ``kind`` name."""
    if cls.kind in RUNG_KINDS:
        raise ValueError(f"rung kind {cls.kind!r} registered twice")
    RUNG_KINDS[cls.kind] = cls
    return cls


def rung_class(kind: str, where: str = "ladder") -> type[Rung]:
    try:
        return RUNG_KINDS[kind]
    except KeyError:
        known = ", ".join(sorted(RUNG_KINDS))
        raise RightsizeError(f"{where}: unknown rung kind {kind!r} (known kinds: {known})") from None


def build_rung(spec: RungSpec, context: RunContext, meter=None) -> Rung:
    return rung_class(spec.kind)(spec, context, meter)


# Importing the kind modules registers them.
from rightsize.rungs import tfidf, probe, knn, knn_probe, lm, static, distill, finetune, cascade  # noqa: E402,F401

__all__ = ["Knob", "Rung", "RunContext", "RungSpec", "RUNG_KINDS", "register", "rung_class", "build_rung"]
