"""The run folder's artifacts: saved after a fit, verified and restored instead of fitting (charged the
recorded fit cost), refitted and checked when missing, detected, deleted and refitted when corrupt,
and never half-written by a kill."""

from __future__ import annotations

import dataclasses
import logging
import os
import signal

import pytest
from click.testing import CliRunner

from rightsize.artifacts import MANIFEST, STATE, ArtifactStore, CorruptArtifact, file_listing, write_manifest
from rightsize.cli import cli
from rightsize.energy import make_meter
from rightsize.evaluate import EvalPlan, evaluate_rung
from rightsize.results import RunLog
from rightsize.rungs import RUNG_KINDS, RunContext, RungSpec, register
from rightsize.rungs.base import Rung
from rightsize.rungs.state import read_json, write_json
from rightsize.rungs.probe import ProbeRung
from rightsize.rungs.tfidf import TfidfRung
from rightsize.tasks import load_data, load_task
from test_faults import complete_lines, interrupt_when_sleeping, launcher, start  # noqa: F401 (a fixture)

KEY = "0123456789abcdef0123"


@pytest.fixture
def data(tiny_task):
    return load_data(load_task(tiny_task))


def write_two_files(folder):
    (folder / "a.json").write_text('{"x": 1}')
    (folder / "sub").mkdir()
    (folder / "sub" / "b.bin").write_bytes(b"\x00\x01")


# ------------------------------------------------------------------ the store


def test_a_saved_artifact_lists_each_file_with_its_sha256_and_is_found_verified(tmp_path):
    store = ArtifactStore(tmp_path)
    saved = store.save(KEY, write_two_files, {"fit": {"joules": 2.5}})
    assert saved.folder == tmp_path / "artifacts" / KEY and saved.state.is_dir()
    assert set(saved.manifest["files"]) == {"a.json", "sub/b.bin"}
    assert saved.reference(tmp_path) == {"path": f"artifacts/{KEY}", "sha256": saved.sha256}
    found = store.find(KEY, saved.sha256)
    assert found.manifest == saved.manifest and found.sha256 == saved.sha256
    assert store.find("ffffffffffffffffffff") is None
    assert [p.name for p in (tmp_path / "artifacts").iterdir()] == [KEY]  # no temporary folder left


@pytest.mark.parametrize("damage, why", [
    (lambda f: (f / STATE / "a.json").write_text('{"x": 2}'), "a.json does not match its sha256"),
    (lambda f: (f / STATE / "sub" / "b.bin").unlink(), "sub/b.bin is missing"),
    (lambda f: (f / STATE / "extra.json").write_text("{}"), "extra.json is not in its manifest"),
    (lambda f: (f / MANIFEST).write_text("{"), "not the one recorded"),
])
def test_a_damaged_artifact_is_reported_corrupt(tmp_path, damage, why):
    store = ArtifactStore(tmp_path)
    saved = store.save(KEY, write_two_files, {})
    damage(saved.folder)
    with pytest.raises(CorruptArtifact, match=why):
        store.find(KEY, saved.sha256)


def test_a_manifest_rewritten_to_match_tampered_files_is_not_the_recorded_one(tmp_path):
    store = ArtifactStore(tmp_path)
    saved = store.save(KEY, write_two_files, {})
    (saved.state / "a.json").write_text('{"x": 3}')
    write_manifest(saved.folder, {**saved.manifest, "files": file_listing(saved.state)})
    assert store.find(KEY).manifest["files"]["a.json"]  # consistent in itself...
    with pytest.raises(CorruptArtifact, match="not the one recorded"):
        store.find(KEY, saved.sha256)  # ...but not what the record kept


def test_keys_are_hex_digests_never_paths(tmp_path):
    store = ArtifactStore(tmp_path)
    for bad in ("../../etc", "ABC", "a/b", "", "0123456789abcdef0123/.."):
        with pytest.raises(ValueError):
            store.folder(bad)


def test_a_save_that_fails_leaves_nothing_behind(tmp_path):
    store = ArtifactStore(tmp_path)

    def broken(folder):
        (folder / "half.json").write_text("{")
        raise OSError("disk full")

    with pytest.raises(OSError):
        store.save(KEY, broken, {})
    assert list((tmp_path / "artifacts").iterdir()) == []


def test_a_killed_save_leaves_a_partial_folder_that_the_next_save_removes(tmp_path):
    store = ArtifactStore(tmp_path)
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)  # a process id that is no longer running
    partial = tmp_path / "artifacts" / f".partial-{KEY}-{dead}-abcd"
    (partial / STATE).mkdir(parents=True)
    assert store.find(KEY) is None  # a partial folder is never an artifact
    store.save(KEY, write_two_files, {})
    assert not partial.exists() and store.find(KEY) is not None


# ------------------------------------------------------------------ the evaluator


def evaluate(data, spec, store, split="validation", log_to=None):
    record = evaluate_rung(data, spec, make_meter("estimate"), RunContext(), EvalPlan(split=split), run_id="r",
                           artifacts=store)
    if log_to is not None:
        log_to.append(record)
    return record


@pytest.fixture
def run(tmp_path):
    return RunLog(tmp_path / "run")


@pytest.fixture
def store(run):
    return ArtifactStore(run.dir)


def test_a_fit_is_saved_and_the_record_names_its_manifest(data, run, store):
    record = evaluate(data, RungSpec("tfidf", "tfidf"), store, log_to=run)
    assert record.status == "ok"
    ref = record.artifact
    assert ref["path"] == f"artifacts/{record.fit_key}" and "restored" not in ref
    artifact = store.find(record.fit_key, ref["sha256"])
    assert artifact.manifest["fit"]["joules"] == record.joules["fit"]
    assert artifact.manifest["config"] == record.config and artifact.manifest["label_names"] == data.labels


def test_the_test_split_restores_the_validation_fit_and_is_charged_its_recorded_cost(data, run, store, monkeypatch,
                                                                                     tiny_encoder):
    spec = RungSpec("probe", "probe", str(tiny_encoder), {"batch_size": 8})
    validation = evaluate(data, spec, store, log_to=run)
    assert validation.split == "validation" and validation.status == "ok"

    def no_fit(*args):
        raise AssertionError("fitted although a verified artifact exists")

    monkeypatch.setattr(ProbeRung, "fit", no_fit)
    test = evaluate(data, spec, store, split="test", log_to=run)
    assert test.status == "ok", test.error
    assert test.key != validation.key and test.fit_key == validation.fit_key
    assert test.artifact["restored"] is True and test.artifact["sha256"] == validation.artifact["sha256"]
    # Charged, not spent: the config costs what its fit cost; the restore is what this run spent.
    assert test.joules["fit"] == validation.joules["fit"]
    assert test.seconds["fit"] == validation.seconds["fit"]
    assert test.joules_spent["fit"] != test.joules["fit"]
    assert test.joules_total == pytest.approx(sum(test.joules.values()))


def test_a_corrupt_artifact_is_detected_deleted_refitted_and_logged(data, run, store, caplog):
    spec = RungSpec("tfidf", "tfidf")
    first = evaluate(data, spec, store, log_to=run)
    state = store.folder(first.fit_key) / STATE
    (state / "idf.safetensors").write_bytes(b"not what was saved")
    with caplog.at_level(logging.WARNING, logger="rightsize.evaluate"):
        again = evaluate(data, spec, store, split="test", log_to=run)
    assert again.status == "ok"
    assert "corrupt" in caplog.text and "idf.safetensors does not match its sha256" in caplog.text
    assert again.artifact["refit"].startswith("corrupt: idf.safetensors")
    assert "restored" not in again.artifact and again.artifact["sha256"] != first.artifact["sha256"]
    # fitted again with the same seed: the recorded validation predictions are reproduced
    check = again.artifact["check"]
    assert check["against"] == first.key and check["differing"] == 0 and check["examples"] == first.n_examples
    assert store.find(again.fit_key, again.artifact["sha256"]) is not None  # the new one is sound


def test_an_artifact_that_passes_its_checksums_but_cannot_be_read_is_refitted(data, store, caplog):
    spec = RungSpec("tfidf", "tfidf")
    first = evaluate(data, spec, store)  # not logged: no record expects a manifest digest
    artifact = store.find(first.fit_key)
    (artifact.state / "vocabulary.json").write_text('["two", "terms"]')
    write_manifest(artifact.folder, {**artifact.manifest, "files": file_listing(artifact.state)})
    with caplog.at_level(logging.WARNING, logger="rightsize.evaluate"):
        again = evaluate(data, spec, store)
    assert again.status == "ok" and again.predictions == first.predictions
    assert again.artifact["refit"].startswith("corrupt: restore failed: ValueError")
    assert set(again.joules) == {"load", "fit", "infer"} and "restored" not in again.artifact


def test_a_failed_restore_leaves_no_figure_or_flag_of_its_fit_window(data, store):
    """What a fit window wrote is forgotten whole when its restore fails: every per-phase figure
    (gross joules and the energy uncertainty too) and the phase flags, found by their shape."""
    record = evaluate(data, RungSpec("tfidf", "tfidf"), store)
    record.below_resolution, record.energy_read_errors = ["fit", "infer"], ["fit"]
    phases = {"load", "fit", "infer"}
    per_phase = [f.name for f in dataclasses.fields(record)
                 if isinstance(getattr(record, f.name), dict) and set(getattr(record, f.name)) <= phases
                 and "fit" in getattr(record, f.name)]
    assert {"joules_gross", "energy_uncertainty", "joules", "seconds"} <= set(per_phase)
    record.forget_phase("fit")
    assert [name for name in per_phase if "fit" in getattr(record, name)] == []
    assert record.below_resolution == ["infer"] and record.energy_read_errors == []
    assert set(record.joules) == {"load", "infer"}  # the other phases are kept


def test_a_missing_artifact_is_refitted_with_the_same_seed_and_checked(data, run, store, caplog):
    spec = RungSpec("tfidf", "tfidf")
    first = evaluate(data, spec, store, log_to=run)
    store.delete(first.fit_key)  # the record came from another machine's run folder
    with caplog.at_level(logging.WARNING, logger="rightsize.evaluate"):
        test = evaluate(data, spec, store, split="test", log_to=run)
    assert "missing" in caplog.text
    assert test.artifact["refit"] == "missing"
    assert test.artifact["check"]["differing"] == 0 and "note" not in test.artifact["check"]
    assert store.find(test.fit_key, test.artifact["sha256"]) is not None


def test_a_refit_that_does_not_reproduce_the_recorded_predictions_says_so(data, run, store):
    spec = RungSpec("tfidf", "tfidf")
    first = evaluate(data, spec, store)
    n_labels = len(first.label_names)
    first.predictions = [(p + 1) % n_labels for p in first.predictions]  # as if recorded by another fit
    run.append(first)
    store.delete(first.fit_key)
    test = evaluate(data, spec, store, split="test", log_to=run)
    check = test.artifact["check"]
    assert check["differing"] == first.n_examples
    assert f"{first.n_examples} of {first.n_examples} validation predictions differ" in check["note"]


class Constant(Rung):
    """Says its train split's first label; it has no save, so it cannot keep an artifact."""

    kind = "test-constant"

    def load(self):
        self.epochs = 0

    def fit(self, texts, labels):
        self.label = sorted(set(labels))[0]

    def predict(self, texts):
        return [self.label] * len(texts)

    def n_params(self):
        return 1


class Trained(Constant):
    """A kind that 'trains': it reports what its fit did, and saves and restores its label."""

    kind = "test-trained"
    trained = True

    def fit(self, texts, labels):
        super().fit(texts, labels)
        self.epochs = 2

    def save(self, folder):
        write_json(folder, "label", self.label)

    def restore(self, folder):
        self.label = read_json(folder, "label")

    def training(self):
        return {"epochs": self.epochs, "examples": 2 * 45} if self.epochs else {}


for _kind in (Constant, Trained):
    if _kind.kind not in RUNG_KINDS:
        register(_kind)


def test_a_kind_that_cannot_save_is_evaluated_without_an_artifact(data, store):
    record = evaluate(data, RungSpec("plain", "test-constant"), store)
    assert record.status == "ok" and record.artifact is None
    assert not store.root.exists() or list(store.root.iterdir()) == []


def test_what_a_training_fit_did_is_recorded_and_restored_with_its_artifact(data, run, store):
    spec = RungSpec("trained", "test-trained")
    fitted = evaluate(data, spec, store, log_to=run)
    assert fitted.training == {"epochs": 2, "examples": 90}
    restored = evaluate(data, spec, store, split="test", log_to=run)
    assert restored.artifact["restored"] is True and restored.training == fitted.training


def test_recommend_confirms_on_test_from_the_artifacts(tiny_task, tiny_ladder, tmp_path, monkeypatch):
    out = tmp_path / "run"
    args = ["evaluate", str(tiny_task), "--ladder", str(tiny_ladder), "--out", str(out), "--meter", "estimate",
            "--quiet"]
    assert CliRunner().invoke(cli, args).exit_code == 0
    validation = {r.fit_key: r for r in RunLog(out, create=False).records()}
    assert all(r.artifact["sha256"] for r in validation.values())
    monkeypatch.setattr(TfidfRung, "fit", lambda *a: pytest.fail("the confirmation fitted again"))
    result = CliRunner().invoke(cli, ["recommend", str(out), "--json"])
    assert result.exit_code in (0, 3), result.output
    tests = [r for r in RunLog(out, create=False).records() if r.split == "test"]
    assert tests
    for t in tests:
        assert t.artifact["restored"] is True
        assert t.joules["fit"] == validation[t.fit_key].joules["fit"]


# ------------------------------------------------------------------ Ctrl-C and kill


@pytest.mark.subprocess
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_ctrl_c_or_kill_while_saving_loses_no_record_and_leaves_no_half_artifact(tmp_path, tiny_task, launcher,
                                                                                  sig):
    ladder = tmp_path / "ladder.yaml"
    ladder.write_text("rungs:\n  - {name: tfidf, kind: tfidf}\n  - {name: slow, kind: slow-save}\n")
    out, marker = tmp_path / "run", tmp_path / "sleeping"
    args = ["evaluate", tiny_task, "--ladder", ladder, "--out", out, "--meter", "estimate"]

    code, err = interrupt_when_sleeping(start(launcher, args, marker, tmp_path), marker, sig)
    assert code == (130 if sig == signal.SIGINT else -signal.SIGKILL), err
    first = complete_lines(out / "runs.jsonl")
    assert [(r["rung"], r["status"]) for r in first] == [("tfidf", "ok")]
    store = ArtifactStore(out)
    assert store.find(first[0]["fit_key"], first[0]["artifact"]["sha256"]) is not None
    finished = [p.name for p in store.root.iterdir() if not p.name.startswith(".")]
    assert finished == [first[0]["fit_key"]]  # the interrupted save left no artifact in place

    done = start(launcher, args, None, tmp_path)
    _, err = done.communicate(timeout=300)
    assert done.returncode == 0, err
    records = complete_lines(out / "runs.jsonl")
    assert records[0] == first[0] and [r["rung"] for r in records] == ["tfidf", "slow"]
    assert store.find(records[1]["fit_key"], records[1]["artifact"]["sha256"]) is not None
    assert [p.name for p in store.root.iterdir() if p.name.startswith(".")] == []  # the partial folder went
