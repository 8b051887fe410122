"""An exported config: a self-contained folder that labels texts with no run folder, and serving it.

``rightsize export RUN_DIR [CONFIG] --out DIR`` writes::

    DIR/export.json      what it is (rung, config, label names, models, where it came from) and the
                         sha256 of every other file of the folder
    DIR/artifact/        the fitted state, as the run folder's artifact store keeps it (manifest + state/)
    DIR/models/<n>/      each model the rung loads, copied from its resolved local folder
                         (``--models reference`` records the id instead: it must resolve where DIR is used)
    DIR/README.txt       the same in words, and how to run it

``rightsize predict DIR INPUT`` verifies every sha256, loads the rung (``load`` then ``restore``, the
same calls as a confirmation on test) and labels each text; the labels equal the record's validation
predictions on the same texts. Any kind that implements ``save``/``restore`` exports, trained kinds
included.
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

from rightsize.adequacy import comparable
from rightsize.artifacts import STATE, ArtifactStore, CorruptArtifact, check_listing, file_listing, read_manifest
from rightsize.errors import RightsizeError
from rightsize.naming import variant_labels
from rightsize.records import Record
from rightsize.results import RunLog
from rightsize.rungs import RunContext, RungSpec, build_rung, rung_class

log = logging.getLogger(__name__)

SCHEMA = "rightsize.export/1"
EXPORT_FILE = "export.json"
README = "README.txt"
ARTIFACT_DIR = "artifact"
MODELS_DIR = "models"
MODEL_MODES = ("copy", "reference")


@dataclass(frozen=True)
class ExportResult:
    folder: Path
    label: str  # the config's name (rung and the knobs that tell it from its siblings)
    record: Record  # the validation record exported
    models: dict[str, dict[str, Any]]  # model id -> {"path": ...} (copied) or {"id": ...} (referenced)
    bytes: int  # the folder's size


# ------------------------------------------------------------------------------------ export


def choose_record(records: Sequence[Record], config: str | None,
                  plans: Sequence[dict] = ()) -> tuple[Record, str]:
    """``(validation record, its label)`` named by ``config`` (a record key, a config label or a rung
    name), or the run's recommendation when ``config`` is None."""
    group = comparable(records)
    labels = variant_labels(group)
    if config is None:
        from rightsize.recommend import NothingCompleted, recommend

        try:
            rec = recommend(records, plans=plans)
        except NothingCompleted as exc:
            raise RightsizeError(f"nothing to export: {exc}") from None
        if rec.chosen is None:
            raise RightsizeError("nothing adequate to export by default: name a config (one of: "
                                 f"{', '.join(sorted(labels.values()))})")
        config = rec.chosen["key"]
    ok = {r.key: r for r in records if r.split == "validation" and r.ok and r.key is not None}
    if config in ok:
        return ok[config], labels.get(config) or variant_labels([ok[config]])[config]
    by_label = [r for r in group if labels[r.key] == config]
    by_rung = [r for r in group if r.rung == config]
    found = by_label or by_rung
    if len(found) > 1:
        raise RightsizeError(f"config {config!r}: {len(found)} configs of that rung were evaluated; name one: "
                             f"{', '.join(sorted(labels[r.key] for r in found))}")
    if not found:
        known = ", ".join(sorted(labels.values())) or "none"
        raise RightsizeError(f"config {config!r}: no such config, rung or key among the run's validation records "
                             f"(configs: {known})")
    return found[0], labels[found[0].key]


def export_config(run_dir: str | Path, out: str | Path, config: str | None = None, *,
                  models: str = "copy") -> ExportResult:
    """Write the export folder ``out`` (which must not exist, or be empty) for ``config`` of ``run_dir``."""
    if models not in MODEL_MODES:
        raise RightsizeError(f"--models {models!r}: choose from {', '.join(MODEL_MODES)}")
    run = RunLog(run_dir, create=False)
    records = run.records()
    record, label = choose_record(records, config, run.plans())
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RightsizeError(f"--out {out}: exists and is not an empty folder")
    store = ArtifactStore(run.dir)
    artifact = _artifact_of(store, record, label)
    spec = _spec_of(record.rung, record.config)
    temp = out.parent / f".{out.name}.partial-{secrets.token_hex(4)}"
    try:
        temp.mkdir(parents=True)
        shutil.copytree(artifact.folder, temp / ARTIFACT_DIR)
        model_entries = _export_models(spec, temp, models)
        info = _export_info(run.dir, record, label, artifact.sha256, model_entries)
        (temp / README).write_text(readme_text(info), encoding="utf-8")
        info["files"] = file_listing(temp, ignore=(EXPORT_FILE,))
        (temp / EXPORT_FILE).write_text(json.dumps(info, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        if out.exists():
            out.rmdir()
        temp.rename(out)
    except OSError as exc:
        raise RightsizeError(f"--out {out}: cannot write the export ({exc.strerror or exc})") from None
    finally:
        if temp.exists():
            shutil.rmtree(temp, ignore_errors=True)
    size = sum(e["bytes"] for e in info["files"].values())
    return ExportResult(out, label, record, model_entries, size)


def _artifact_of(store: ArtifactStore, record: Record, label: str):
    fit_key = record.fit_key
    if not fit_key:
        raise RightsizeError(f"{label}: recorded before artifacts were kept; run `rightsize evaluate` on it again "
                             "(--force) to fit and save it")
    latest = store.recorded(fit_key)
    try:
        artifact = store.find(fit_key, latest.artifact["sha256"] if latest else None)
    except CorruptArtifact as exc:
        raise RightsizeError(f"{label}: its artifact in {store.folder(fit_key)} is corrupt ({exc}); evaluate it again "
                             "to fit it anew") from None
    if artifact is None:
        kind = (record.config or {}).get("kind")
        why = "was not saved (or is on another machine)" if latest else f"was never saved (kind {kind!r} may not save)"
        raise RightsizeError(f"{label}: its fitted state {why}; evaluate it again in {store.run_dir} to fit and "
                             "save it")
    return artifact


def _spec_of(rung: str | None, config: dict[str, Any] | None) -> RungSpec:
    from rightsize.recommend import spec_from_config

    return spec_from_config(str(rung), config or {})


def _export_models(spec: RungSpec, folder: Path, mode: str) -> dict[str, dict[str, Any]]:
    """Copy (or reference) each model the rung loads; model id -> where predict finds it."""
    from rightsize.models import resolve_model

    entries: dict[str, dict[str, Any]] = {}
    for model in dict.fromkeys(rung_class(spec.kind).models(spec)):
        source = resolve_model(model)
        if mode == "reference":
            entries[model] = {"id": model, "files": file_listing(source, links=True)}
            continue
        relative = f"{MODELS_DIR}/{len(entries)}"
        # Links are followed (the Hugging Face cache links each file to a blob); hidden entries are left.
        shutil.copytree(source, folder / relative, symlinks=False, ignore=shutil.ignore_patterns(".*"))
        entries[model] = {"path": relative}
    return entries


def _export_info(run_dir: Path, record: Record, label: str, artifact_sha256: str,
                 models: dict[str, dict[str, Any]]) -> dict[str, Any]:
    metric = record.metric or "accuracy"
    return {
        "schema": SCHEMA, "rung": record.rung, "label": label, "config": record.config,
        "label_names": record.label_names or [], "models": models,
        "device": record.device or "cpu", "seed": record.seed or 0,
        "artifact_sha256": artifact_sha256,
        "source": {"run_dir": str(run_dir.resolve()), "task": record.task, "key": record.key,
                   "fit_key": record.fit_key, "metric": metric, "score": record.score(metric),
                   "ci": record.interval(metric), "n_examples": record.n_examples,
                   "limit": record.limit, "joules_per_query": record.joules_per_query,
                   "joules_fit": (record.joules or {}).get("fit"), "energy_source": record.energy_source,
                   "training": record.training},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "rightsize": _version(),
    }


def _version() -> str:
    try:
        return metadata.version("rightsize")
    except metadata.PackageNotFoundError:
        return "unknown"


def readme_text(info: dict[str, Any]) -> str:
    """README.txt: what the folder holds and how to run it (data-derived names quoted as JSON)."""
    s = info["source"]
    ci = f" [{s['ci'][0]:.3f}, {s['ci'][1]:.3f}]" if s.get("ci") else ""
    score = f"{s['score']:.4f}{ci}" if isinstance(s.get("score"), (int, float)) else "-"
    model_lines = []
    for model, entry in info["models"].items():
        where = (f"copied to {entry['path']}/" if "path" in entry else
                 "referenced by id, not copied: it must resolve where this folder is used "
                 "(`rightsize models assemble`, the Hugging Face cache, or the same local path)")
        model_lines.append(f"  {json.dumps(model)}: {where}")
    lines = [
        f"rightsize export of config {json.dumps(info['label'])} (kind {info['config'].get('kind')}), "
        f"task {json.dumps(s.get('task'))}",
        "",
        "Label texts with it (no run folder needed):",
        "  rightsize predict THIS_FOLDER texts.txt              # one text per line",
        "  rightsize predict THIS_FOLDER texts.jsonl --out predictions.jsonl   # JSONL or CSV with a 'text' field",
        "Each output line is {\"index\": i, \"label\": ...}. predict checks the sha256 of every file listed in",
        f"{EXPORT_FILE} first and refuses a folder that is incomplete or changed.",
        "",
        f"Evaluated on the validation split ({s.get('n_examples')} examples): {s.get('metric')} {score}; "
        f"{_joules(s.get('joules_per_query'))}/query, fit {_joules(s.get('joules_fit'))} "
        f"(energy source: {s.get('energy_source')}; on device {info['device']}).",
        f"Labels: {json.dumps(info['label_names'], ensure_ascii=False)}",
        f"Config: {json.dumps(info['config'], ensure_ascii=False, sort_keys=True)}",
        "",
        "Files:",
        f"  {EXPORT_FILE}: the config, label names, models and the sha256 of every other file",
        f"  {ARTIFACT_DIR}/: the fitted state (safetensors, JSON, FAISS; no pickle) with its manifest",
    ]
    lines += ["Models:", *model_lines] if model_lines else ["Models: none (the kind loads no model)"]
    lines += ["", f"Made by rightsize {info['rightsize']} on {info['created']} from record {s['key']}."]
    return "\n".join(lines) + "\n"


def _joules(value: Any) -> str:
    from rightsize.tables import human_joules

    return human_joules(value) if isinstance(value, (int, float)) else "-"


# ------------------------------------------------------------------------------------ predict


@dataclass
class ExportedModel:
    """A verified export folder, loaded: ``predict(texts)`` labels texts."""

    folder: Path
    info: dict[str, Any]
    spec: RungSpec
    device: str
    rung: Any = None

    def predict(self, texts: Sequence[str]) -> list[str]:
        return [str(label) for label in self.rung.predict(list(texts))]

    def close(self) -> None:
        if self.rung is not None:
            self.rung.close()


def read_export(folder: str | Path) -> dict[str, Any]:
    """``export.json`` of ``folder``, after checking that every file it lists is there, byte for byte."""
    folder = Path(folder)
    if not (folder / EXPORT_FILE).is_file():
        raise RightsizeError(f"{folder}: not a rightsize export folder (no {EXPORT_FILE})")
    try:
        info = json.loads((folder / EXPORT_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RightsizeError(f"{folder / EXPORT_FILE}: cannot be read ({exc.__class__.__name__})") from None
    if not isinstance(info, dict) or info.get("schema") != SCHEMA:
        raise RightsizeError(f"{folder / EXPORT_FILE}: not a {SCHEMA} file")
    try:
        check_listing(folder, info.get("files"), ignore=(EXPORT_FILE,))
        read_manifest(folder / ARTIFACT_DIR, info.get("artifact_sha256"))
    except CorruptArtifact as exc:
        raise RightsizeError(f"{folder}: incomplete or changed since it was exported: {exc}") from None
    return info


def load_export(folder: str | Path, *, device: str | None = None, trust_remote_code: bool = False,
                allow_pickle: bool = False) -> ExportedModel:
    """Verify and load an export folder: its rung, loaded and restored (``device`` default: the one it
    was evaluated on where available, else the CPU)."""
    from rightsize.models import resolve_model
    from rightsize.session import check_models, resolve_device

    folder = Path(folder)
    info = read_export(folder)
    spec = _spec_of(info.get("rung"), info.get("config"))
    local: dict[str, str] = {}
    for model, entry in (info.get("models") or {}).items():
        if "path" in entry:
            local[model] = str((folder / entry["path"]).resolve())
        else:
            found = resolve_model(model)
            try:
                check_listing(found, entry.get("files"), links=True)
            except CorruptArtifact as exc:
                raise RightsizeError(f"model {model!r} resolves to {found}, which is not the model exported "
                                     f"({exc})") from None
            local[model] = str(found)
    spec = RungSpec(spec.name, spec.kind, local.get(spec.model, spec.model) if spec.model else None,
                    {k: local.get(v, v) if isinstance(v, str) else v for k, v in spec.knobs.items()})
    check_models(spec, allow_pickle)
    if device is None:
        wanted = info.get("device", "cpu")
        device = resolve_device("auto") if wanted == "cuda" else "cpu"
        if device != wanted:
            log.warning("exported from a %s evaluation, labelling on the %s: labels may differ from the record's "
                        "where scores are near ties", wanted, device)
    else:
        device = resolve_device(device)
    context = RunContext(device=device, seed=int(info.get("seed", 0)), trust_remote_code=trust_remote_code,
                         allow_pickle=allow_pickle, cache=None)
    model = ExportedModel(folder, info, spec, device)
    model.rung = build_rung(spec, context)
    try:
        model.rung.load()
        model.rung.restore(folder / ARTIFACT_DIR / STATE)
    except RightsizeError:
        model.close()
        raise
    except Exception as exc:  # noqa: BLE001 — a state that passed its checksums yet does not load
        model.close()
        raise RightsizeError(f"{folder}: cannot load the exported config ({exc.__class__.__name__}: "
                             f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''})") from None
    return model
