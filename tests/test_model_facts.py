"""A model's facts read from its files: compute weights from weight headers, depth and max length
from config files, the files' hash, read once per folder; and the checked folder of a model."""

from __future__ import annotations

import shutil

import pytest

from rightsize import model_facts
from rightsize.cost_model import CostModel
from rightsize.errors import RightsizeError
from rightsize.ladder import parse_ladder
from rightsize.model_facts import ModelFacts, facts_at, facts_of
from rightsize.models import checked_folder
from rightsize.records import Record
from rightsize.rungs import RungSpec
from rightsize.space import build_space

# The tiny encoder (conftest): BERT, hidden 32, intermediate 64, 2 layers, with a pooler.
# Per layer: q, k, v, o (32x32 + 32 each) = 4,224; intermediate 32x64 + 64 = 2,112; output
# 64x32 + 32 = 2,080; two LayerNorms 2 x 64 = 128: 8,544. Pooler: 32x32 + 32 = 1,056.
PER_LAYER, POOLER = 8544, 1056


def test_compute_weights_skip_embeddings_and_the_layers_cut_off(tiny_encoder):
    facts = facts_of(str(tiny_encoder))
    assert facts.compute_weights() == 2 * PER_LAYER + POOLER
    assert facts.compute_weights(1) == PER_LAYER + POOLER


def test_depth_and_max_length_come_from_the_transformer_modules_config(tiny_encoder):
    facts = facts_of(str(tiny_encoder))
    assert facts.layers == 2
    # sentence-transformers truncates at 32, before the 64 position embeddings of config.json.
    assert facts.max_length == 32 and facts.config["max_position_embeddings"] == 64
    assert (facts.transformer_folder / "config.json").is_file()


def test_a_folder_without_weights_or_config_has_no_facts(tmp_path):
    facts = ModelFacts(tmp_path)
    assert (facts.layers, facts.max_length, facts.compute_weights(), facts.tensor_sizes) == (None, None, None, {})
    assert facts.supports_flash_attention is False


def test_facts_are_read_once_per_folder_however_it_is_named(tiny_encoder, tmp_path, monkeypatch):
    folder = tmp_path / "copy"
    shutil.copytree(tiny_encoder, folder)
    reads = []
    real = model_facts._safetensors_sizes
    monkeypatch.setattr(model_facts, "_safetensors_sizes", lambda path: reads.append(path) or real(path))
    assert facts_of(str(folder)) is facts_at(folder) is facts_at(tmp_path / "." / "copy")
    # The search space and the cost model ask for the same facts, many times over.
    ladder = parse_ladder({"rungs": [{"name": "knn", "kind": "knn", "model": str(folder)}]}, "l.yaml")
    assert {d.knob: d.values for d in build_space(ladder, "cpu")["knn"].dims}["layers"] == (1, None)
    cost = CostModel()
    cost.observe(RungSpec("k", "knn", str(folder), {}), Record(joules_per_query=2.0))
    for layers in (1, 2, None, 1):
        assert cost.lower_bound(RungSpec("k", "knn", str(folder), {"layers": layers})) is not None
    assert len(reads) == len(list(folder.rglob("*.safetensors"))) == 1


def test_the_files_hash_covers_names_and_bytes_and_the_signature_follows_them(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights")
    facts = facts_at(folder)
    first, signature = facts.files_sha256(), facts.files_signature()
    (folder / ".hidden").write_bytes(b"not part of the model")
    assert (facts.files_sha256(), facts.files_signature()) == (first, signature)
    (folder / "model.safetensors").rename(folder / "other.safetensors")  # same bytes, another name
    assert facts.files_sha256() != first and facts.files_signature() != signature


def test_checked_folder_resolves_and_refuses_pickles_unless_allowed(tiny_encoder, tmp_path):
    assert checked_folder(str(tiny_encoder)) == tiny_encoder.resolve()
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "pytorch_model.bin").write_bytes(b"a pickle")
    with pytest.raises(RightsizeError, match="only pickled weights"):
        checked_folder(str(pickled))
    assert checked_folder(str(pickled), allow_pickle=True) == pickled.resolve()
    (tmp_path / "empty").mkdir()
    with pytest.raises(RightsizeError, match="no weights"):
        checked_folder(str(tmp_path / "empty"))
    with pytest.raises(RightsizeError, match="does not exist"):
        checked_folder(str(tmp_path / "missing"))
