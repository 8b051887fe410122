"""The config under test: ``--current`` read (a rung name or a config file), evaluated for a gate on a
task, and found among a run's records."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import yaml

from rightsize.adequacy import comparable
from rightsize.errors import RightsizeError
from rightsize.naming import normalized_config
from rightsize.records import Record
from rightsize.rungs import RungSpec
from rightsize.tables import SHOWN_STATUS

if TYPE_CHECKING:
    from rightsize.runner import EvaluationRequest


@dataclass(frozen=True)
class Current:
    """The config a team ships: a rung name, or a parsed config (from a config file) with its name."""

    name: str
    config: dict[str, Any] | None = None  # normalized (defaults filled); None: match records by rung name
    source: str = ""                      # the file it came from, for messages
    spec: RungSpec | None = None          # as written in the file, for evaluating it

    def describe(self) -> str:
        return f"config from {self.source}" if self.config is not None else f"rung {self.name!r}"



def load_current(value: str) -> Current:
    """``--current``: a path to a config YAML (one rung mapping in ladder syntax) or a rung name."""
    from rightsize.ladder import NAME_RE, parse_rung

    path = Path(value).expanduser()
    looks_like_file = path.suffix.lower() in (".yaml", ".yml") or os.sep in value
    if not path.is_file():
        if looks_like_file or not NAME_RE.match(value):
            raise RightsizeError(f"--current {value!r}: no such config file, and not a rung name")
        return Current(name=value)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError) as exc:
        raise RightsizeError(f"--current {path}: cannot read the config file ({exc.__class__.__name__})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise RightsizeError(f"--current {path}: not valid YAML{where}") from None
    if isinstance(doc, dict) and "name" not in doc:
        doc = {"name": path.stem, **doc}
    spec = parse_rung(doc, {}, f"--current {path}")
    return Current(name=spec.name, config=normalized_config(spec.config()), source=str(path), spec=spec)


def evaluate_for_check(request: EvaluationRequest, current: Current,
                       on_start: Callable[..., None] | None = None) -> tuple[list[Record], list[dict]]:
    """Evaluate the request's ladder, then the current config on its own (into the same run folder)
    when no rung has its config; return exactly the records of this check, and the folder's plans.
    A current rung name not in the ladder, or a current model that cannot be had, evaluates nothing."""
    from rightsize.ladder import Ladder, load_ladder
    from rightsize.results import RunLog
    from rightsize.runner import run_evaluation
    from rightsize.session import preflight_models

    ladder = load_ladder(request.ladder)
    if current.config is None and current.name not in {r.name for r in ladder.rungs}:
        raise RightsizeError(f"--current {current.name!r}: no such rung in {ladder.path} "
                             f"(rungs: {', '.join(r.name for r in ladder.rungs)})")
    if current.spec is not None:  # its model must be reachable before the ladder's evaluations start
        preflight_models(Ladder(f"--current {current.source}", "", (current.spec,), {}))
    records = list(run_evaluation(request, on_start=on_start))
    request.on_assumed = None  # an assumed task is said once
    in_ladder = any(normalized_config(r.config()) == current.config for r in ladder.rungs)
    if current.spec is not None and not in_ladder:
        records += list(run_evaluation(request, on_start=on_start, specs=[current.spec]))
    plans = RunLog(request.resolved_out_dir(), create=False).plans()
    return [replace(r, extra={k: v for k, v in r.extra.items() if k != SHOWN_STATUS}) for r in records], plans


def find_current(records: Sequence[Record], current: Current) -> Record:
    """The latest record of the current config (ok preferred over failed); RightsizeError when absent."""
    # Selection is on validation; test-split records only confirm a choice and never stand in for it.
    records = [r for r in records if r.split in ("validation", None)]
    if current.config is not None:
        matches = [r for r in records if normalized_config(r.config or {}) == current.config]
    else:
        matches = [r for r in records if r.rung == current.name]
    if not matches:
        names = sorted({r.rung or "?" for r in records})
        if current.config is not None:
            raise RightsizeError(
                f"--current {current.source}: this config (kind {current.config.get('kind')!r}, model "
                f"{current.config.get('model')!r}) was not evaluated in this run; pass the task file to evaluate it")
        raise RightsizeError(f"--current {current.name!r}: no such rung in the records (rungs: {', '.join(names)})")
    # Several evaluations of the config (other --limit runs): the one in the main comparison group wins.
    main = {r.key for r in comparable(records)}
    in_main = [r for r in matches if r.key in main and r.ok]
    ok = [r for r in matches if r.ok]
    return (in_main or ok or matches)[-1]


def same_evaluation(records: Sequence[Record], anchor: Record) -> list[Record]:
    """Records scored on the same task, split and examples as ``anchor`` (the comparison set)."""
    return [r for r in records if (r.task, r.split, r.references) == (anchor.task, anchor.split, anchor.references)]
