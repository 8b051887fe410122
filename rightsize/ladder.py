"""Ladder files: the rungs to evaluate, ordered small to large, each a kind, a model and knobs.

```yaml
description: optional text
defaults: {batch_size: 64}          # knobs applied to every rung that accepts them
rungs:
  - {name: tfidf, kind: tfidf}
  - {name: minilm-probe, kind: probe, model: sentence-transformers/all-MiniLM-L6-v2}
search:                             # optional: the space `rightsize search` explores (see rightsize.space)
  knobs: [k, C, layers]             # knobs searched on every rung that has them
                                    #   (default: every knob with a built-in grid or a list of choices)
  fix: {precision: fp32}            # knobs held at one value on every rung that has them
  space:                            # per rung: knob -> the values to try (replaces the built-in grid)
    minilm-knn: {k: [5, 10, 20]}
  exclude: [tfidf]                  # rungs left out of the search
```

Every name in ``search`` must be a rung of the ladder or a knob of one of its rungs, and every value
must be valid for the knob; a knob cannot be both fixed and given a space.

A rung may name other rungs and files (a distillation's teacher and transfer texts): once every rung
is parsed, each kind resolves what it names (``Rung.link``), so a bad name is one line before any run.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from rightsize.errors import RightsizeError
from rightsize.naming import NAME_RE, NAME_RULE
from rightsize.rungs import RungSpec, rung_class

LADDER_KEYS = {"description", "defaults", "rungs", "search"}
RUNG_KEYS = {"name", "kind", "model", "optional"}  # optional: skip the rung when its model is absent
SEARCH_KEYS = ("knobs", "fix", "space", "exclude")


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
    return parse_ladder(doc, str(path), path.parent)


def parse_ladder(doc: Any, where: str, folder: Path | None = None) -> Ladder:
    """A ladder from its parsed YAML; ``folder`` (default: the working directory) is where paths the
    rungs name (a distillation's transfer texts) are relative to."""
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
    knobs = _knob_names(specs)
    unknown = [k for k in defaults if k not in knobs]
    if unknown:
        raise RightsizeError(f"{where}: defaults: no rung of this ladder has a knob {str(unknown[0])!r} "
                             f"(knobs: {', '.join(knobs)})")
    specs = link_rungs(specs, folder if folder is not None else Path.cwd(), where)
    return Ladder(where, str(doc.get("description") or ""), tuple(specs), parse_search(search, specs, where))


def _knob_names(specs: list[RungSpec]) -> list[str]:
    """Every knob some rung of the ladder has, sorted."""
    return sorted({k for s in specs for k in rung_class(s.kind).knobs})


def link_rungs(specs: list[RungSpec], folder: Path, where: str) -> list[RungSpec]:
    """Each rung with what it names resolved (:meth:`Rung.link`): a student's teacher becomes the
    teacher's full config, so the student's evaluation key changes with it."""
    by_name = {s.name: s for s in specs}
    return [rung_class(s.kind).link(s, by_name, folder, f"{where}: rung {i + 1} ({s.name})")
            for i, s in enumerate(specs)]


def parse_search(doc: dict[str, Any], specs: list[RungSpec], where: str) -> dict[str, Any]:
    """Validate a ladder's ``search`` block into ``{knobs, fix, space, exclude}`` (knobs: None = default)."""
    where = f"{where}: search"
    unknown = set(doc) - set(SEARCH_KEYS)
    if unknown:
        raise RightsizeError(f"{where}: unknown key {sorted(unknown)[0]!r} (allowed: {', '.join(SEARCH_KEYS)})")
    by_name = {s.name: s for s in specs}
    classes = {s.name: rung_class(s.kind) for s in specs}
    all_knobs = _knob_names(specs)

    def names(key: str, allowed: list[str], what: str) -> list[str]:
        value = doc.get(key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise RightsizeError(f"{where}.{key}: must be a list of {what} names")
        for v in value:
            if v not in allowed:
                raise RightsizeError(f"{where}.{key}: no {what} named {v!r} (known: {', '.join(allowed)})")
        return list(dict.fromkeys(value))

    exclude = names("exclude", list(by_name), "rung")
    if len(exclude) == len(specs):
        raise RightsizeError(f"{where}.exclude: excludes every rung; nothing would be searched")
    knobs = names("knobs", all_knobs, "knob") if "knobs" in doc else None

    fix = doc.get("fix") or {}
    if not isinstance(fix, dict):
        raise RightsizeError(f"{where}.fix: must be a mapping of knob: value")
    fixed = {}
    for knob, value in fix.items():
        owners = [n for n, cls in classes.items() if knob in cls.knobs]
        if not owners:
            raise RightsizeError(f"{where}.fix: no rung of this ladder has a knob {knob!r} (knobs: {', '.join(all_knobs)})")
        for n in owners:
            value = classes[n].knobs[knob].validate(knob, value, f"{where}.fix")
        fixed[knob] = value

    space = doc.get("space") or {}
    if not isinstance(space, dict):
        raise RightsizeError(f"{where}.space: must be a mapping of rung name: {{knob: [values]}}")
    spaces: dict[str, dict[str, list]] = {}
    for rung, grid in space.items():
        if rung not in by_name:
            raise RightsizeError(f"{where}.space: no rung named {rung!r} (rungs: {', '.join(by_name)})")
        if rung in exclude:
            raise RightsizeError(f"{where}.space: rung {rung!r} is also in search.exclude")
        if not isinstance(grid, dict):
            raise RightsizeError(f"{where}.space.{rung}: must be a mapping of knob: [values]")
        cls = classes[rung]
        spaces[rung] = {}
        for knob, values in grid.items():
            at = f"{where}.space.{rung}.{knob}"
            if knob not in cls.knobs:
                raise RightsizeError(f"{at}: kind {cls.kind!r} has no knob {knob!r} (knobs: {', '.join(sorted(cls.knobs))})")
            if knob in fixed:
                raise RightsizeError(f"{at}: knob {knob!r} is also fixed in search.fix")
            if not isinstance(values, list) or not values:
                raise RightsizeError(f"{at}: must be a non-empty list of values")
            checked = [cls.knobs[knob].validate(knob, v, at) for v in values]
            if len(set(map(repr, checked))) != len(checked):
                raise RightsizeError(f"{at}: lists a value twice")
            spaces[rung][knob] = checked
    return {"knobs": knobs, "fix": fixed, "space": spaces, "exclude": exclude}


def parse_rung(entry: Any, defaults: dict[str, Any], where: str) -> RungSpec:
    if not isinstance(entry, dict):
        raise RightsizeError(f"{where}: must be a mapping with name and kind")
    name = entry.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise RightsizeError(f"{where}: 'name' must be {NAME_RULE}, got {name!r}")
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
    for key in [k for k in knobs if not cls.knobs[k].applies(knobs, cls.knobs)]:
        if key in entry:
            other, wanted = cls.knobs[key].only_if
            raise RightsizeError(f"{where}: knob {key!r} applies only with {other}: {wanted}")
        del knobs[key]  # a ladder default that does nothing for this rung
    optional = entry.get("optional", False)
    if not isinstance(optional, bool):
        raise RightsizeError(f"{where}: 'optional' must be true or false, got {optional!r}")
    return RungSpec(name=name, kind=kind, model=model, knobs=knobs, optional=optional)
