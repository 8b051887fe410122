"""Ladder files: the rungs to evaluate, ordered small to large, each a kind, a model and knobs.

```yaml
description: optional text
defaults: {batch_size: 64}          # knobs applied to every rung that accepts them
rungs:
  - {name: tfidf, kind: tfidf}
  - {name: minilm-probe, kind: probe, model: sentence-transformers/all-MiniLM-L6-v2}
```
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from rightsize.errors import RightsizeError
from rightsize.rungs import RungSpec, rung_class

LADDER_KEYS = {"description", "defaults", "rungs", "search"}
RUNG_KEYS = {"name", "kind", "model"}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class Ladder:
    path: str
    description: str
    rungs: tuple[RungSpec, ...]
    search: dict[str, Any]

    def select(self, names: list[str] | None) -> "Ladder":
        """Keep only the named rungs (in ladder order); an unknown name is an error."""
        if not names:
            return self
        known = {r.name for r in self.rungs}
        missing = [n for n in names if n not in known]
        if missing:
            raise RightsizeError(f"--rungs: no rung named {missing[0]!r} in {self.path} (rungs: {', '.join(sorted(known))})")
        return Ladder(self.path, self.description, tuple(r for r in self.rungs if r.name in names), self.search)

    def __getitem__(self, name: str) -> RungSpec:
        for r in self.rungs:
            if r.name == name:
                return r
        raise KeyError(name)


def default_ladder_path() -> Path:
    return Path(str(resources.files("rightsize") / "ladders" / "default.yaml"))


def load_ladder(path: str | Path | None = None) -> Ladder:
    path = Path(path) if path is not None else default_ladder_path()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise RightsizeError(f"ladder file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RightsizeError(f"ladder file {path} cannot be read: {exc.__class__.__name__}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise RightsizeError(f"ladder file {path} is not valid YAML{where}") from None
    return parse_ladder(doc, str(path))


def parse_ladder(doc: Any, where: str) -> Ladder:
    if not isinstance(doc, dict):
        raise RightsizeError(f"{where}: a ladder must be a mapping with a 'rungs' list")
    unknown = set(doc) - LADDER_KEYS
    if unknown:
        raise RightsizeError(f"{where}: unknown key {sorted(unknown)[0]!r} (allowed: {', '.join(sorted(LADDER_KEYS))})")
    rungs = doc.get("rungs")
    if not isinstance(rungs, list) or not rungs:
        raise RightsizeError(f"{where}: 'rungs' must be a non-empty list")
    defaults = doc.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise RightsizeError(f"{where}: 'defaults' must be a mapping of knob values")
    search = doc.get("search") or {}
    if not isinstance(search, dict):
        raise RightsizeError(f"{where}: 'search' must be a mapping")
    specs, seen = [], set()
    for i, entry in enumerate(rungs):
        spec = parse_rung(entry, defaults, f"{where}: rung {i + 1}")
        if spec.name in seen:
            raise RightsizeError(f"{where}: duplicate rung name {spec.name!r}")
        seen.add(spec.name)
        specs.append(spec)
    return Ladder(where, str(doc.get("description") or ""), tuple(specs), search)


def parse_rung(entry: Any, defaults: dict[str, Any], where: str) -> RungSpec:
    if not isinstance(entry, dict):
        raise RightsizeError(f"{where}: must be a mapping with name and kind")
    name = entry.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise RightsizeError(f"{where}: 'name' must be a word of letters, digits, '.', '_' or '-', got {name!r}")
    where = f"{where} ({name})"
    kind = entry.get("kind")
    if not isinstance(kind, str):
        raise RightsizeError(f"{where}: 'kind' is required")
    cls = rung_class(kind, where)
    model = entry.get("model")
    if cls.needs_model and not (isinstance(model, str) and model.strip()):
        raise RightsizeError(f"{where}: kind {kind!r} needs a 'model' (a model id or a local path)")
    if not cls.needs_model and model is not None:
        raise RightsizeError(f"{where}: kind {kind!r} takes no 'model'")
    knobs = {k: v for k, v in defaults.items() if k in cls.knobs}
    for key, value in entry.items():
        if key in RUNG_KEYS:
            continue
        if key not in cls.knobs:
            allowed = ", ".join(sorted(RUNG_KEYS | set(cls.knobs)))
            raise RightsizeError(f"{where}: unknown key {key!r} for kind {kind!r} (allowed: {allowed})")
        knobs[key] = value
    knobs = {k: cls.knobs[k].validate(k, v, where) for k, v in knobs.items()}
    return RungSpec(name=name, kind=kind, model=model, knobs=knobs)
